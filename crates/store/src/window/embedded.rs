//! The in-process dedup window: sharded maps, TTL-bounded, capped in entries, snapshotted to a
//! file.
//!
//! Each of the [`SHARDS`] shards is a `Mutex<HashMap>` plus a queue of keys in insertion
//! (= first-seen) order. A claim locks one shard for a few hundred nanoseconds; fingerprints are
//! SHA-256, so their first byte spreads claims evenly. The queue makes both expiry and the cap
//! cheap: the oldest entries are at its front, so sweeping expired entries and evicting the
//! oldest when a shard is full are pops, never scans.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Claim, DedupWindow, FirstSeen, NearHit, NearItem, NearProbe, WindowError, WindowKey,
    WindowRules, best_near, from_hex, to_hex,
};

/// Number of shards (a power of two; the shard is the key's first byte modulo this).
pub(crate) const SHARDS: usize = 64;

const SNAPSHOT_FORMAT: &str = "dedupd.window.v1";

struct Slot {
    first: FirstSeen,
    duplicates: u64,
    expires_at: DateTime<Utc>,
}

/// One customer's recent first messages (newest first), for near-duplicates.
struct NearList {
    items: VecDeque<NearItem>,
    expires_at: DateTime<Utc>,
}

/// What a shard holds: something queued at a time and expiring at another.
trait Timed {
    /// The time the live value was queued with (a queue record with another time is stale).
    fn queued_at(&self) -> DateTime<Utc>;
    fn expires_at(&self) -> DateTime<Utc>;
}

impl Timed for Slot {
    fn queued_at(&self) -> DateTime<Utc> {
        self.first.first_seen_at
    }
    fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }
}

impl Timed for NearList {
    fn queued_at(&self) -> DateTime<Utc> {
        self.items
            .front()
            .map_or(DateTime::<Utc>::MIN_UTC, |i| i.first.first_seen_at)
    }
    fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }
}

struct Shard<V> {
    map: HashMap<WindowKey, V>,
    /// Keys in queued (= first-seen) order, with the time they were queued with (a key queued
    /// again is found twice; the stale record is skipped when it reaches the front).
    order: VecDeque<(WindowKey, DateTime<Utc>)>,
    /// Queued time of the newest entry evicted for lack of room (not expiry).
    last_capacity_eviction: Option<DateTime<Utc>>,
}

impl<V> Default for Shard<V> {
    fn default() -> Self {
        Shard {
            map: HashMap::new(),
            order: VecDeque::new(),
            last_capacity_eviction: None,
        }
    }
}

impl<V: Timed> Shard<V> {
    /// Drops expired entries and stale queue records from the front.
    fn sweep(&mut self, now: DateTime<Utc>) {
        while let Some((key, queued_at)) = self.order.front().copied() {
            match self.map.get(&key) {
                Some(v) if v.queued_at() == queued_at => {
                    if v.expires_at() > now {
                        break;
                    }
                    self.map.remove(&key);
                }
                // Replaced or gone: a stale record.
                _ => {}
            }
            self.order.pop_front();
        }
    }

    /// Evicts the oldest live entries until there is room for one more.
    fn make_room(&mut self, cap: usize) {
        while self.map.len() >= cap {
            let Some((key, queued_at)) = self.order.pop_front() else {
                break;
            };
            if self
                .map
                .get(&key)
                .is_some_and(|v| v.queued_at() == queued_at)
            {
                self.map.remove(&key);
                self.last_capacity_eviction = Some(queued_at);
            }
        }
    }

    /// Stores `value` under `key` as its newest version (sweeping and making room first).
    fn put(&mut self, key: WindowKey, value: V, now: DateTime<Utc>, cap: usize) {
        self.sweep(now);
        self.map.remove(&key);
        self.make_room(cap);
        self.order.push_back((key, value.queued_at()));
        self.map.insert(key, value);
    }

    fn live(&self, key: &WindowKey, now: DateTime<Utc>) -> Option<&V> {
        self.map.get(key).filter(|v| v.expires_at() > now)
    }
}

