//! Near-duplicate text: a small sketch of a normalized message, and how similar two are.
//!
//! An exact duplicate has the same fingerprint; a near-duplicate is the same customer asking
//! almost the same thing ("where is my order??" then "where's my order"). The gateway keeps a
//! [`TextSketch`] of each customer's recent messages and flags a new message whose sketch is
//! close to one of them.
//!
//! The sketch is a bottom-k MinHash (Broder 1997; Cohen & Kaplan 2007) over the character
//! trigrams of the normalized text, padded with a space at both ends so short words count:
//! the [`SKETCH_SIZE`] smallest 32-bit hashes of the trigram set. [`TextSketch::similarity`]
//! estimates the Jaccard similarity of the two trigram sets; when both texts have at most
//! [`SKETCH_SIZE`] distinct trigrams (about 60 characters) the estimate is exact. A one-letter
//! typo in a 40-letter question leaves it above 0.8; a different question of the same length is
//! usually below 0.3.
//!
//! The sketch holds hashes only: the window never stores message text. The hash (FNV-1a,
//! then a SplitMix64 finalizer) is fixed, so sketches written by one gateway and read by
//! another (through Redis) agree.
//!
//! ```
//! use dedupd_core::message::TextSketch;
//!
//! let a = TextSketch::of("where is my order 4471");
//! let b = TextSketch::of("where is my ordr 4471");
//! let c = TextSketch::of("can i change my delivery address");
//! assert!(a.similarity(&b) > 0.6);
//! assert!(a.similarity(&c) < 0.2);
//! assert_eq!(TextSketch::from_hex(&a.to_hex()), Some(a));
//! ```

/// Hashes kept per sketch.
pub const SKETCH_SIZE: usize = 64;

/// A bottom-k MinHash of a normalized text's trigrams. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TextSketch {
    /// The smallest distinct trigram hashes, ascending (at most [`SKETCH_SIZE`]).
    hashes: Vec<u32>,
}

impl TextSketch {
    /// The sketch of `normalized` (the output of [`super::normalize_body`]). An empty text has
    /// an empty sketch, similar to nothing.
    pub fn of(normalized: &str) -> TextSketch {
        if normalized.is_empty() {
            return TextSketch::default();
        }
        // Char boundaries of " text ", without building it.
        let padded = || {
            std::iter::once(" ")
                .chain(
                    normalized
                        .char_indices()
                        .map(|(i, c)| &normalized[i..i + c.len_utf8()]),
                )
                .chain(std::iter::once(" "))
        };
        let mut hashes: Vec<u32> = Vec::with_capacity(normalized.len() + 1);
        let mut window: [&str; 3] = ["", "", ""];
        for (n, ch) in padded().enumerate() {
            window = [window[1], window[2], ch];
            if n >= 2 {
                hashes.push(trigram_hash(&window));
            }
        }
        if hashes.is_empty() {
            // One character: " x " is a single trigram, reached above; this is unreachable
            // for non-empty text but keeps the sketch well defined.
            hashes.push(trigram_hash(&window));
        }
        hashes.sort_unstable();
        hashes.dedup();
        hashes.truncate(SKETCH_SIZE);
        TextSketch { hashes }
    }

    /// Estimated Jaccard similarity of the two texts' trigram sets, in `[0, 1]`.
    pub fn similarity(&self, other: &TextSketch) -> f64 {
        // Walk the k smallest of the union of the two sketches; count those in both.
        let (a, b) = (&self.hashes, &other.hashes);
        let (mut i, mut j, mut seen, mut both) = (0, 0, 0usize, 0usize);
        while seen < SKETCH_SIZE && (i < a.len() || j < b.len()) {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x == y => {
                    both += 1;
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x < y => i += 1,
                (Some(_), None) => i += 1,
                _ => j += 1,
            }
            seen += 1;
        }
        // The k smallest of the union of the sketches are the k smallest of the union of
        // the sets, and one of them is in both sets exactly when it is in both sketches.
        if seen == 0 {
            0.0
        } else {
            both as f64 / seen as f64
        }
    }

