//! The message fingerprint: SHA-256 over (customer, normalized text, attachment hashes).
//!
//! # Byte layout, version 1
//!
//! ```text
//! "dedupd.message.v1" 0x00
//! customer:     tag (1 byte) ‖ fields, each u32 BE length ‖ UTF-8 bytes
//!               'K' known customer:  id
//!               'P' unknown phone:   E.164
//!               'E' unknown e-mail:  address
//!               'O' unknown opaque:  channel, id
//! text:         u32 BE length ‖ UTF-8 bytes of the normalized text
//! attachments:  u32 BE count ‖ per hash, sorted by (tag, bytes):
//!               tag (1 byte: 'I' perceptual image hash, 'B' SHA-256 of decoded bytes)
//!               ‖ u32 BE length ‖ bytes
//! ```
//!
//! Lengths make the encoding unambiguous (no field can run into the next), and sorting makes the
//! order in which attachments arrive irrelevant. Message metadata (ids, times, channel of a
//! known customer) never enters. Changing any of this changes every fingerprint, so it needs a
//! new version string and a note in the changelog; a golden test pins version 1.

use std::fmt;

use sha2::{Digest, Sha256};

use super::address::{Address, Customer};

/// The version of the byte layout above.
pub const FINGERPRINT_VERSION: u32 = 1;

const DOMAIN: &[u8] = b"dedupd.message.v1\0";

/// The hash of one attachment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttachmentHash {
    /// A perceptual hash of an image's decoded pixels (EXIF or re-encoding do not change it).
    Image(Vec<u8>),
    /// SHA-256 of any other attachment's decoded bytes.
    Bytes([u8; 32]),
}

impl AttachmentHash {
    /// SHA-256 of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> AttachmentHash {
        AttachmentHash::Bytes(Sha256::digest(bytes).into())
    }

    fn tag(&self) -> u8 {
        match self {
            AttachmentHash::Image(_) => b'I',
            AttachmentHash::Bytes(_) => b'B',
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            AttachmentHash::Image(b) => b,
            AttachmentHash::Bytes(b) => b,
        }
    }
}

/// A message fingerprint (SHA-256, layout version [`FINGERPRINT_VERSION`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        s
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    // Inputs are bounded by the gateway's body cap, far below 4 GiB; saturate to stay total.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    h.update(len.to_be_bytes());
    h.update(bytes);
}

/// The fingerprint of a message (layout above). `text` must already be normalized
/// ([`super::normalize_body`]); attachments may come in any order.
pub fn fingerprint(customer: &Customer, text: &str, attachments: &[AttachmentHash]) -> Fingerprint {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    match customer {
        Customer::Known(id) => {
            h.update([b'K']);
            field(&mut h, id.as_bytes());
        }
        Customer::Unknown(Address::Phone(p)) => {
            h.update([b'P']);
            field(&mut h, p.as_bytes());
        }
        Customer::Unknown(Address::Email(e)) => {
            h.update([b'E']);
            field(&mut h, e.as_bytes());
        }
        Customer::Unknown(Address::Opaque { channel, id }) => {
            h.update([b'O']);
            field(&mut h, channel.as_bytes());
            field(&mut h, id.as_bytes());
        }
    }
    field(&mut h, text.as_bytes());
    let mut sorted: Vec<&AttachmentHash> = attachments.iter().collect();
    sorted.sort();
    let count = u32::try_from(sorted.len()).unwrap_or(u32::MAX);
    h.update(count.to_be_bytes());
    for a in sorted {
        h.update([a.tag()]);
        field(&mut h, a.bytes());
    }
    Fingerprint(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn known(id: &str) -> Customer {
        Customer::Known(id.into())
    }

    #[test]
    fn golden_v1() {
        // Pins the layout: if this changes, every stored window entry changes meaning.
        let mut expected = Sha256::new();
        expected.update(b"dedupd.message.v1\0K");
        expected.update(6u32.to_be_bytes());
        expected.update(b"C00042");
        expected.update(18u32.to_be_bytes());
        expected.update(b"where is my refund");
        expected.update(1u32.to_be_bytes());
        expected.update(b"I");
        expected.update(2u32.to_be_bytes());
        expected.update([0xab, 0xcd]);
        let fp = fingerprint(
            &known("C00042"),
            "where is my refund",
            &[AttachmentHash::Image(vec![0xab, 0xcd])],
        );
        assert_eq!(fp.0, <[u8; 32]>::from(expected.finalize()));
        assert_eq!(
            fingerprint(&known("C00042"), "where is my refund", &[]).to_hex(),
            "72314872a781cbd2241ee5b4052f3ea31bba027da13d5e8897bbf001b7c1264a"
        );
    }

    #[test]
    fn customers_texts_and_attachments_separate() {
        let t = "hi";
        let base = fingerprint(&known("C1"), t, &[]);
        assert_ne!(base, fingerprint(&known("C2"), t, &[]));
        assert_ne!(base, fingerprint(&known("C1"), "hi there", &[]));
        // A known id never collides with an unknown address of the same spelling.
        assert_ne!(
            fingerprint(&known("+12015550123"), t, &[]),
            fingerprint(
                &Customer::Unknown(Address::Phone("+12015550123".into())),
                t,
                &[]
            )
        );
        // Length prefixes: ("ab","c") vs ("a","bc") differ.
        let o = |c: &str, i: &str| {
            Customer::Unknown(Address::Opaque {
                channel: c.into(),
                id: i.into(),
            })
        };
        assert_ne!(
            fingerprint(&o("ab", "c"), t, &[]),
            fingerprint(&o("a", "bc"), t, &[])
        );
        let a = AttachmentHash::of_bytes(b"a");
        let b = AttachmentHash::Image(vec![1, 2, 3]);
        assert_ne!(base, fingerprint(&known("C1"), t, std::slice::from_ref(&a)));
        assert_eq!(
            fingerprint(&known("C1"), t, &[a.clone(), b.clone()]),
            fingerprint(&known("C1"), t, &[b, a])
        );
    }

    proptest! {
        #[test]
        fn order_of_attachments_never_matters(
            mut hashes in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..9), 0..5),
            text in "\\PC{0,20}",
        ) {
            let att: Vec<AttachmentHash> = hashes.iter().cloned().map(AttachmentHash::Image).collect();
            let fp = fingerprint(&known("C"), &text, &att);
            hashes.reverse();
            let rev: Vec<AttachmentHash> = hashes.into_iter().map(AttachmentHash::Image).collect();
            prop_assert_eq!(fp, fingerprint(&known("C"), &text, &rev));
            prop_assert_eq!(fp.to_hex().len(), 64);
        }
    }
}