/// The in-process dedup window. See the module docs.
pub struct EmbeddedWindow {
    shards: Box<[Mutex<Shard<Slot>>]>,
    /// Per customer, recent first messages (only used when near-duplicates are asked for).
    near: Box<[Mutex<Shard<NearList>>]>,
    cap_per_shard: usize,
}

impl EmbeddedWindow {
    /// An empty window holding at most about `max_entries` entries (rounded up to a multiple of
    /// `SHARDS`).
    pub fn new(max_entries: usize) -> EmbeddedWindow {
        let cap_per_shard = max_entries.div_ceil(SHARDS).max(1);
        EmbeddedWindow {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            near: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            cap_per_shard,
        }
    }

    /// A window loaded from a snapshot written by [`EmbeddedWindow::snapshot`]; entries expired
    /// by `now` are skipped. A missing file is an empty window.
    pub fn load(path: &Path, max_entries: usize, now: DateTime<Utc>) -> Result<Self, WindowError> {
        let window = EmbeddedWindow::new(max_entries);
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(window),
            Err(source) => return Err(snapshot_err(path, source)),
        };
        let mut lines = std::io::BufReader::new(file).lines();
        let header = lines
            .next()
            .transpose()
            .map_err(|e| snapshot_err(path, e))?
            .unwrap_or_default();
        let corrupt = |line: usize, reason: String| WindowError::Corrupt {
            at: format!("{} line {line}", path.display()),
            reason,
        };
        let header: SnapshotHeader = serde_json::from_str(&header)
            .map_err(|e| corrupt(1, format!("snapshot header: {e}")))?;
        if header.format != SNAPSHOT_FORMAT {
            return Err(corrupt(
                1,
                format!(
                    "snapshot format {:?}, expected {SNAPSHOT_FORMAT:?}",
                    header.format
                ),
            ));
        }
        let mut entries = Vec::new();
        for (i, line) in lines.enumerate() {
            let line = line.map_err(|e| snapshot_err(path, e))?;
            let e: SnapshotEntry = serde_json::from_str(&line)
                .map_err(|e| corrupt(i + 2, format!("snapshot entry: {e}")))?;
            let key = from_hex(&e.key)
                .ok_or_else(|| corrupt(i + 2, "snapshot key is not 64 hex digits".into()))?;
            if e.expires_at > now {
                entries.push((key, e));
            }
        }
        entries.sort_by_key(|(_, e)| e.first.first_seen_at);
        for (key, e) in entries {
            let slot = Slot {
                first: e.first,
                duplicates: e.duplicates,
                expires_at: e.expires_at,
            };
            window.shard(&key).put(key, slot, now, window.cap_per_shard);
        }
        Ok(window)
    }

    /// Writes every live entry to `path` (a temporary file renamed into place, so a crash
    /// mid-write leaves the previous snapshot). Returns the number of entries written. Blocking:
    /// call it from a blocking thread.
    pub fn snapshot(&self, path: &Path, now: DateTime<Utc>) -> Result<usize, WindowError> {
        let tmp: PathBuf = {
            let mut name = path.file_name().unwrap_or_default().to_os_string();
            name.push(".tmp");
            path.with_file_name(name)
        };
        let write = || -> std::io::Result<usize> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
            serde_json::to_writer(
                &mut out,
                &SnapshotHeader {
                    format: SNAPSHOT_FORMAT.to_owned(),
                },
            )?;
            out.write_all(b"\n")?;
            let mut n = 0;
            for shard in self.shards.iter() {
                // Copy out under the lock, write after it: claims never wait on the disk.
                let entries: Vec<SnapshotEntry> = {
                    let shard = lock(shard);
                    shard
                        .map
                        .iter()
                        .filter(|(_, s)| s.expires_at > now)
                        .map(|(k, s)| SnapshotEntry {
                            key: to_hex(k),
                            first: s.first.clone(),
                            duplicates: s.duplicates,
                            expires_at: s.expires_at,
                        })
                        .collect()
                };
                for e in &entries {
                    serde_json::to_writer(&mut out, e)?;
                    out.write_all(b"\n")?;
                }
                n += entries.len();
            }
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)?;
            Ok(n)
        };
        write().map_err(|e| snapshot_err(path, e))
    }

    /// Live entries (expired ones not yet swept may be counted until the next claim on their
    /// shard).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// True when the window holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How far back the window really reaches at `now`: `configured`, unless the entry cap
    /// evicted entries younger than that, in which case the age of the newest evicted entry.
    pub fn effective_window(&self, configured: Duration, now: DateTime<Utc>) -> Duration {
        let newest_eviction = self
            .shards
            .iter()
            .filter_map(|s| lock(s).last_capacity_eviction)
            .max();
        match newest_eviction {
            Some(at) => (now - at).to_std().unwrap_or_default().min(configured),
            None => configured,
        }
    }

    fn shard(&self, key: &WindowKey) -> MutexGuard<'_, Shard<Slot>> {
        lock(&self.shards[usize::from(key[0]) % SHARDS])
    }

    /// The synchronous near-duplicate step (the trait's future just wraps it).
    pub fn near_now(&self, probe: &NearProbe<'_>, rules: &WindowRules) -> Option<NearHit> {
        let now = probe.entry.first_seen_at;
        let mut shard = lock(&self.near[usize::from(probe.customer[0]) % SHARDS]);
        let mut items = shard
            .map
            .remove(probe.customer)
            .filter(|l| l.expires_at > now)
            .map(|l| l.items)
            .unwrap_or_default();
        let hit = best_near(&items, probe, rules);
        let longest = rules.longest();
        items.retain(|i| add(i.first.first_seen_at, longest) > now);
        items.push_front(NearItem::of(probe));
        items.truncate(probe.keep.max(1));
        let list = NearList {
            items,
            expires_at: add(now, longest),
        };
        shard.put(*probe.customer, list, now, self.cap_per_shard);
        hit
    }

    /// The synchronous claim (the trait's future just wraps it).
    pub fn claim_now(&self, key: &WindowKey, entry: &FirstSeen, rules: &WindowRules) -> Claim {
        let now = entry.first_seen_at;
        let mut shard = self.shard(key);
        if let Some(slot) = shard.map.get_mut(key)
            && slot.expires_at > now
            && now
                < add(
                    slot.first.first_seen_at,
                    rules.between(&slot.first.channel, &entry.channel),
                )
        {
            slot.duplicates += 1;
            return Claim::Duplicate {
                first: slot.first.clone(),
                duplicates: slot.duplicates,
            };
        }
        let expires_at = add(now, rules.longest_from(&entry.channel));
        let slot = Slot {
            first: entry.clone(),
            duplicates: 0,
            expires_at,
        };
        shard.put(*key, slot, now, self.cap_per_shard);
        Claim::First
    }
}

