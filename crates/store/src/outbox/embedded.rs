//! The embedded outbox: one redb file, written only by one writer thread that commits a group
//! of operations per transaction (group commit), so thousands of concurrent accepts share a
//! few durable commits. Reads use their own read transactions and never wait for the writer.
//!
//! Tables: `outbox_v1` (key → the notification as JSON), `outbox_due_v1` ((due ms, key): what
//! relays claim, lease ends included), `outbox_guard_v2` (content-guard key → the newest key
//! with it, its creation and expiry), `outbox_expiry_v1` ((expiry ms, key): what the purge
//! visits).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use dedupd_core::notification::Status;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, TableDefinition,
    WriteTransaction,
};
use tokio::sync::{mpsc, oneshot};

use super::{
    AcceptOptions, Accepted, Backlog, Claimed, GuardMode, NewNotification, Notification,
    OutboxOptions, Outcome, StatusEvent, Work, apply_outcome, finish_transition, lease_token,
};
use crate::StoreError;

use super::OutboxStore;

const NOTIF: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox_v1");
const DUE: TableDefinition<(u64, &str), ()> = TableDefinition::new("outbox_due_v1");
/// Value: created (ms, big-endian u64) ‖ expires (ms) ‖ key, so the guard is checked without
/// reading the notification.
const GUARD: TableDefinition<&[u8], &[u8]> = TableDefinition::new("outbox_guard_v2");

fn guard_value(n: &Notification) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + n.key.len());
    v.extend_from_slice(&ms(n.created_at).to_be_bytes());
    v.extend_from_slice(&ms(n.expires_at).to_be_bytes());
    v.extend_from_slice(n.key.as_bytes());
    v
}

/// (created ms, expires ms, key) of a guard value.
fn read_guard(v: &[u8]) -> Option<(u64, u64, &str)> {
    let created = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let expires = u64::from_be_bytes(v.get(8..16)?.try_into().ok()?);
    Some((created, expires, std::str::from_utf8(v.get(16..)?).ok()?))
}
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("outbox_expiry_v1");
/// Status events by id (issue 17), when the outbox writes them: written in the transaction of
/// the change they report (an id still held is not written again: an `unknown` after a
/// recheck is the same event), deleted once published.
const EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox_events_v1");
/// The unpublished events, in the order they were written: (sequence, id).
const UNPUBLISHED: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("outbox_events_unpublished_v1");

/// The file name inside the outbox directory.
pub const OUTBOX_FILE: &str = "outbox.redb";
/// Operations committed together at most.
const GROUP: usize = 512;

fn ms(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp_millis()).unwrap_or(0)
}

fn encode(n: &Notification) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(n).map_err(|e| StoreError::backend("encode", n.key.as_str(), e))
}

fn decode(key: &str, bytes: &[u8]) -> Result<Notification, StoreError> {
    serde_json::from_slice(bytes).map_err(|_| StoreError::Corrupt {
        key: key.to_owned(),
        reason: "outbox entry is not a notification",
    })
}

enum Op {
    Accept(
        Box<NewNotification>,
        AcceptOptions,
        DateTime<Utc>,
        oneshot::Sender<Result<Accepted, StoreError>>,
    ),
    Plain(
        Box<NewNotification>,
        DateTime<Utc>,
        oneshot::Sender<Result<(), StoreError>>,
    ),
    Claim(
        DateTime<Utc>,
        Duration,
        usize,
        oneshot::Sender<Result<Vec<Claimed>, StoreError>>,
    ),
    Finish(
        String,
        String,
        Outcome,
        Work,
        DateTime<Utc>,
        oneshot::Sender<Result<bool, StoreError>>,
    ),
    Purge(DateTime<Utc>, oneshot::Sender<Result<u64, StoreError>>),
    Published(Vec<String>, oneshot::Sender<Result<u64, StoreError>>),
}

