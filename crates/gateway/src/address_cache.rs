//! A bounded cache of `(channel, raw from)` → parsed [`Address`], so a repeat sender skips the
//! phone parser (rlibphonenumber's regexes are the costliest step of a small message).
//!
//! Only the parse is cached: [`parse_address`] is a pure function of the channel, the raw
//! string and the gateway's default region (fixed for the cache's lifetime, since each
//! [`crate::Gateway`] owns its cache). Resolving the address through the [`crate::ContactIndex`]
//! still happens on every message, so a different or reloaded index can never be answered from
//! a stale entry.
//!
//! Layout: 16 shards, each a mutex over two generations of a map keyed by a keyed SipHash of
//! the pair (`RandomState`, so senders cannot aim collisions at one bucket). A hit in the old
//! generation moves to the new one; when the new generation is full, the old one is dropped and
//! the new one becomes old. So the cache holds at most `2 × capacity` entries and keeps the
//! recently used ones: a cheap approximation of LRU with no per-hit bookkeeping beyond the
//! lookup. The full key is stored and compared, so a 64-bit hash collision is a miss, never a
//! wrong answer.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

use dedupd_core::message::{Address, parse_address};
use dedupd_core::normalize::Region;

const SHARDS: usize = 16;

/// Senders kept by a gateway's cache (a few hundred bytes each, so ≈ 15 MB when full): more
/// distinct senders than a few minutes of one instance's traffic usually has.
pub(crate) const DEFAULT_CAPACITY: usize = 65_536;

/// The cache. Cheap to share (`&self` everywhere).
pub(crate) struct AddressCache {
    region: Option<Region>,
    hasher: RandomState,
    per_generation: usize,
    shards: Vec<Mutex<Shard>>,
}

#[derive(Default)]
struct Shard {
    new: Map,
    old: Map,
}

type Map = HashMap<u64, Entry, BuildHasherDefault<U64Identity>>;

struct Entry {
    channel: Box<str>,
    raw: Box<str>,
    address: Address,
}

impl AddressCache {
    /// A cache of at most about `capacity` senders (0 turns it off) parsing with `region`.
    pub(crate) fn new(region: Option<Region>, capacity: usize) -> Self {
        AddressCache {
            region,
            hasher: RandomState::new(),
            per_generation: capacity.div_ceil(2 * SHARDS),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// `parse_address(channel, raw, region)`, from the cache when the pair was seen recently.
    pub(crate) fn parse(&self, channel: &str, raw: &str) -> Address {
        if self.per_generation == 0 {
            return parse_address(channel, raw, self.region);
        }
        let hash = self.hasher.hash_one((channel, raw));
        let shard = &self.shards[(hash >> 60) as usize % SHARDS];
        {
            let mut s = lock(shard);
            let matches = |e: &Entry| &*e.channel == channel && &*e.raw == raw;
            if let Some(e) = s.new.get(&hash).filter(|e| matches(e)) {
                return e.address.clone();
            }
            if s.old.get(&hash).is_some_and(matches)
                && let Some(e) = s.old.remove(&hash)
            {
                let address = e.address.clone();
                self.insert(&mut s, hash, e);
                return address;
            }
        }
        // Parse outside the lock: it is the slow part.
        let address = parse_address(channel, raw, self.region);
        let entry = Entry {
            channel: channel.into(),
            raw: raw.into(),
            address: address.clone(),
        };
        self.insert(&mut lock(shard), hash, entry);
        address
    }

    fn insert(&self, shard: &mut Shard, hash: u64, entry: Entry) {
        if shard.new.len() >= self.per_generation && !shard.new.contains_key(&hash) {
            shard.old = std::mem::take(&mut shard.new);
        }
        shard.new.insert(hash, entry);
    }

    /// Entries held (both generations).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = lock(s);
                s.new.len() + s.old.len()
            })
            .sum()
    }
}

/// A poisoned shard only means a panic mid-insert into a plain map: still a valid map.
fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The keys are already keyed SipHash values: hashing them again would be wasted work.
#[derive(Default)]
struct U64Identity(u64);

impl Hasher for U64Identity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `u64` keys; fold anything else in for completeness.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> Option<Region> {
        Some("US".parse().unwrap())
    }

    #[test]
    fn answers_like_parse_address_hit_or_miss() {
        let cache = AddressCache::new(us(), 64);
        let inputs = [
            ("sms", "(201) 336-7089"),
            ("chat", "(201) 336-7089"),
            ("email", " MAX.WALSH37@EXAMPLE.COM "),
            ("Chat", "User-42"),
            ("chat", "User-42"),
            ("sms", "not a phone"),
        ];
        for _ in 0..3 {
            for (channel, raw) in inputs {
                assert_eq!(
                    cache.parse(channel, raw),
                    parse_address(channel, raw, us()),
                    "{channel} {raw}"
                );
            }
        }
    }

    #[test]
    fn stays_bounded_and_keeps_answering() {
        let cache = AddressCache::new(us(), 100);
        for i in 0..5_000 {
            let raw = format!("(201) 7{:02}-{:04}", i % 100, i % 10_000);
            assert_eq!(cache.parse("sms", &raw), parse_address("sms", &raw, us()));
        }
        // Two generations per shard, each at most capacity / (2 × shards) rounded up.
        assert!(cache.len() <= 2 * SHARDS * 100usize.div_ceil(2 * SHARDS));
        let off = AddressCache::new(us(), 0);
        assert_eq!(off.parse("sms", "x"), parse_address("sms", "x", us()));
        assert_eq!(off.len(), 0);
    }
}
