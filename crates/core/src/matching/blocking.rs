//! Candidate generation: records that share a blocking key become candidate pairs; nothing else
//! is ever compared, so the cost grows with the number of real candidates, not with n².
//!
//! Keys: the exact phone, the canonical e-mail, the e-mail's local part, the name pair (in either
//! order), the last name with the postcode, the street with the postcode and the given name
//! (nickname group or soundex) with the postcode. (A phonetic name key was measured and dropped:
//! on a million records it tripled the pairs and found nothing the other keys missed.) Two guards keep one common value from exploding the pair
//! count:
//! - *generic values*: a phone or e-mail that is a placeholder, or that is shared by records of
//!   many different people (three or more distinct given names *and* family names), is not
//!   evidence; it is marked on the records (and then counts as missing in comparisons) and
//!   forms no block;
//! - *block cap*: a block larger than `max_block` is not expanded into all its pairs. A
//!   name-based block that large is namesakes, no evidence, and is dropped (their duplicates
//!   meet through the other keys); an identifier block's records are sorted by name and each is
//!   paired with its `window` neighbours (the sorted neighbourhood method);
//! - *relative cap of the name keys*: the namesakes sharing a name key grow with the data while
//!   each person's duplicates do not, so a fixed cap lets a name key's pairs grow with the
//!   square of the data until its blocks reach `max_block` (on generated contacts: 1.5 pairs a
//!   record at 3 M, 4 at 10 M, nearly all strangers). Each name key's cap is therefore drawn
//!   from its own block-size distribution ([`BlockSizes`]): the largest size such that its
//!   blocks up to that size yield at most `name_pairs_per_record` pairs per record holding the
//!   key. Small data never reaches the budget; large data keeps the name blocks that are rare
//!   enough to be evidence. The incremental resolver keeps the same distribution as records
//!   arrive and applies the same rule.

use std::hash::{Hash, Hasher};

use rayon::prelude::*;
use rustc_hash::{FxHashSet, FxHasher};

use super::features::{Features, Str};

/// Blocking settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BlockingConfig {
    /// Blocks up to this size are expanded into all their pairs.
    pub max_block: usize,
    /// In larger blocks, each record is paired with this many neighbours in name order.
    pub window: usize,
    /// A phone or e-mail shared by more records than this is generic, whoever they are.
    pub generic_size: usize,
    /// Each name key yields at most this many pairs per record holding it: its blocks are
    /// expanded up to the size where the pairs of all its blocks that small would pass this
    /// ([`BlockSizes::caps`]).
    #[serde(default = "default_name_pairs_per_record")]
    pub name_pairs_per_record: f64,
}

fn default_name_pairs_per_record() -> f64 {
    BlockingConfig::default().name_pairs_per_record
}

impl Default for BlockingConfig {
    fn default() -> Self {
        BlockingConfig {
            max_block: 64,
            window: 10,
            generic_size: 40,
            name_pairs_per_record: NAME_PAIRS_PER_RECORD,
        }
    }
}

/// The default of [`BlockingConfig::name_pairs_per_record`].
const NAME_PAIRS_PER_RECORD: f64 = 1.0;

/// Per key kind, how many blocks have each size up to `max_block` (larger ones yield no pairs
/// of a name key) and how many records hold a key of that kind: what the relative cap of the
/// name keys is drawn from. The batch run counts every block at once; the incremental resolver
/// keeps the counts as blocks grow and shrink.
#[derive(Debug, Clone)]
pub(crate) struct BlockSizes {
    /// `KINDS × (max_block + 2)` counts: per kind, blocks of size 0..=max_block, then larger.
    counts: Vec<u64>,
    /// Per kind, the records holding a key of it.
    held: [u64; KINDS],
    max_block: usize,
}

/// Key kinds, 1-based (slot 0 unused).
const KINDS: usize = 8;

impl BlockSizes {
    pub(crate) fn new(max_block: usize) -> BlockSizes {
        BlockSizes {
            counts: vec![0; KINDS * (max_block + 2)],
            held: [0; KINDS],
            max_block,
        }
    }

    fn slot(&self, key: u64, size: usize) -> usize {
        let kind = (key >> 60) as usize % KINDS;
        kind * (self.max_block + 2) + size.min(self.max_block + 1)
    }