/// A reply waiting for the group's commit.
enum Reply {
    Accept(oneshot::Sender<Result<Accepted, StoreError>>, Box<Accepted>),
    /// `true`: the key existed, nothing was written.
    Plain(oneshot::Sender<Result<(), StoreError>>, bool),
    Claim(
        oneshot::Sender<Result<Vec<Claimed>, StoreError>>,
        Vec<Claimed>,
    ),
    Finish(oneshot::Sender<Result<bool, StoreError>>, bool),
    Purge(oneshot::Sender<Result<u64, StoreError>>, u64),
    Published(oneshot::Sender<Result<u64, StoreError>>, u64),
}

impl Reply {
    fn ok(self, at: &str) {
        let _ = match self {
            Reply::Accept(tx, v) => tx.send(Ok(*v)).map_err(drop),
            Reply::Plain(tx, false) => tx.send(Ok(())).map_err(drop),
            Reply::Plain(tx, true) => tx
                .send(Err(StoreError::Backend {
                    op: "insert",
                    at: at.to_owned(),
                    source: "the key exists".into(),
                }))
                .map_err(drop),
            Reply::Claim(tx, v) => tx.send(Ok(v)).map_err(drop),
            Reply::Finish(tx, v) => tx.send(Ok(v)).map_err(drop),
            Reply::Purge(tx, v) => tx.send(Ok(v)).map_err(drop),
            Reply::Published(tx, v) => tx.send(Ok(v)).map_err(drop),
        };
    }
    fn fail(self, op: &'static str, at: &str, msg: &str) {
        let err = || StoreError::Backend {
            op,
            at: at.to_owned(),
            source: msg.to_owned().into(),
        };
        let _ = match self {
            Reply::Accept(tx, _) => tx.send(Err(err())).map_err(drop),
            Reply::Plain(tx, _) => tx.send(Err(err())).map_err(drop),
            Reply::Claim(tx, _) => tx.send(Err(err())).map_err(drop),
            Reply::Finish(tx, _) => tx.send(Err(err())).map_err(drop),
            Reply::Purge(tx, _) => tx.send(Err(err())).map_err(drop),
            Reply::Published(tx, _) => tx.send(Err(err())).map_err(drop),
        };
    }
}

/// The outbox in a redb file under a directory. Cheap to clone; the writer thread stops when
/// the last clone is dropped.
#[derive(Debug, Clone)]
pub struct EmbeddedOutbox {
    db: Arc<Database>,
    tx: mpsc::Sender<Op>,
    path: PathBuf,
}

impl EmbeddedOutbox {
    /// Opens (creating when needed) the outbox in `dir` and starts its writer thread, which
    /// writes what `opts` asks for.
    pub fn open(dir: &Path, opts: OutboxOptions) -> Result<Self, StoreError> {
        let open_err = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: dir.display().to_string(),
            source: e,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(Box::new(e)))?;
        let path = dir.join(OUTBOX_FILE);
        let db = Database::create(&path).map_err(|e| open_err(Box::new(e)))?;
        let w = db.begin_write().map_err(|e| open_err(Box::new(e)))?;
        w.open_table(NOTIF).map_err(|e| open_err(Box::new(e)))?;
        w.open_table(DUE).map_err(|e| open_err(Box::new(e)))?;
        w.open_table(GUARD).map_err(|e| open_err(Box::new(e)))?;
        w.open_table(EXPIRY).map_err(|e| open_err(Box::new(e)))?;
        // Events an earlier version kept after publishing them (it marked them): deleted now.
        compact_published(&w).map_err(|e| open_err(Box::new(e)))?;
        w.commit().map_err(|e| open_err(Box::new(e)))?;
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel::<Op>(4 * GROUP);
        let writer_db = Arc::clone(&db);
        let at = path.display().to_string();
        std::thread::Builder::new()
            .name("dedupd-outbox-writer".into())
            .spawn(move || writer_loop(&writer_db, rx, &at, opts))
            .map_err(|e| open_err(Box::new(e)))?;
        Ok(Self { db, tx, path })
    }

    /// The redb file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The redb file, for errors.
    fn at(&self) -> String {
        self.path.display().to_string()
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    fn scan(&self, f: &mut dyn FnMut(Notification)) -> Result<(), StoreError> {
        let r = self
            .db
            .begin_read()
            .map_err(|e| StoreError::backend("scan", self.at(), e))?;
        let t = r
            .open_table(NOTIF)
            .map_err(|e| StoreError::backend("scan", self.at(), e))?;
        for entry in t
            .iter()
            .map_err(|e| StoreError::backend("scan", self.at(), e))?
        {
            let (k, v) = entry.map_err(|e| StoreError::backend("scan", self.at(), e))?;
            f(decode(k.value(), v.value())?);
        }
        Ok(())
    }
}