/// `at + window`, saturating.
fn add(at: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(window)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A poisoned shard lock only means another claim panicked mid-update of a plain map; the map
/// is still a valid map, so keep serving.
fn lock<V>(m: &Mutex<Shard<V>>) -> MutexGuard<'_, Shard<V>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn snapshot_err(path: &Path, source: std::io::Error) -> WindowError {
    WindowError::Snapshot {
        path: path.display().to_string(),
        source,
    }
}

#[derive(Serialize, Deserialize)]
struct SnapshotHeader {
    format: String,
}

#[derive(Serialize, Deserialize)]
struct SnapshotEntry {
    key: String,
    first: FirstSeen,
    duplicates: u64,
    expires_at: DateTime<Utc>,
}

impl DedupWindow for EmbeddedWindow {
    async fn claim(
        &self,
        key: &WindowKey,
        entry: &FirstSeen,
        rules: &WindowRules,
    ) -> Result<Claim, WindowError> {
        Ok(self.claim_now(key, entry, rules))
    }

    async fn near(
        &self,
        probe: &NearProbe<'_>,
        rules: &WindowRules,
    ) -> Result<Option<NearHit>, WindowError> {
        Ok(self.near_now(probe, rules))
    }

    async fn get(
        &self,
        key: &WindowKey,
        now: DateTime<Utc>,
    ) -> Result<Option<(FirstSeen, u64)>, WindowError> {
        Ok(self
            .shard(key)
            .live(key, now)
            .map(|s| (s.first.clone(), s.duplicates)))
    }