    /// The block of `key` grew from `size` records to one more.
    pub(crate) fn grow(&mut self, key: u64, size: usize) {
        let (from, to) = (self.slot(key, size), self.slot(key, size + 1));
        if size > 0 {
            self.counts[from] = self.counts[from].saturating_sub(1);
        }
        self.counts[to] += 1;
        self.held[(key >> 60) as usize % KINDS] += 1;
    }

    /// The block of `key` shrank from `size` records (at least one) to one fewer.
    pub(crate) fn shrink(&mut self, key: u64, size: usize) {
        if size == 0 {
            return;
        }
        let (from, to) = (self.slot(key, size), self.slot(key, size - 1));
        self.counts[from] = self.counts[from].saturating_sub(1);
        if size > 1 {
            self.counts[to] += 1;
        }
        let held = &mut self.held[(key >> 60) as usize % KINDS];
        *held = held.saturating_sub(1);
    }

    /// Counts a whole block of `size` records.
    fn add_block(&mut self, key: u64, size: usize) {
        let at = self.slot(key, size);
        self.counts[at] += 1;
        self.held[(key >> 60) as usize % KINDS] += size as u64;
    }

    /// Per key kind (indexed by the kind's number), the largest block expanded into all its
    /// pairs: `max_block` for the identifier keys; for a name key, the largest size `s` at
    /// most `max_block` such that its blocks of up to `s` records yield at most
    /// `name_pairs_per_record` pairs per record holding the key.
    pub(crate) fn caps(&self, cfg: &BlockingConfig) -> [usize; KINDS] {
        let mut caps = [cfg.max_block; KINDS];
        for (kind, cap) in caps.iter_mut().enumerate() {
            if !is_name_key((kind as u64) << 60) {
                continue;
            }
            let budget = cfg.name_pairs_per_record * self.held[kind] as f64;
            let top = cfg.max_block.min(self.max_block);
            let row = &self.counts[kind * (self.max_block + 2)..][..=top];
            let mut pairs = 0.0;
            *cap = 1;
            for (s, &blocks) in row.iter().enumerate().skip(2) {
                pairs += blocks as f64 * (s * (s - 1) / 2) as f64;
                if pairs > budget {
                    break;
                }
                *cap = s;
            }
        }
        caps
    }
}

/// What blocking found.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    /// Candidate pairs `(a, b)` with `a < b`, sorted, unique.
    pub pairs: Vec<(u32, u32)>,
    /// Number of distinct phone values found generic.
    pub generic_phones: usize,
    /// Number of distinct e-mail values found generic.
    pub generic_emails: usize,
    /// Blocks too large to expand fully (handled by sorted neighbourhood).
    pub capped_blocks: usize,
    /// Pairs generated per key (before removing pairs found by several keys), in
    /// [`KEY_NAMES`] order.
    pub pairs_by_key: [u64; 7],
    /// The largest block expanded into all its pairs, per key in [`KEY_NAMES`] order
    /// ([`BlockSizes::caps`]).
    pub block_caps: [usize; 7],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Phone = 1,
    Email,
    EmailLocal,
    NamePair,
    LastPostcode,
    StreetPostcode,
    FirstPostcode,
}

/// Every key kind, in the order of their numbers.
const ALL_KEYS: [Key; 7] = [
    Key::Phone,
    Key::Email,
    Key::EmailLocal,
    Key::NamePair,
    Key::LastPostcode,
    Key::StreetPostcode,
    Key::FirstPostcode,
];

/// The names of the blocking keys, in the order of their numbers (1-based).
pub const KEY_NAMES: [&str; 7] = [
    "phone",
    "email",
    "email_local",
    "name_pair",
    "last_postcode",
    "street_postcode",
    "first_postcode",
];

/// A key's hash, with its kind in the top four bits so blocks can be counted per kind.
fn key(kind: Key, parts: impl Hash) -> u64 {
    let mut h = FxHasher::default();
    (kind as u8).hash(&mut h);
    parts.hash(&mut h);
    (h.finish() & !(0xF << 60)) | (kind as u64) << 60
}