impl OutboxStore for EmbeddedOutbox {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn accept(
        &self,
        new: NewNotification,
        opts: AcceptOptions,
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        self.call(|tx| Op::Accept(Box::new(new), opts, now, tx))
            .await
    }

    async fn insert_plain(
        &self,
        new: NewNotification,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.call(|tx| Op::Plain(Box::new(new), now, tx)).await
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.call(|tx| Op::Claim(now, lease, limit, tx)).await
    }

    async fn finish(
        &self,
        key: &str,
        lease: &str,
        outcome: Outcome,
        work: Work,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (key, lease) = (key.to_owned(), lease.to_owned());
        self.call(|tx| Op::Finish(key, lease, outcome, work, now, tx))
            .await
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.call(|tx| Op::Purge(now, tx)).await
    }

    async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Notification>, StoreError> {
        let r = self
            .db
            .begin_read()
            .map_err(|e| StoreError::backend("read", self.at(), e))?;
        let t = r
            .open_table(NOTIF)
            .map_err(|e| StoreError::backend("read", self.at(), e))?;
        let v = t
            .get(key)
            .map_err(|e| StoreError::backend("read", self.at(), e))?;
        let n = v.map(|v| decode(key, v.value())).transpose()?;
        Ok(n.filter(|n| n.expires_at > now))
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        let err = |e: redb::Error| StoreError::backend("backlog", self.at(), e);
        let r = self.db.begin_read().map_err(|e| err(e.into()))?;
        let due = r.open_table(DUE).map_err(|e| err(e.into()))?;
        let notif = r.open_table(NOTIF).map_err(|e| err(e.into()))?;
        let mut out = Backlog::default();
        // The due index holds exactly the notifications with work ahead.
        for entry in due.iter().map_err(|e| err(e.into()))? {
            let (k, _) = entry.map_err(|e| err(e.into()))?;
            let (_, key) = k.value();
            let Some(v) = notif.get(key).map_err(|e| err(e.into()))? else {
                continue;
            };
            let n = decode(key, v.value())?;
            out.count += 1;
            out.oldest = Some(out.oldest.map_or(n.created_at, |o| o.min(n.created_at)));
        }
        Ok(out)
    }

    async fn counts(&self) -> Result<BTreeMap<Status, u64>, StoreError> {
        let mut out = BTreeMap::new();
        self.scan(&mut |n| *out.entry(n.status).or_insert(0) += 1)?;
        Ok(out)
    }

