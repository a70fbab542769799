//! The resolution index in PostgreSQL: three tables, created at connect if missing
//! (`resolve_meta`: the settings; `resolve_records`: sequence number → a record, its values and
//! its customer, as JSON; `resolve_aliases`: absorbed customer → the customer it joined).
//!
//! Appends from several processes are serialized by a transaction-scoped advisory lock, so
//! sequence numbers follow commit order and every process loads the records in the order they
//! were recorded. A commit that appended records notifies a channel of the index
//! (`NOTIFY dedupd_resolve[_<schema>]`), so the other processes catch up at once
//! ([`PgIndex::listen`]) rather than at their next recording. Connections can be pinned to a
//! schema (`search_path`), which is how each test gets its own.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::postgres::{PgListener, PgPool};

use super::{Entry, ResolutionIndex, Settings, Snapshot, Stored, follow};
use crate::pg::db;
use crate::{StoreError, redact_url};

/// The advisory lock key that serializes appends (and a replace) across processes.
const APPEND_LOCK: i64 = 0x6465_6475_7064_7278; // "dedupdrx"

/// Rows inserted per statement when a whole index is written.
const CHUNK: usize = 10_000;

const SCHEMA: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS resolve_meta (name text PRIMARY KEY, value jsonb NOT NULL)",
    "CREATE TABLE IF NOT EXISTS resolve_records (seq bigint PRIMARY KEY, record jsonb NOT NULL)",
    "CREATE TABLE IF NOT EXISTS resolve_aliases (absorbed text PRIMARY KEY, customer text NOT NULL)",
];

/// The resolution index in PostgreSQL, shared by every process that connects to it.
#[derive(Debug, Clone)]
pub struct PgIndex {
    pool: PgPool,
    schema: Option<String>,
    addr: String,
    /// The channel appends notify.
    channel: String,
}

/// Waits for other processes' appends to a [`PgIndex`] ([`PgIndex::listen`]).
pub struct Appends {
    listener: PgListener,
    addr: String,
}

impl std::fmt::Debug for Appends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appends").finish_non_exhaustive()
    }
}

impl Appends {
    /// Waits until a process commits an append, or until the connection was lost and made
    /// again (appends may have been missed meanwhile): either way, time to catch up by reading
    /// ([`PgIndex::since`]).
    pub async fn next(&mut self) -> Result<(), StoreError> {
        self.listener
            .try_recv()
            .await
            .map(drop)
            .map_err(db("listen", &self.addr))
    }
}

impl PgIndex {
    /// Connects (pinned to `schema` when given) and creates the tables if missing.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Self, StoreError> {
        // Four for recordings, one for a listener.
        let pool = crate::pg::pool(url, schema, 5).await?;
        let addr = redact_url(url);
        for statement in SCHEMA {
            sqlx::query(statement)
                .execute(&pool)
                .await
                .map_err(db("create tables", &addr))?;
        }
        let channel = match schema {
            Some(s) => format!("dedupd_resolve_{s}"),
            None => "dedupd_resolve".to_owned(),
        };
        Ok(PgIndex {
            pool,
            schema: schema.map(str::to_owned),
            addr,
            channel,
        })
    }

    /// Listens for appends committed by any process (this one included) from now on.
    pub async fn listen(&self) -> Result<Appends, StoreError> {
        let addr = self.addr.clone();
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(db("listen", &addr))?;
        listener
            .listen(&self.channel)
            .await
            .map_err(db("listen", &addr))?;
        Ok(Appends { listener, addr })
    }

    /// The records committed after sequence number `seq`, in order (as
    /// [`PgRecording::since`], without holding any key).
    pub async fn since(&self, seq: i64) -> Result<Vec<(i64, Entry)>, StoreError> {
        let mut reading = self.begin(&[]).await?;
        let news = reading.since(seq).await?;
        reading.commit().await?;
        Ok(news)
    }

    /// Creates the schema `name` (`[a-z0-9_]` only) and connects pinned to it.
    pub async fn connect_new_schema(url: &str, name: &str) -> Result<Self, StoreError> {
        crate::pg::create_schema(url, name).await?;
        Self::connect(url, Some(name)).await
    }

    /// Drops the schema this index was pinned to (tests clean up with it) and closes the pool.
    pub async fn drop_schema(&self) -> Result<(), StoreError> {
        if let Some(s) = &self.schema {
            crate::pg::drop_schema(&self.pool, s, &self.addr).await?;
        }
        self.pool.close().await;
        Ok(())
    }
}