/// Marks generic phones and e-mails on the records and returns how many distinct values of each
/// were generic.
pub fn mark_generic(features: &mut [Features], cfg: &BlockingConfig) -> (usize, usize) {
    let phones = generic_values(features, cfg, phone_value);
    let emails = generic_values(features, cfg, email_value);
    for f in features.iter_mut() {
        if phones.contains(&f.phone) {
            f.phone_generic = true;
        }
        let e = f.str(Str::Email);
        if !e.is_empty() && emails.contains(&key(Key::Email, e)) {
            f.email_generic = true;
        }
    }
    (phones.len(), emails.len())
}

fn generic_values(
    features: &[Features],
    cfg: &BlockingConfig,
    value: impl Fn(&Features) -> Option<u64> + Sync,
) -> FxHashSet<u64> {
    let mut keyed = keyed_by(features, value);
    keyed.par_sort_unstable();
    let mut generic = FxHashSet::default();
    for group in keyed.chunk_by(|a, b| a.0 == b.0) {
        let holders = group.iter().map(|&(_, i)| &features[i as usize]);
        if is_generic_group(holders, group.len(), cfg) {
            generic.insert(group[0].0);
        }
    }
    generic
}

/// `(value, record number)` for every record with a value: counted first, then filled a slice
/// at a time, so the array is allocated once at its size (a parallel `collect` of an unknown
/// length holds every piece beside the final array: twice the memory, 300 MB more at 10 M).
pub(crate) fn keyed_by(
    features: &[Features],
    value: impl Fn(&Features) -> Option<u64> + Sync,
) -> Vec<(u64, u32)> {
    const SLICE: usize = 1 << 18;
    let n = features.par_iter().filter(|f| value(f).is_some()).count();
    let mut keyed = Vec::with_capacity(n);
    for (s, slice) in features.chunks(SLICE).enumerate() {
        let piece: Vec<(u64, u32)> = slice
            .par_iter()
            .enumerate()
            .filter_map(|(i, f)| value(f).map(|v| (v, (s * SLICE + i) as u32)))
            .collect();
        keyed.extend_from_slice(&piece);
    }
    keyed
}

/// The value of a record's phone that [`mark_generic`] counts holders of: the number itself,
/// or `None` when absent or already generic (a placeholder).
pub(crate) fn phone_value(f: &Features) -> Option<u64> {
    (f.phone != 0 && !f.phone_generic).then_some(f.phone)
}

/// The value of a record's e-mail that [`mark_generic`] counts holders of (the e-mail's block
/// key), or `None` when absent or already generic.
pub(crate) fn email_value(f: &Features) -> Option<u64> {
    let e = f.str(Str::Email);
    (!e.is_empty() && !f.email_generic).then(|| email_key(e))
}

/// The block key of a canonical e-mail.
pub(crate) fn email_key(e: &str) -> u64 {
    key(Key::Email, e)
}

/// Whether one phone or e-mail held by these `n` records is generic: more holders than
/// `generic_size`, or at least three with three or more distinct given names *and* family
/// names between them (different people). The batch run asks it of every value at once; the
/// incremental resolver asks it again of a value each time a record holding it arrives.
pub(crate) fn is_generic_group<'a>(
    holders: impl Iterator<Item = &'a Features> + Clone,
    n: usize,
    cfg: &BlockingConfig,
) -> bool {
    if n < 3 {
        return false;
    }
    if n > cfg.generic_size {
        return true;
    }
    let distinct = |s: Str| {
        let mut seen: Vec<&str> = holders
            .clone()
            .map(|f| {
                let v = f.str(s);
                v.split(' ').next().unwrap_or(v)
            })
            .filter(|v| !v.is_empty())
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    };
    distinct(Str::First) >= 3 && distinct(Str::Last) >= 3
}

/// The blocking keys of one record (its generic values form none), each with its kind in the
/// top four bits.
pub(crate) fn keys_of(f: &Features, out: &mut Vec<u64>) {
    out.extend(ALL_KEYS.iter().filter_map(|&kind| key_of(f, kind)));
}