    async fn list(&self, status: Status, limit: usize) -> Result<Vec<Notification>, StoreError> {
        let mut out = Vec::new();
        self.scan(&mut |n| {
            if n.status == status {
                out.push(n);
            }
        })?;
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.key.cmp(&b.key)));
        out.truncate(limit);
        Ok(out)
    }

    async fn unpublished_events(&self, limit: usize) -> Result<Vec<StatusEvent>, StoreError> {
        let err = |e: redb::Error| StoreError::backend("events", self.at(), e);
        let r = self.db.begin_read().map_err(|e| err(e.into()))?;
        let (pending, events) = match (r.open_table(UNPUBLISHED), r.open_table(EVENTS)) {
            (Ok(p), Ok(e)) => (p, e),
            // No event was ever written.
            (Err(redb::TableError::TableDoesNotExist(_)), _)
            | (_, Err(redb::TableError::TableDoesNotExist(_))) => return Ok(Vec::new()),
            (Err(e), _) | (_, Err(e)) => return Err(err(e.into())),
        };
        let mut out = Vec::new();
        for entry in pending.iter().map_err(|e| err(e.into()))? {
            if out.len() >= limit {
                break;
            }
            let (k, _) = entry.map_err(|e| err(e.into()))?;
            let (_, id) = k.value();
            if let Some(v) = events.get(id).map_err(|e| err(e.into()))? {
                out.push(decode_event(id, v.value())?);
            }
        }
        Ok(out)
    }

    async fn remove_published(&self, ids: Vec<String>) -> Result<u64, StoreError> {
        self.call(|tx| Op::Published(ids, tx)).await
    }

    async fn events_backlog(&self) -> Result<u64, StoreError> {
        let err = |e: redb::Error| StoreError::backend("events", self.at(), e);
        let r = self.db.begin_read().map_err(|e| err(e.into()))?;
        match r.open_table(EVENTS) {
            Ok(t) => t.len().map_err(|e| err(e.into())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(err(e.into())),
        }
    }
}

/// Deletes the events a version that kept published events had marked published.
fn compact_published(w: &WriteTransaction) -> Result<(), redb::Error> {
    let mut events = w.open_table(EVENTS)?;
    let mut done = Vec::new();
    for entry in events.iter()? {
        let (k, v) = entry?;
        if serde_json::from_slice::<StoredEvent>(v.value()).is_ok_and(|s| s.published) {
            done.push(k.value().to_owned());
        }
    }
    for id in done {
        events.remove(id.as_str())?;
    }
    Ok(())
}

fn decode_event(id: &str, bytes: &[u8]) -> Result<StatusEvent, StoreError> {
    serde_json::from_slice::<StoredEvent>(bytes)
        .map(|s| s.event)
        .map_err(|_| StoreError::Corrupt {
            key: id.to_owned(),
            reason: "outbox event entry is not a status event",
        })
}

/// An event as stored: the event and its place in the unpublished index. `published` is
/// always false now (a published event is deleted); true only in files of an earlier version,
/// which [`compact_published`] clears at open.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredEvent {
    seq: u64,
    #[serde(default)]
    published: bool,
    event: StatusEvent,
}

fn writer_loop(db: &Database, mut rx: mpsc::Receiver<Op>, at: &str, opts: OutboxOptions) {
    while let Some(first) = rx.blocking_recv() {
        let mut ops = vec![first];
        while ops.len() < GROUP {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(ops.len());
        let result = (|| -> Result<(), StoreError> {
            let w = db
                .begin_write()
                .map_err(|e| StoreError::backend("write", at, e))?;
            {
                let mut tables = Tables::open(&w, at, opts)?;
                for op in ops.drain(..) {
                    replies.push(tables.apply(op)?);
                }
            }
            w.commit().map_err(|e| StoreError::backend("commit", at, e))
        })();
        match result {
            Ok(()) => replies.into_iter().for_each(|r| r.ok(at)),
            Err(e) => {
                let msg = e.to_string();
                tracing::error!(error = %msg, "Outbox commit failed; the group is refused");
                for r in replies {
                    r.fail("commit", at, &msg);
                }
                // Operations not applied yet (the error came from one of them) get the error too.
                for op in ops {
                    fail_op(op, at, &msg);
                }
            }
        }
    }
}

fn fail_op(op: Op, at: &str, msg: &str) {
    let err = || StoreError::Backend {
        op: "write",
        at: at.to_owned(),
        source: msg.to_owned().into(),
    };
    let _ = match op {
        Op::Accept(_, _, _, tx) => tx.send(Err(err())).map_err(drop),
        Op::Plain(_, _, tx) => tx.send(Err(err())).map_err(drop),
        Op::Claim(_, _, _, tx) => tx.send(Err(err())).map_err(drop),
        Op::Finish(_, _, _, _, _, tx) => tx.send(Err(err())).map_err(drop),
        Op::Purge(_, tx) => tx.send(Err(err())).map_err(drop),
        Op::Published(_, tx) => tx.send(Err(err())).map_err(drop),
    };
}

struct Tables<'t> {
    notif: Table<'t, &'static str, &'static [u8]>,
    due: Table<'t, (u64, &'static str), ()>,
    guard: Table<'t, &'static [u8], &'static [u8]>,
    expiry: Table<'t, (u64, &'static str), ()>,
    events: Table<'t, &'static str, &'static [u8]>,
    unpublished: Table<'t, (u64, &'static str), ()>,
    /// What the outbox writes besides notifications.
    opts: OutboxOptions,
    /// The outbox file, for errors.
    at: &'t str,
}