/// One recording in a shared index: a transaction that holds advisory locks on the keys of
/// the record being resolved until it ends, so two processes resolving records that could link
/// (they share a blocking key) take turns, and the second sees the first's record.
pub struct PgRecording {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    addr: String,
    channel: String,
}

impl PgIndex {
    /// Begins a recording holding `keys` (sorted here, so two recordings never wait on each
    /// other in a cycle).
    pub async fn begin(&self, keys: &[u64]) -> Result<PgRecording, StoreError> {
        let addr = self.addr.clone();
        let mut tx = self.pool.begin().await.map_err(db("begin", &addr))?;
        let mut keys: Vec<i64> = keys.iter().map(|&k| k as i64).collect();
        keys.sort_unstable();
        keys.dedup();
        sqlx::query("SELECT pg_advisory_xact_lock(k) FROM UNNEST($1::bigint[]) AS k ORDER BY k")
            .bind(&keys)
            .execute(&mut *tx)
            .await
            .map_err(db("lock", &addr))?;
        Ok(PgRecording {
            tx,
            addr,
            channel: self.channel.clone(),
        })
    }
}

impl PgRecording {
    /// The records committed after sequence number `seq`, in order, with their customer and
    /// the customers they absorbed as written (no alias followed: replaying them in order
    /// follows them).
    pub async fn since(&mut self, seq: i64) -> Result<Vec<(i64, Entry)>, StoreError> {
        let addr = self.addr.as_str();
        let rows =
            sqlx::query("SELECT seq, record FROM resolve_records WHERE seq > $1 ORDER BY seq")
                .bind(seq)
                .fetch_all(&mut *self.tx)
                .await
                .map_err(db("read", addr))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.try_get(0).map_err(db("read", addr))?;
            let value: serde_json::Value = row.try_get(1).map_err(db("read", addr))?;
            let corrupt = || StoreError::Corrupt {
                key: seq.to_string(),
                reason: "not a record of a resolution index",
            };
            let stored: Stored = serde_json::from_value(value).map_err(|_| corrupt())?;
            out.push((seq, stored.into_entry().ok_or_else(corrupt)?));
        }
        Ok(out)
    }

    /// Appends `entries` (after every record committed so far) and returns the sequence
    /// number of the last one.
    pub async fn append(&mut self, entries: &[Entry]) -> Result<i64, StoreError> {
        let addr = self.addr.clone();
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPEND_LOCK)
            .execute(&mut *self.tx)
            .await
            .map_err(db("lock", &addr))?;
        let next: i64 = sqlx::query("SELECT COALESCE(MAX(seq) + 1, 0) FROM resolve_records")
            .fetch_one(&mut *self.tx)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db("read", &addr))?;
        insert_entries(&mut self.tx, entries, next, &self.channel, &addr).await?;
        Ok(next + entries.len() as i64 - 1)
    }

    /// Commits: the records are there for every process, and the locks are released.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(db("commit", &self.addr))
    }
}

/// Inserts `entries` from sequence number `next` on, and their aliases, in `tx`, and notifies
/// `channel` (delivered when `tx` commits).
async fn insert_entries(
    tx: &mut sqlx::PgConnection,
    entries: &[Entry],
    next: i64,
    channel: &str,
    addr: &str,
) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(channel)
        .execute(&mut *tx)
        .await
        .map_err(db("notify", addr))?;
    for (c, chunk) in entries.chunks(CHUNK).enumerate() {
        let start = next + (c * CHUNK) as i64;
        let seqs: Vec<i64> = (start..start + chunk.len() as i64).collect();
        let records = chunk
            .iter()
            .map(|e| serde_json::to_value(Stored::of(e)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::backend("encode", addr, e))?;
        sqlx::query(
            "INSERT INTO resolve_records (seq, record) SELECT * FROM UNNEST($1::bigint[], $2::jsonb[])",
        )
        .bind(&seqs)
        .bind(&records)
        .execute(&mut *tx)
        .await
        .map_err(db("write", addr))?;
    }
    for e in entries {
        for absorbed in e.absorbed.iter().filter(|a| **a != e.customer) {
            sqlx::query(
                "INSERT INTO resolve_aliases (absorbed, customer) VALUES ($1, $2) \
                 ON CONFLICT (absorbed) DO UPDATE SET customer = EXCLUDED.customer",
            )
            .bind(absorbed)
            .bind(&e.customer)
            .execute(&mut *tx)
            .await
            .map_err(db("write", addr))?;
        }
    }
    Ok(())
}