/// The record's key of one kind, if it has one.
fn key_of(f: &Features, kind: Key) -> Option<u64> {
    let first1 = || {
        let first = f.str(Str::First);
        first.split(' ').next().unwrap_or(first)
    };
    let last = f.str(Str::Last);
    let postcode = f.str(Str::Postcode);
    match kind {
        Key::Phone => f.phone().map(|p| key(Key::Phone, p)),
        Key::Email => f.email().map(|e| key(Key::Email, e)),
        Key::EmailLocal => f
            .email()
            .and_then(|e| e.rsplit_once('@'))
            .filter(|(local, _)| local.len() >= 5)
            .map(|(local, _)| key(Key::EmailLocal, local)),
        Key::NamePair => {
            let first1 = first1();
            (!first1.is_empty() && !last.is_empty()).then(|| {
                let (x, y) = if first1 <= last {
                    (first1, last)
                } else {
                    (last, first1)
                };
                key(Key::NamePair, (x, y, f.country))
            })
        }
        Key::LastPostcode => (!postcode.is_empty() && !last.is_empty())
            .then(|| key(Key::LastPostcode, (last, postcode))),
        Key::StreetPostcode => {
            let street = f.str(Str::Street);
            (!postcode.is_empty() && !street.is_empty())
                .then(|| key(Key::StreetPostcode, (street, postcode)))
        }
        Key::FirstPostcode => (!postcode.is_empty() && !first1().is_empty())
            .then(|| key(Key::FirstPostcode, (f.first_token(), postcode))),
    }
}

/// Marks generic values ([`mark_generic`]) and generates the candidate pairs.
///
/// One key kind at a time: the records' keys of that kind are sorted into blocks, the kind's
/// cap is drawn from their sizes ([`BlockSizes::caps`]) and its pairs are generated, so only
/// one kind's keys are ever in memory (on 10 M records, 160 MB instead of about 1 GB).
pub fn candidates(features: &mut [Features], cfg: &BlockingConfig) -> Candidates {
    let (generic_phones, generic_emails) = mark_generic(features, cfg);
    let features = &*features;
    let mut capped = 0;
    let mut pairs_by_key = [0u64; 7];
    let mut block_caps = [cfg.max_block; 7];
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    for (slot, &kind) in ALL_KEYS.iter().enumerate() {
        let mut keyed = keyed_by(features, |f| key_of(f, kind));
        keyed.par_sort_unstable();
        let mut sizes = BlockSizes::new(cfg.max_block);
        for g in keyed.chunk_by(|a, b| a.0 == b.0) {
            sizes.add_block(g[0].0, g.len());
        }
        let cap = sizes.caps(cfg)[kind as usize];
        block_caps[slot] = cap;
        let groups: Vec<&[(u64, u32)]> = keyed
            .chunk_by(|a, b| a.0 == b.0)
            .filter(|g| g.len() > 1)
            .collect();
        for g in &groups {
            let n = g.len() as u64;
            pairs_by_key[slot] += if g.len() <= cap {
                n * (n - 1) / 2
            } else {
                capped += 1;
                if is_name_key(g[0].0) {
                    0
                } else {
                    n * cfg.window as u64
                }
            };
        }
        pairs.par_extend(
            groups
                .par_iter()
                .flat_map_iter(|g| block_pairs(g, features, cap, cfg)),
        );
    }
    pairs.par_sort_unstable();
    pairs.dedup();
    pairs.shrink_to_fit();
    Candidates {
        pairs,
        generic_phones,
        generic_emails,
        capped_blocks: capped,
        pairs_by_key,
        block_caps,
    }
}

/// Whether a block key is built from names (`email_local` counts: it is mostly a name), so an
/// oversized block of it is namesakes and is not expanded at all.
pub(crate) fn is_name_key(k: u64) -> bool {
    let kind = k >> 60;
    [
        Key::EmailLocal as u64,
        Key::NamePair as u64,
        Key::FirstPostcode as u64,
        Key::LastPostcode as u64,
    ]
    .contains(&kind)
}

/// The order of an oversized identifier block's records for the sorted neighbourhood: family
/// name, given name, e-mail.
pub(crate) fn neighbourhood_key(f: &Features) -> String {
    format!(
        "{} {} {}",
        f.str(Str::Last),
        f.str(Str::First),
        f.str(Str::Email)
    )
}

