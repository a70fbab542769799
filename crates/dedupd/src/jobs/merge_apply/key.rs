//! The idempotency key of a merge request (`m…`) and the key of a cluster's journal (`c…`).

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

/// 16 hex digits of SHA-256 over the sorted, de-duplicated ids (each followed by a newline),
/// after `prefix`. The same ids always give the same key, whatever their order.
pub fn ids_key<'a>(prefix: char, ids: impl IntoIterator<Item = &'a str>) -> String {
    let sorted: BTreeSet<&str> = ids.into_iter().collect();
    let mut hasher = Sha256::new();
    for id in sorted {
        hasher.update(id.as_bytes());
        hasher.update(b"\n");
    }
    let digest = hasher.finalize();
    let mut out = String::with_capacity(17);
    out.push(prefix);
    for byte in &digest[..8] {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_order_and_duplicates() {
        let a = ids_key('m', ["b", "a"]);
        assert_eq!(a, ids_key('m', ["a", "b", "a"]));
        assert_ne!(a, ids_key('m', ["a", "b", "c"]));
        assert_ne!(a, ids_key('c', ["a", "b"]));
    }
}