    /// True for the sketch of an empty text.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The sketch as hex (8 digits per hash), for storage.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(self.hashes.len() * 8);
        for h in &self.hashes {
            s.push_str(&format!("{h:08x}"));
        }
        s
    }

    /// A sketch written by [`TextSketch::to_hex`]; `None` when it is not one.
    pub fn from_hex(s: &str) -> Option<TextSketch> {
        if !s.len().is_multiple_of(8) || s.len() / 8 > SKETCH_SIZE || !s.is_ascii() {
            return None;
        }
        let hashes: Vec<u32> = (0..s.len() / 8)
            .map(|i| u32::from_str_radix(&s[i * 8..i * 8 + 8], 16).ok())
            .collect::<Option<_>>()?;
        if hashes.windows(2).any(|w| w[0] >= w[1]) {
            return None;
        }
        Some(TextSketch { hashes })
    }
}

fn trigram_hash(chars: &[&str; 3]) -> u32 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = FNV_OFFSET;
    for part in chars {
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(FNV_PRIME);
    }
    // SplitMix64 finalizer: FNV's low bits are weak; the top 32 bits of this are not.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn exact_jaccard(a: &str, b: &str) -> f64 {
        let grams = |s: &str| -> BTreeSet<String> {
            let chars: Vec<char> = format!(" {s} ").chars().collect();
            chars.windows(3).map(|w| w.iter().collect()).collect()
        };
        let (x, y) = (grams(a), grams(b));
        x.intersection(&y).count() as f64 / x.union(&y).count() as f64
    }

    #[test]
    fn short_texts_are_exact() {
        for (a, b) in [
            ("where is my order", "where is my order?"),
            ("where is my order", "where is my ordr"),
            ("hi", "hello"),
            ("refund please", "please refund"),
            ("é", "e"),
        ] {
            let got = TextSketch::of(a).similarity(&TextSketch::of(b));
            let want = exact_jaccard(a, b);
            assert!((got - want).abs() < 1e-12, "{a:?} {b:?}: {got} vs {want}");
        }
    }

    #[test]
    fn identical_is_one_and_empty_is_nothing() {
        let long = "my parcel was supposed to arrive on monday and it still has not come, \
                    the tracking number says delivered but nothing is at the door";
        let s = TextSketch::of(long);
        assert_eq!(s.similarity(&s), 1.0);
        assert_eq!(TextSketch::of("").similarity(&TextSketch::of("")), 0.0);
        assert_eq!(TextSketch::of("").similarity(&s), 0.0);
        assert!(TextSketch::of("").is_empty());
    }

    #[test]
    fn long_texts_estimate_close_to_the_truth() {
        let a = "my parcel was supposed to arrive on monday and it still has not come, the \
                 tracking number says delivered but nothing is at the door, can you check";
        let b = "my parcel was supposed to arrive on monday and it has still not come, the \
                 tracking says delivered but there is nothing at my door, can you check it";
        let c = "i would like to cancel my subscription at the end of this month and get \
                 a refund for the unused days, my account is under my work e-mail address";
        let sa = TextSketch::of(a);
        let est = sa.similarity(&TextSketch::of(b));
        let want = exact_jaccard(a, b);
        assert!((est - want).abs() < 0.15, "{est} vs {want}");
        assert!(sa.similarity(&TextSketch::of(c)) < 0.2);
    }

    #[test]
    fn hex_round_trip_and_garbage() {
        let s = TextSketch::of("where is my order");
        assert_eq!(TextSketch::from_hex(&s.to_hex()), Some(s));
        assert_eq!(TextSketch::from_hex("xyz"), None);
        assert_eq!(
            TextSketch::from_hex("0000000100000000"),
            None,
            "not ascending"
        );
        assert_eq!(
            TextSketch::from_hex(&"0".repeat(8 * (SKETCH_SIZE + 1))),
            None
        );
        assert_eq!(TextSketch::from_hex(""), Some(TextSketch::default()));
    }

    #[test]
    fn the_hash_is_pinned() {
        // Sketches cross processes and versions through Redis: the hash must never change
        // silently. " ab " has the trigrams " ab" and "ab ".
        assert_eq!(TextSketch::of("ab").to_hex(), "ec4b6475ffca206a");
    }
}
