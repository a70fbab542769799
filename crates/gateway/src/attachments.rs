//! Attachment hashes: images by their decoded pixels (a perceptual hash, so EXIF, metadata
//! chunks and re-encoding do not change it), everything else by its decoded bytes.
//!
//! Decoding is bounded: at most [`MAX_DIMENSION`] pixels per side and [`MAX_ALLOC`] bytes of
//! decoder memory, so a decompression bomb is refused (and then hashed as bytes) instead of
//! exhausting memory.

use std::io::Cursor;
use std::sync::OnceLock;

use dedupd_core::message::AttachmentHash;
use image::{ImageReader, Limits};
use image_hasher::{HashAlg, Hasher, HasherConfig};

/// Largest width or height decoded.
pub const MAX_DIMENSION: u32 = 4096;
/// Largest decoder allocation.
pub const MAX_ALLOC: u64 = 64 * 1024 * 1024;

fn hasher() -> &'static Hasher {
    static HASHER: OnceLock<Hasher> = OnceLock::new();
    // dHash (gradient) on a 9×8 grayscale thumbnail: 64 bits that survive re-encoding and
    // resizing; identical pixels always give identical bits.
    HASHER.get_or_init(|| {
        HasherConfig::new()
            .hash_size(8, 8)
            .hash_alg(HashAlg::Gradient)
            .to_hasher()
    })
}

/// The hash of one attachment. `content_type` decides whether an image decode is attempted
/// (`image/*`); an image that does not decode within the limits is hashed as bytes.
pub fn hash_attachment(content_type: &str, bytes: &[u8]) -> AttachmentHash {
    let is_image = content_type
        .trim()
        .get(..6)
        .is_some_and(|p| p.eq_ignore_ascii_case("image/"));
    if is_image && let Some(hash) = perceptual_hash(bytes) {
        return AttachmentHash::Image(hash);
    }
    AttachmentHash::of_bytes(bytes)
}

/// The perceptual hash of an image's pixels, or `None` when it does not decode (unknown
/// format, corrupt, or over the limits).
pub fn perceptual_hash(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let image = reader.decode().ok()?;
    Some(hasher().hash_image(&image).as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgb, RgbImage};

    fn picture() -> RgbImage {
        RgbImage::from_fn(64, 48, |x, y| {
            let v = u8::try_from((x * 4 + y * 2) % 256).unwrap();
            Rgb([v, 255 - v, u8::try_from(y * 5 % 256).unwrap()])
        })
    }

    fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    /// Inserts a `tEXt` chunk after IHDR: same pixels, different file bytes.
    fn with_png_text(png: &[u8]) -> Vec<u8> {
        let ihdr_end = 8 + 4 + 4 + 13 + 4;
        let mut chunk = Vec::new();
        let data = b"Comment\0taken with a phone";
        chunk.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        chunk.extend_from_slice(b"tEXt");
        chunk.extend_from_slice(data);
        chunk.extend_from_slice(&crc32(b"tEXt", data).to_be_bytes());
        let mut out = png[..ihdr_end].to_vec();
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&png[ihdr_end..]);
        out
    }

    fn crc32(kind: &[u8], data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in kind.iter().chain(data) {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn same_pixels_same_hash_whatever_the_file_bytes() {
        let img = picture();
        let png = encode(&img, ImageFormat::Png);
        let tagged = with_png_text(&png);
        assert_ne!(png, tagged);
        let a = hash_attachment("image/png", &png);
        assert!(matches!(a, AttachmentHash::Image(_)));
        assert_eq!(a, hash_attachment("IMAGE/PNG", &tagged));
        // A different picture hashes differently.
        let other = RgbImage::from_fn(64, 48, |x, _| Rgb([if x < 32 { 0 } else { 255 }; 3]));
        assert_ne!(
            a,
            hash_attachment("image/png", &encode(&other, ImageFormat::Png))
        );
    }

    #[test]
    fn non_images_and_broken_images_hash_as_bytes() {
        assert_eq!(
            hash_attachment("application/pdf", b"%PDF-1.4"),
            AttachmentHash::of_bytes(b"%PDF-1.4")
        );
        assert_eq!(
            hash_attachment("image/png", b"\x89PNG\r\n\x1a\nbroken"),
            AttachmentHash::of_bytes(b"\x89PNG\r\n\x1a\nbroken")
        );
    }

    #[test]
    fn oversized_images_are_refused_by_the_limits() {
        // A tiny PNG whose header claims 100000 × 1 pixels.
        let img = RgbImage::new(MAX_DIMENSION + 1, 1);
        let png = encode(&img, ImageFormat::Png);
        assert!(perceptual_hash(&png).is_none());
    }
}