fn pair(a: u32, b: u32) -> Option<(u32, u32)> {
    match a.cmp(&b) {
        std::cmp::Ordering::Less => Some((a, b)),
        std::cmp::Ordering::Greater => Some((b, a)),
        std::cmp::Ordering::Equal => None,
    }
}

fn block_pairs(
    group: &[(u64, u32)],
    features: &[Features],
    cap: usize,
    cfg: &BlockingConfig,
) -> Vec<(u32, u32)> {
    let ids: Vec<u32> = group.iter().map(|&(_, i)| i).collect();
    let mut out = Vec::new();
    if ids.len() <= cap {
        for (x, &a) in ids.iter().enumerate() {
            for &b in &ids[x + 1..] {
                out.extend(pair(a, b));
            }
        }
        return out;
    }
    // An oversized block of a name key is namesakes: no evidence, and their duplicates meet
    // through the other keys. Identifier keys (which are rarely this large unless generic) fall
    // back to the sorted neighbourhood.
    if is_name_key(group[0].0) {
        return out;
    }
    // Sorted neighbourhood inside an oversized block.
    let mut sorted: Vec<(String, u32)> = ids
        .iter()
        .map(|&i| (neighbourhood_key(&features[i as usize]), i))
        .collect();
    sorted.sort_unstable();
    for (x, (_, a)) in sorted.iter().enumerate() {
        for (_, b) in sorted.iter().skip(x + 1).take(cfg.window) {
            out.extend(pair(*a, *b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::record::Record;

    fn rec(id: &str, first: &str, last: &str, email: &str, phone: &str) -> Features {
        let (r, _) = Record::from_raw(
            [id, "", first, last, email, phone, "", "", "", "", "US"],
            None,
        );
        Features::of(&r)
    }

    #[test]
    fn shared_identifiers_make_candidates() {
        let mut fs = vec![
            rec("a", "Ann", "Lee", "ann@x.com", ""),
            rec("b", "", "", "ANN@x.com", ""),
            rec("c", "Bob", "Ray", "", "(415) 555-2671"),
            rec("d", "", "", "", "+1 415 555 2671"),
            rec("e", "Zed", "Quux", "", ""),
        ];
        let c = candidates(&mut fs, &BlockingConfig::default());
        assert_eq!(c.pairs, vec![(0, 1), (2, 3)]);
    }

    #[test]
    fn a_value_shared_by_many_people_is_generic_and_forms_no_block() {
        let names = [
            ("Ann", "Lee"),
            ("Bob", "Ray"),
            ("Cid", "Moe"),
            ("Dan", "Poe"),
        ];
        let mut fs: Vec<Features> = names
            .iter()
            .enumerate()
            .map(|(i, (f, l))| rec(&i.to_string(), f, l, "shared@corp.com", ""))
            .collect();
        let c = candidates(&mut fs, &BlockingConfig::default());
        assert_eq!(c.generic_emails, 1);
        assert!(c.pairs.is_empty(), "{:?}", c.pairs);
        assert!(fs.iter().all(|f| f.email().is_none()));
    }

    #[test]
    fn one_persons_records_sharing_a_value_are_not_generic() {
        // Same given name, married names: one person.
        let mut fs: Vec<Features> = ["Lee", "Ray", "Moe", "Lee-Ray"]
            .iter()
            .enumerate()
            .map(|(i, l)| rec(&i.to_string(), "Ann", l, "ann@x.com", ""))
            .collect();
        let c = candidates(&mut fs, &BlockingConfig::default());
        assert_eq!(c.generic_emails, 0);
        assert_eq!(c.pairs.len(), 6);
    }

    #[test]
    fn oversized_identifier_blocks_use_a_window() {
        let cfg = BlockingConfig {
            max_block: 4,
            window: 2,
            generic_size: 1000,
            ..BlockingConfig::default()
        };
        let mut fs: Vec<Features> = (0..10)
            .map(|i| rec(&i.to_string(), "Ann", "Lee", "", "(415) 555-2671"))
            .collect();
        let c = candidates(&mut fs, &cfg);
        // The phone block and the name block are both oversized; the name block (namesakes) is
        // dropped, and in the phone block each record pairs with its next two neighbours:
        // 9 + 8 pairs, not 45.
        assert_eq!(c.capped_blocks, 2);
        assert_eq!(c.pairs.len(), 17);
    }
}