impl ResolutionIndex for PgIndex {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn replace(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let addr = self.addr.as_str();
        let settings = serde_json::to_value(&snapshot.settings)
            .map_err(|e| StoreError::backend("encode", addr, e))?;
        let mut tx = self.pool.begin().await.map_err(db("begin", addr))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPEND_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db("lock", addr))?;
        for statement in ["DELETE FROM resolve_records", "DELETE FROM resolve_aliases"] {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(db("write", addr))?;
        }
        sqlx::query(
            "INSERT INTO resolve_meta (name, value) VALUES ('settings', $1) \
             ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
        )
        .bind(&settings)
        .execute(&mut *tx)
        .await
        .map_err(db("write", addr))?;
        insert_entries(&mut tx, &snapshot.entries, 0, &self.channel, addr).await?;
        tx.commit().await.map_err(db("commit", addr))
    }

    async fn append(&self, entries: Vec<Entry>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let addr = self.addr.as_str();
        let mut tx = self.pool.begin().await.map_err(db("begin", addr))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPEND_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db("lock", addr))?;
        let built = sqlx::query("SELECT 1 FROM resolve_meta WHERE name = 'settings'")
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("read", addr))?;
        if built.is_none() {
            return Err(StoreError::backend(
                "append",
                addr,
                std::io::Error::other(
                    "the index was never built: run merge plan with --resolve-index first",
                ),
            ));
        }
        let next: i64 = sqlx::query("SELECT COALESCE(MAX(seq) + 1, 0) FROM resolve_records")
            .fetch_one(&mut *tx)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db("read", addr))?;
        insert_entries(&mut tx, &entries, next, &self.channel, addr).await?;
        tx.commit().await.map_err(db("commit", addr))
    }

    async fn load(&self) -> Result<Option<Snapshot>, StoreError> {
        let addr = self.addr.as_str();
        // One snapshot of the three tables.
        let mut tx = self.pool.begin().await.map_err(db("begin", addr))?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await
            .map_err(db("read", addr))?;
        let Some(row) = sqlx::query("SELECT value FROM resolve_meta WHERE name = 'settings'")
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("read", addr))?
        else {
            return Ok(None);
        };
        let value: serde_json::Value = row.try_get(0).map_err(db("read", addr))?;
        let settings: Settings =
            serde_json::from_value(value).map_err(|_| StoreError::Corrupt {
                key: "settings".into(),
                reason: "not the settings of a resolution index",
            })?;
        let mut aliases = HashMap::new();
        for row in sqlx::query("SELECT absorbed, customer FROM resolve_aliases")
            .fetch_all(&mut *tx)
            .await
            .map_err(db("read", addr))?
        {
            let (a, c): (String, String) = (
                row.try_get(0).map_err(db("read", addr))?,
                row.try_get(1).map_err(db("read", addr))?,
            );
            aliases.insert(a, c);
        }
        let mut entries = Vec::new();
        for row in sqlx::query("SELECT seq, record FROM resolve_records ORDER BY seq")
            .fetch_all(&mut *tx)
            .await
            .map_err(db("read", addr))?
        {
            let seq: i64 = row.try_get(0).map_err(db("read", addr))?;
            let value: serde_json::Value = row.try_get(1).map_err(db("read", addr))?;
            let corrupt = || StoreError::Corrupt {
                key: seq.to_string(),
                reason: "not a record of a resolution index",
            };
            let stored: Stored = serde_json::from_value(value).map_err(|_| corrupt())?;
            let mut e = stored.into_entry().ok_or_else(corrupt)?;
            let survivor = follow(&aliases, &e.customer);
            if survivor != e.customer {
                e.customer = survivor.to_owned();
            }
            entries.push(e);
        }
        tx.commit().await.map_err(db("commit", addr))?;
        Ok(Some(Snapshot { settings, entries }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::outbox::pg_test_url;

    /// A fresh schema, or `None` (skip) when no server answers and `CI` is not `true`.
    async fn fresh() -> Option<PgIndex> {
        let name = format!("t_resolve_{:016x}", fastrand::u64(..));
        match PgIndex::connect_new_schema(&pg_test_url(), &name).await {
            Ok(i) => Some(i),
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("skipping: PostgreSQL is not reachable ({e})");
                None
            }
            Err(e) => panic!("PostgreSQL is required under CI=true: {e}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_index_passes_the_suite() {
        let Some(index) = fresh().await else { return };
        super::super::suite::run(&index).await;
        index.drop_schema().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_recording_on_a_shared_key_waits_for_the_first_and_sees_its_record() {
        let Some(index) = fresh().await else { return };
        let other = PgIndex::connect(&pg_test_url(), index.schema.as_deref())
            .await
            .unwrap();
        index
            .replace(Snapshot {
                settings: Settings {
                    config: dedupd_core::matching::MatchConfig::default(),
                    model: super::super::suite::model(),
                },
                entries: Vec::new(),
            })
            .await
            .unwrap();
        let entry = Entry {
            record: super::super::suite::record("a", "Ann", "", ""),
            customer: "ka".into(),
            absorbed: vec!["kz".into()],
        };
        let mut first = index.begin(&[7, 42]).await.unwrap();
        assert_eq!(first.append(std::slice::from_ref(&entry)).await.unwrap(), 0);
        let waiter = tokio::spawn(async move {
            let mut second = other.begin(&[99, 42]).await.unwrap();
            let seen = second.since(-1).await.unwrap();
            second.commit().await.unwrap();
            other.pool.close().await;
            seen
        });
        // Wait (on the condition, not the clock) until the second recording waits for key 42.
        let waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
            AND classid = 0 AND objid = 42 AND objsubid = 1";
        loop {
            let n: i64 = sqlx::query(waiting)
                .fetch_one(&index.pool)
                .await
                .and_then(|r| r.try_get(0))
                .unwrap();
            if n > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished());
        first.commit().await.unwrap();
        let seen = waiter.await.unwrap();
        assert_eq!(
            seen,
            vec![(0, entry)],
            "the second saw the first's record, absorbed ids too"
        );
        index.drop_schema().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_from_two_connections_keep_one_order() {
        let Some(index) = fresh().await else { return };
        let other = PgIndex::connect(&pg_test_url(), index.schema.as_deref())
            .await
            .unwrap();
        let settings = Settings {
            config: dedupd_core::matching::MatchConfig::default(),
            model: super::super::suite::model(),
        };
        index
            .replace(Snapshot {
                settings,
                entries: Vec::new(),
            })
            .await
            .unwrap();
        let entry = |id: String| Entry {
            record: super::super::suite::record(&id, "Ann", "", ""),
            customer: format!("k{id}"),
            absorbed: Vec::new(),
        };
        let (a, b) = tokio::join!(
            async {
                for i in 0..20 {
                    index.append(vec![entry(format!("a{i}"))]).await.unwrap();
                }
            },
            async {
                for i in 0..20 {
                    other.append(vec![entry(format!("b{i}"))]).await.unwrap();
                }
            }
        );
        let ((), ()) = (a, b);
        let loaded = index.load().await.unwrap().unwrap();
        assert_eq!(loaded.entries.len(), 40);
        // Each writer's records load in the order it wrote them.
        for prefix in ["a", "b"] {
            let ids: Vec<String> = loaded
                .entries
                .iter()
                .map(|e| e.record.id().to_owned())
                .filter(|id| id.starts_with(prefix))
                .collect();
            let want: Vec<String> = (0..20).map(|i| format!("{prefix}{i}")).collect();
            assert_eq!(ids, want);
        }
        other.pool.close().await;
        index.drop_schema().await.unwrap();
    }
}