/// A write error of the outbox file `at`.
fn w(at: &str) -> impl Fn(redb::Error) -> StoreError + '_ {
    move |e| StoreError::backend("write", at, e)
}

impl<'t> Tables<'t> {
    fn open(
        tx: &'t WriteTransaction,
        at: &'t str,
        opts: OutboxOptions,
    ) -> Result<Self, StoreError> {
        let w = |e: redb::TableError| w(at)(e.into());
        Ok(Self {
            notif: tx.open_table(NOTIF).map_err(w)?,
            due: tx.open_table(DUE).map_err(w)?,
            guard: tx.open_table(GUARD).map_err(w)?,
            expiry: tx.open_table(EXPIRY).map_err(w)?,
            events: tx.open_table(EVENTS).map_err(w)?,
            unpublished: tx.open_table(UNPUBLISHED).map_err(w)?,
            opts,
            at,
        })
    }

    fn load(&self, key: &str) -> Result<Option<Notification>, StoreError> {
        let v = self.notif.get(key).map_err(|e| w(self.at)(e.into()))?;
        v.map(|v| decode(key, v.value())).transpose()
    }

    /// Writes `n`, moving its index entries from what `old` had.
    fn store(&mut self, old: Option<&Notification>, n: &Notification) -> Result<(), StoreError> {
        if let Some(old) = old {
            if let Some(at) = old.next_attempt_at {
                self.due
                    .remove((ms(at), old.key.as_str()))
                    .map_err(|e| w(self.at)(e.into()))?;
            }
            if old.expires_at != n.expires_at {
                self.expiry
                    .remove((ms(old.expires_at), old.key.as_str()))
                    .map_err(|e| w(self.at)(e.into()))?;
            }
        }
        if let Some(at) = n.next_attempt_at {
            self.due
                .insert((ms(at), n.key.as_str()), ())
                .map_err(|e| w(self.at)(e.into()))?;
        }
        self.expiry
            .insert((ms(n.expires_at), n.key.as_str()), ())
            .map_err(|e| w(self.at)(e.into()))?;
        self.notif
            .insert(n.key.as_str(), encode(n)?.as_slice())
            .map_err(|e| w(self.at)(e.into()))?;
        Ok(())
    }

    fn forget(&mut self, n: &Notification) -> Result<(), StoreError> {
        if let Some(at) = n.next_attempt_at {
            self.due
                .remove((ms(at), n.key.as_str()))
                .map_err(|e| w(self.at)(e.into()))?;
        }
        self.expiry
            .remove((ms(n.expires_at), n.key.as_str()))
            .map_err(|e| w(self.at)(e.into()))?;
        if let Some(g) = n.guard_key {
            let points_here = self
                .guard
                .get(g.as_slice())
                .map_err(|e| w(self.at)(e.into()))?
                .is_some_and(|v| read_guard(v.value()).is_some_and(|(_, _, k)| k == n.key));
            if points_here {
                self.guard
                    .remove(g.as_slice())
                    .map_err(|e| w(self.at)(e.into()))?;
            }
        }
        self.notif
            .remove(n.key.as_str())
            .map_err(|e| w(self.at)(e.into()))?;
        Ok(())
    }