    async fn set_conversation(
        &self,
        key: &WindowKey,
        conversation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, WindowError> {
        let mut shard = self.shard(key);
        match shard.map.get_mut(key) {
            Some(slot) if slot.expires_at > now => {
                slot.first.conversation_id = Some(conversation_id.to_owned());
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::suite;
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).single().unwrap()
    }

    fn entry(s: i64) -> FirstSeen {
        FirstSeen {
            message_id: Some(format!("m{s}")),
            conversation_id: None,
            channel: "sms".into(),
            first_seen_at: at(s),
        }
    }

    fn key(i: u32) -> WindowKey {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&i.to_be_bytes());
        k[4] = 7;
        k
    }

    #[tokio::test]
    async fn embedded_passes_the_suite() {
        suite::run(crate::window::Window::Embedded(std::sync::Arc::new(
            EmbeddedWindow::new(10_000),
        )))
        .await;
    }

    #[test]
    fn cap_evicts_the_oldest_and_reports_the_effective_window() {
        // All keys in one shard (first byte 0): cap per shard is 2.
        let w = EmbeddedWindow::new(2 * SHARDS);
        let ttl = Duration::from_secs(300);
        for i in 0..5 {
            assert_eq!(
                w.claim_now(&key(i), &entry(i64::from(i)), &WindowRules::uniform(ttl)),
                Claim::First
            );
        }
        assert_eq!(w.len(), 2);
        // The two newest are kept, the older ones were evicted and are new again.
        assert!(matches!(
            w.claim_now(&key(4), &entry(10), &WindowRules::uniform(ttl)),
            Claim::Duplicate { .. }
        ));
        assert_eq!(
            w.claim_now(&key(0), &entry(11), &WindowRules::uniform(ttl)),
            Claim::First
        );
        // Newest evicted entry (key 3, then key 4 for key 0's room) bounds the window.
        let eff = w.effective_window(ttl, at(20));
        assert!(eff < ttl, "{eff:?}");
        assert_eq!(
            EmbeddedWindow::new(100).effective_window(ttl, at(20)),
            ttl,
            "no eviction: the configured window"
        );
    }

    #[test]
    fn expired_entries_are_swept_in_order() {
        let w = EmbeddedWindow::new(10_000);
        let ttl = Duration::from_secs(10);
        for i in 0..50 {
            w.claim_now(&key(i), &entry(0), &WindowRules::uniform(ttl));
        }
        assert_eq!(w.len(), 50);
        // A claim after expiry sweeps the front of its shard.
        assert_eq!(
            w.claim_now(&key(99), &entry(11), &WindowRules::uniform(ttl)),
            Claim::First
        );
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn snapshot_round_trip_keeps_live_entries_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/window.snapshot");
        let w = EmbeddedWindow::new(1000);
        w.claim_now(
            &key(1),
            &entry(0),
            &WindowRules::uniform(Duration::from_secs(100)),
        );
        w.claim_now(
            &key(1),
            &entry(1),
            &WindowRules::uniform(Duration::from_secs(100)),
        );
        w.claim_now(
            &key(2),
            &entry(0),
            &WindowRules::uniform(Duration::from_secs(5)),
        );
        assert_eq!(w.snapshot(&path, at(1)).unwrap(), 2);
        let back = EmbeddedWindow::load(&path, 1000, at(10)).unwrap();
        assert_eq!(back.len(), 1, "the 5 s entry expired before the reload");
        match back.claim_now(
            &key(1),
            &entry(20),
            &WindowRules::uniform(Duration::from_secs(100)),
        ) {
            Claim::Duplicate { first, duplicates } => {
                assert_eq!(first, entry(0));
                assert_eq!(duplicates, 2);
            }
            Claim::First => panic!("the snapshot lost the entry"),
        }
        assert!(
            EmbeddedWindow::load(&dir.path().join("none"), 10, at(0))
                .unwrap()
                .is_empty()
        );
        std::fs::write(&path, "{\"format\":\"other\"}\n").unwrap();
        assert!(matches!(
            EmbeddedWindow::load(&path, 10, at(0)),
            Err(WindowError::Corrupt { .. })
        ));
    }
}