    fn apply(&mut self, op: Op) -> Result<Reply, StoreError> {
        Ok(match op {
            Op::Accept(new, opts, now, tx) => {
                Reply::Accept(tx, Box::new(self.accept(*new, opts, now)?))
            }
            Op::Plain(new, now, tx) => {
                // An existing key is the caller's error; the rest of the group goes on.
                if self
                    .notif
                    .get(new.key.as_str())
                    .map_err(|e| w(self.at)(e.into()))?
                    .is_some()
                {
                    return Ok(Reply::Plain(tx, true));
                }
                let n = Notification::from_new(*new, &AcceptOptions::default(), now);
                self.store(None, &n)?;
                Reply::Plain(tx, false)
            }
            Op::Claim(now, lease, limit, tx) => Reply::Claim(tx, self.claim(now, lease, limit)?),
            Op::Finish(key, lease, outcome, work, now, tx) => {
                Reply::Finish(tx, self.finish(&key, &lease, outcome, work, now)?)
            }
            Op::Purge(now, tx) => Reply::Purge(tx, self.purge(now)?),
            Op::Published(ids, tx) => Reply::Published(tx, self.published(&ids)?),
        })
    }

    /// Writes the event `transition` of `n` in this transaction when the options ask for
    /// status events, unless the outbox holds its id already.
    fn emit(
        &mut self,
        n: &Notification,
        transition: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(event) = self.opts.event(n, transition, now) else {
            return Ok(());
        };
        if self
            .events
            .get(event.id.as_str())
            .map_err(|e| w(self.at)(e.into()))?
            .is_some()
        {
            return Ok(());
        }
        let seq = match self.unpublished.last().map_err(|e| w(self.at)(e.into()))? {
            Some((k, _)) => k.value().0 + 1,
            None => 0,
        }
        .max(ms(now) << 12);
        let stored = StoredEvent {
            seq,
            published: false,
            event,
        };
        let bytes =
            serde_json::to_vec(&stored).map_err(|e| StoreError::backend("encode", self.at, e))?;
        self.unpublished
            .insert((seq, stored.event.id.as_str()), ())
            .map_err(|e| w(self.at)(e.into()))?;
        self.events
            .insert(stored.event.id.as_str(), bytes.as_slice())
            .map_err(|e| w(self.at)(e.into()))?;
        Ok(())
    }

    fn published(&mut self, ids: &[String]) -> Result<u64, StoreError> {
        let mut done = 0;
        for id in ids {
            let stored = match self
                .events
                .get(id.as_str())
                .map_err(|e| w(self.at)(e.into()))?
            {
                Some(v) => serde_json::from_slice::<StoredEvent>(v.value()).map_err(|_| {
                    StoreError::Corrupt {
                        key: id.clone(),
                        reason: "outbox event entry is not a status event",
                    }
                })?,
                None => continue,
            };
            self.unpublished
                .remove((stored.seq, id.as_str()))
                .map_err(|e| w(self.at)(e.into()))?;
            self.events
                .remove(id.as_str())
                .map_err(|e| w(self.at)(e.into()))?;
            done += 1;
        }
        Ok(done)
    }

    fn accept(
        &mut self,
        new: NewNotification,
        opts: AcceptOptions,
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        if let Some(existing) = self.load(&new.key)? {
            if existing.expires_at > now {
                return Ok(if existing.fingerprint == new.fingerprint {
                    Accepted::Replay(existing)
                } else {
                    Accepted::Mismatch(existing)
                });
            }
            self.forget(&existing)?;
        }
        let earlier = match (new.guard_key, opts.guard) {
            (Some(g), GuardMode::Report | GuardMode::Suppress) => {
                let v = self
                    .guard
                    .get(g.as_slice())
                    .map_err(|e| w(self.at)(e.into()))?;
                v.and_then(|v| {
                    let (created, expires, key) = read_guard(v.value())?;
                    (expires > ms(now) && created > ms(now - opts.guard_window))
                        .then(|| key.to_owned())
                })
            }
            _ => None,
        };
        let mut n = Notification::from_new(new, &opts, now);
        n.apply_guard(earlier, opts.guard);
        if let Some(g) = n.guard_key {
            self.guard
                .insert(g.as_slice(), guard_value(&n).as_slice())
                .map_err(|e| w(self.at)(e.into()))?;
        }
        self.store(None, &n)?;
        self.emit(&n, "accepted", now)?;
        Ok(Accepted::Created(n))
    }

    fn claim(
        &mut self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut due_keys = Vec::new();
        for entry in self
            .due
            .range((0u64, "")..(ms(now).saturating_add(1), ""))
            .map_err(|e| w(self.at)(e.into()))?
        {
            let (k, ()) = entry
                .map_err(|e| w(self.at)(e.into()))
                .map(|(k, _)| (k, ()))?;
            due_keys.push(k.value().1.to_owned());
            if due_keys.len() >= limit {
                break;
            }
        }
        let mut out = Vec::with_capacity(due_keys.len());
        for key in due_keys {
            let Some(old) = self.load(&key)? else {
                continue;
            };
            if !matches!(
                old.status,
                Status::Pending | Status::Sending | Status::Unknown
            ) {
                continue;
            }
            let mut n = old.clone();
            n.status = Status::Sending;
            n.lease = Some(lease_token());
            n.first_attempt_at.get_or_insert(now);
            n.next_attempt_at = Some(now + lease);
            n.updated_at = now;
            self.store(Some(&old), &n)?;
            out.push(Claimed {
                notification: n,
                previous: old.status,
            });
        }
        Ok(out)
    }

    fn finish(
        &mut self,
        key: &str,
        lease: &str,
        outcome: Outcome,
        work: Work,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let Some(old) = self.load(key)? else {
            return Ok(false);
        };
        if old.status != Status::Sending || old.lease.as_deref() != Some(lease) {
            return Ok(false);
        }
        let mut n = old.clone();
        apply_outcome(&mut n, outcome, work, now);
        self.store(Some(&old), &n)?;
        if let Some(t) = finish_transition(&n) {
            self.emit(&n, t, now)?;
        }
        Ok(true)
    }

    fn purge(&mut self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut keys = Vec::new();
        for entry in self
            .expiry
            .range((0u64, "")..(ms(now).saturating_add(1), ""))
            .map_err(|e| w(self.at)(e.into()))?
        {
            let (k, _) = entry.map_err(|e| w(self.at)(e.into()))?;
            keys.push(k.value().1.to_owned());
        }
        let mut purged = 0;
        for key in keys {
            if let Some(n) = self.load(&key)?
                && n.next_attempt_at.is_none()
                && n.expires_at <= now
            {
                self.forget(&n)?;
                purged += 1;
            }
        }
        Ok(purged)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::outbox::{Outbox, suite};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_outbox_passes_the_suite() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::Embedded(
            EmbeddedOutbox::open(dir.path(), OutboxOptions::with_status_events()).unwrap(),
        );
        suite::run(&outbox).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_outbox_without_status_events_writes_none() {
        let dir = tempfile::tempdir().unwrap();
        let outbox =
            Outbox::Embedded(EmbeddedOutbox::open(dir.path(), OutboxOptions::default()).unwrap());
        suite::run_without_status_events(&outbox).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_outbox_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let now = suite::t0();
        {
            let o = Outbox::Embedded(
                EmbeddedOutbox::open(dir.path(), OutboxOptions::with_status_events()).unwrap(),
            );
            o.accept(
                suite::new_notification("k1", "hello"),
                AcceptOptions::default(),
                now,
            )
            .await
            .unwrap();
        }
        // The writer thread of the first handle may still hold the file for a moment.
        let mut reopened = None;
        for _ in 0..200 {
            match EmbeddedOutbox::open(dir.path(), OutboxOptions::with_status_events()) {
                Ok(o) => {
                    reopened = Some(o);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
        let o = Outbox::Embedded(reopened.expect("the outbox reopens"));
        let n = o
            .get("k1", now)
            .await
            .unwrap()
            .expect("the accepted notification is durable");
        assert_eq!(n.status, Status::Pending);
    }
}
