//! The PostgreSQL outbox: one `notifications` table (migrations embedded and run at connect).
//!
//! - Accept is **one statement** (a CTE: content-guard lookup, `INSERT … ON CONFLICT (key) DO
//!   NOTHING` with, when the key is new, the insert of its `accepted` status event, and the
//!   existing row when the key was known), so an accept is one round trip and one commit. Two accepts of one key serialize on the primary key: the second waits for the
//!   first to commit and then replays it. The content guard is exact for requests that follow
//!   each other and best effort for two that race (both may pass).
//! - Claim is crates.io's job-queue pattern: `SELECT … FOR UPDATE SKIP LOCKED` in a CTE feeding
//!   an `UPDATE`, so several relays share the table and never take the same row; the claim sets
//!   `next_attempt_at` to the lease's end, so a dead relay's rows become due again.
//! - Status events (issue 17), when the options ask for them, are inserted by the statement of
//!   the change they report (the accept, a finish: data-modifying CTEs), `ON CONFLICT (id) DO
//!   NOTHING`, and deleted once published; without them the event part of the statement writes
//!   nothing (its event parameter is NULL).
//! - Finish is fenced by the lease token: a relay whose lease ran out cannot overwrite the
//!   result of the relay that took over.
//!
//! Connections can be pinned to a schema (`search_path`), which is how each test gets its own.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use dedupd_core::notification::Status;
use sqlx::postgres::{PgPool, PgRow};
// Every dynamic statement here is built from constants and checked names, never from input.
use sqlx::{AssertSqlSafe, Row};

use super::{
    AcceptOptions, Accepted, Backlog, Claimed, GuardMode, NewNotification, Notification,
    OutboxOptions, OutboxStore, Outcome, StatusEvent, Work, lease_token,
};
use crate::pg::db;
use crate::{StoreError, redact_url};

/// The default URL of the test server (trust auth).
#[cfg(any(test, feature = "testing"))]
pub const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The PostgreSQL URL tests use: `DATABASE_URL`, else `POSTGRES_URL`, else
/// [`DEFAULT_TEST_URL`].
#[cfg(any(test, feature = "testing"))]
pub fn pg_test_url() -> String {
    ["DATABASE_URL", "POSTGRES_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| DEFAULT_TEST_URL.to_owned())
}

/// The outbox in PostgreSQL. Cheap to clone (a pool).
#[derive(Debug, Clone)]
pub struct PgOutbox {
    pool: PgPool,
    schema: Option<String>,
    /// The server's URL without its password, for errors.
    addr: String,
    /// What it writes besides notifications.
    opts: OutboxOptions,
}

const COLUMNS: &str = "key, id, fingerprint, request, channel, provider, guard_key, duplicate_of, \
    accepted_status, status, attempts, readbacks, next_attempt_at, lease, first_attempt_at, \
    provider_message_id, last_error, created_at, updated_at, delivered_at, not_after, expires_at";

/// The reason a suppressed notification carries (the backends write the same words).
fn suppressed_parts() -> (&'static str, &'static str) {
    (
        "suppressed: same customer, channel and text as notification key ",
        " within the guard window",
    )
}

impl PgOutbox {
    /// Connects (at most `max_connections`), pinning every connection to `schema` when given,
    /// and runs the migrations; writes what `opts` asks for.
    pub async fn connect(
        url: &str,
        schema: Option<&str>,
        max_connections: u32,
        opts: OutboxOptions,
    ) -> Result<Self, StoreError> {
        let pool = crate::pg::pool(url, schema, max_connections).await?;
        sqlx::migrate!("src/outbox/migrations")
            .run(&pool)
            .await
            .map_err(|e| StoreError::backend("migrate", redact_url(url), e))?;
        Ok(Self {
            pool,
            schema: schema.map(str::to_owned),
            addr: redact_url(url),
            opts,
        })
    }

    /// The same pool writing what `opts` asks for (tests compare both on one schema).
    pub fn with_options(&self, opts: OutboxOptions) -> Self {
        Self {
            opts,
            ..self.clone()
        }
    }

    /// Creates the schema `name` (for tests: one per test) and connects into it.
    pub async fn connect_new_schema(
        url: &str,
        name: &str,
        max_connections: u32,
        opts: OutboxOptions,
    ) -> Result<Self, StoreError> {
        crate::pg::create_schema(url, name).await?;
        Self::connect(url, Some(name), max_connections, opts).await
    }

    /// Drops the schema this outbox was pinned to (tests clean up with it) and closes the pool.
    pub async fn drop_schema(&self) -> Result<(), StoreError> {
        if let Some(s) = &self.schema {
            crate::pg::drop_schema(&self.pool, s, &self.addr).await?;
        }
        self.pool.close().await;
        Ok(())
    }

    /// The schema connections are pinned to.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The row under `key`, expired or not.
    async fn fetch(&self, key: &str) -> Result<Option<Notification>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM notifications WHERE key = $1"
        )))
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("read", &self.addr))?;
        row.as_ref().map(|r| from_row(r, &self.addr)).transpose()
    }
}

impl OutboxStore for PgOutbox {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn accept(
        &self,
        new: NewNotification,
        opts: AcceptOptions,
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        // PostgreSQL keeps microseconds: the notification built here must equal the row read
        // back later (a replayed response is byte-identical).
        let now = now.trunc_subsecs(6);
        let (pre, post) = suppressed_parts();
        let sql = format!(
            "WITH g AS (
                SELECT key FROM notifications
                WHERE $8 AND guard_key = $7 AND created_at > $10 AND expires_at > $11 AND key <> $1
                ORDER BY created_at DESC LIMIT 1),
             ins AS (
                INSERT INTO notifications ({COLUMNS})
                SELECT $1, $2, $3, $4, $5, $6, $7, (SELECT key FROM g),
                    s.st, s.st, 0, 0, CASE WHEN s.sup THEN NULL ELSE $11 END, NULL, NULL, NULL,
                    CASE WHEN s.sup THEN $13 || (SELECT key FROM g) || $14 END,
                    $11, $11, NULL, $12, $15
                FROM (SELECT ($9 AND EXISTS (SELECT 1 FROM g)) AS sup,
                             CASE WHEN $9 AND EXISTS (SELECT 1 FROM g) THEN 'failed' ELSE 'pending' END AS st) s
                ON CONFLICT (key) DO NOTHING
                RETURNING duplicate_of, status, last_error),
             ev AS (
                INSERT INTO notification_events (id, event, created_at)
                SELECT $16, jsonb_set(jsonb_set($17::jsonb, '{{status}}', to_jsonb(ins.status)),
                                      '{{last_error}}', coalesce(to_jsonb(ins.last_error), 'null'::jsonb)),
                       $11
                FROM ins WHERE $17::jsonb IS NOT NULL
                ON CONFLICT (id) DO NOTHING)
             SELECT duplicate_of FROM ins"
        );
        let guard_on = opts.guard != GuardMode::Off;
        let suppress = opts.guard == GuardMode::Suppress;
        // The `accepted` event, when status events are on, written by the same statement (its
        // status and last error are the row's, which the content guard decides there).
        // (The notification is only built when they are on.)
        let event = self
            .opts
            .status_events
            .then(|| Notification::from_new(new.clone(), &opts, now))
            .and_then(|n| self.opts.event(&n, "accepted", now));
        let event_json = event
            .as_ref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| StoreError::backend("encode", &self.addr, e))?;
        let event_id = event.as_ref().map(|e| e.id.as_str());
        for _ in 0..5 {
            let row = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(&new.key)
                .bind(&new.id)
                .bind(new.fingerprint.as_slice())
                .bind(&new.request)
                .bind(&new.channel)
                .bind(&new.provider)
                .bind(new.guard_key.as_ref().map(|g| g.as_slice()))
                .bind(guard_on)
                .bind(suppress)
                .bind(now - opts.guard_window)
                .bind(now)
                .bind(new.not_after)
                .bind(pre)
                .bind(post)
                .bind(now + opts.retention)
                .bind(event_id)
                .bind(&event_json)
                .fetch_optional(&self.pool)
                .await
                .map_err(db("accept", &self.addr))?;
            if let Some(row) = row {
                // Created: the row is what was sent, plus the guard's verdict.
                let duplicate_of: Option<String> = row
                    .try_get("duplicate_of")
                    .map_err(db("accept", &self.addr))?;
                let mut n = Notification::from_new(new, &opts, now);
                n.apply_guard(duplicate_of, opts.guard);
                return Ok(Accepted::Created(n));
            }
            // The key exists (or a concurrent insert of it committed after this statement's
            // snapshot; the next statement sees it).
            let Some(n) = self.fetch(&new.key).await? else {
                continue;
            };
            if n.expires_at > now {
                return Ok(if n.fingerprint == new.fingerprint {
                    Accepted::Replay(n)
                } else {
                    Accepted::Mismatch(n)
                });
            }
            sqlx::query("DELETE FROM notifications WHERE key = $1 AND expires_at <= $2")
                .bind(&new.key)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(db("accept", &self.addr))?;
        }
        Err(StoreError::backend(
            "accept",
            format!("{} key {}", self.addr, new.key),
            std::io::Error::other("the key kept changing under concurrent writers"),
        ))
    }

    async fn insert_plain(
        &self,
        new: NewNotification,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let n = Notification::from_new(new, &AcceptOptions::default(), now);
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO notifications ({COLUMNS}) VALUES \
             ($1,$2,$3,$4,$5,$6,$7,NULL,'pending','pending',0,0,$8,NULL,NULL,NULL,NULL,$8,$8,NULL,$9,$10)"
        )))
        .bind(&n.key)
        .bind(&n.id)
        .bind(n.fingerprint.as_slice())
        .bind(&n.request)
        .bind(&n.channel)
        .bind(&n.provider)
        .bind(n.guard_key.as_ref().map(|g| g.as_slice()))
        .bind(now)
        .bind(n.not_after)
        .bind(n.expires_at)
        .execute(&self.pool)
        .await
        .map_err(db("insert", &self.addr))?;
        Ok(())
    }

    async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Notification>, StoreError> {
        let n = self.fetch(key).await?;
        Ok(n.filter(|n| n.expires_at > now))
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let cols = COLUMNS
            .split(", ")
            .map(|c| format!("n.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "WITH due AS (
                SELECT key, status AS previous FROM notifications
                WHERE next_attempt_at <= $1 AND status IN ('pending', 'sending', 'unknown')
                ORDER BY next_attempt_at
                LIMIT $2
                FOR UPDATE SKIP LOCKED)
             UPDATE notifications n
             SET status = 'sending', lease = $3,
                 first_attempt_at = coalesce(n.first_attempt_at, $1),
                 next_attempt_at = $4, updated_at = $1
             FROM due WHERE n.key = due.key
             RETURNING {cols}, due.previous"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(lease_token())
            .bind(now + lease)
            .fetch_all(&self.pool)
            .await
            .map_err(db("claim", &self.addr))?;
        rows.iter()
            .map(|r| {
                let previous: String = r.try_get("previous").map_err(db("claim", &self.addr))?;
                Ok(Claimed {
                    notification: from_row(r, &self.addr)?,
                    previous: parse_status(&previous)?,
                })
            })
            .collect()
    }

    async fn finish(
        &self,
        key: &str,
        lease: &str,
        outcome: Outcome,
        work: Work,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (status, next, error, pid, delivered) = match outcome {
            Outcome::Delivered {
                provider_message_id,
            } => (
                Status::Delivered,
                None,
                None,
                provider_message_id,
                Some(now),
            ),
            Outcome::Retry { at, error } => (Status::Pending, Some(at), Some(error), None, None),
            Outcome::Unknown { recheck_at, error } => {
                (Status::Unknown, recheck_at, Some(error), None, None)
            }
            Outcome::Failed { error } => (Status::Failed, None, Some(error), None, None),
            Outcome::Expired => (
                Status::Expired,
                None,
                Some("not_after passed before it could be sent".to_owned()),
                None,
                None,
            ),
        };
        let now = now.trunc_subsecs(6);
        // The update and, when the outcome is one that is published, its status event: one
        // statement (data-modifying CTEs commit together).
        let at =
            serde_json::to_value(now).map_err(|e| StoreError::backend("encode", &self.addr, e))?;
        let done = sqlx::query(
            "WITH u AS (
                UPDATE notifications
                SET status = $3, next_attempt_at = $4, lease = NULL,
                    last_error = coalesce($5, last_error),
                    provider_message_id = coalesce($6, provider_message_id),
                    delivered_at = coalesce($7, delivered_at), updated_at = $8,
                    attempts = attempts + $9, readbacks = readbacks + $10
                WHERE key = $1 AND lease = $2 AND status = 'sending'
                RETURNING key, id, status, channel, provider, attempts, provider_message_id,
                          last_error),
             e AS (
                INSERT INTO notification_events (id, event, created_at)
                SELECT u.id || ':' || u.status,
                       jsonb_build_object(
                           'schema', $11::text, 'id', u.id || ':' || u.status,
                           'transition', u.status, 'key', u.key, 'notification_id', u.id,
                           'status', u.status, 'channel', u.channel, 'provider', u.provider,
                           'attempts', u.attempts, 'provider_message_id', u.provider_message_id,
                           'last_error', u.last_error, 'at', $12::jsonb),
                       $8
                FROM u WHERE $11::text IS NOT NULL
                    AND u.status IN ('delivered', 'failed', 'unknown', 'expired')
                ON CONFLICT (id) DO NOTHING)
             SELECT count(*) AS n FROM u",
        )
        .bind(key)
        .bind(lease)
        .bind(status.as_str())
        .bind(next)
        .bind(error)
        .bind(pid)
        .bind(delivered)
        .bind(now)
        .bind(i32::from(work.sent))
        .bind(i32::from(work.read_back))
        // NULL: status events are off, the statement writes none.
        .bind(
            self.opts
                .status_events
                .then_some(super::STATUS_EVENT_SCHEMA),
        )
        .bind(at)
        .fetch_one(&self.pool)
        .await
        .map_err(db("finish", &self.addr))?;
        let n: i64 = done.try_get("n").map_err(db("finish", &self.addr))?;
        Ok(n == 1)
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM notifications WHERE expires_at <= $1 AND next_attempt_at IS NULL",
        )
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db("purge", &self.addr))?;
        Ok(done.rows_affected())
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        let row = sqlx::query(
            "SELECT count(*) AS n, min(created_at) AS oldest FROM notifications \
             WHERE next_attempt_at IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db("backlog", &self.addr))?;
        let n: i64 = row.try_get("n").map_err(db("backlog", &self.addr))?;
        let oldest: Option<DateTime<Utc>> =
            row.try_get("oldest").map_err(db("backlog", &self.addr))?;
        Ok(Backlog {
            count: u64::try_from(n).unwrap_or(0),
            oldest,
        })
    }

    async fn counts(&self) -> Result<BTreeMap<Status, u64>, StoreError> {
        let rows = sqlx::query("SELECT status, count(*) AS n FROM notifications GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .map_err(db("count", &self.addr))?;
        let mut out = BTreeMap::new();
        for r in rows {
            let s: String = r.try_get("status").map_err(db("count", &self.addr))?;
            let n: i64 = r.try_get("n").map_err(db("count", &self.addr))?;
            out.insert(parse_status(&s)?, u64::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }

    async fn list(&self, status: Status, limit: usize) -> Result<Vec<Notification>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM notifications WHERE status = $1 ORDER BY created_at, key LIMIT $2"
        )))
        .bind(status.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db("list", &self.addr))?;
        rows.iter().map(|r| from_row(r, &self.addr)).collect()
    }

    async fn unpublished_events(&self, limit: usize) -> Result<Vec<StatusEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, event FROM notification_events WHERE published_at IS NULL \
             ORDER BY seq LIMIT $1",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db("events", &self.addr))?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id").map_err(db("events", &self.addr))?;
                let v: serde_json::Value = r.try_get("event").map_err(db("events", &self.addr))?;
                serde_json::from_value(v).map_err(|_| StoreError::Corrupt {
                    key: id,
                    reason: "outbox event row is not a status event",
                })
            })
            .collect()
    }

    async fn remove_published(&self, ids: Vec<String>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM notification_events WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&self.pool)
            .await
            .map_err(db("events", &self.addr))?;
        Ok(done.rows_affected())
    }

    async fn events_backlog(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT count(*) AS n FROM notification_events")
            .fetch_one(&self.pool)
            .await
            .map_err(db("events", &self.addr))?;
        let n: i64 = row.try_get("n").map_err(db("events", &self.addr))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

fn parse_status(s: &str) -> Result<Status, StoreError> {
    s.parse().map_err(|()| StoreError::Corrupt {
        key: s.to_owned(),
        reason: "unknown notification status",
    })
}

fn bytes32(v: Vec<u8>, what: &'static str) -> Result<[u8; 32], StoreError> {
    v.try_into().map_err(|_| StoreError::Corrupt {
        key: what.to_owned(),
        reason: "not 32 bytes",
    })
}

fn from_row(r: &PgRow, addr: &str) -> Result<Notification, StoreError> {
    let g = |e| StoreError::backend("decode row", addr, e);
    let status: String = r.try_get("status").map_err(g)?;
    let accepted: String = r.try_get("accepted_status").map_err(g)?;
    let guard: Option<Vec<u8>> = r.try_get("guard_key").map_err(g)?;
    let attempts: i32 = r.try_get("attempts").map_err(g)?;
    let readbacks: i32 = r.try_get("readbacks").map_err(g)?;
    Ok(Notification {
        key: r.try_get("key").map_err(g)?,
        id: r.try_get("id").map_err(g)?,
        fingerprint: bytes32(r.try_get("fingerprint").map_err(g)?, "fingerprint")?,
        request: r.try_get("request").map_err(g)?,
        channel: r.try_get("channel").map_err(g)?,
        provider: r.try_get("provider").map_err(g)?,
        guard_key: guard.map(|v| bytes32(v, "guard_key")).transpose()?,
        duplicate_of: r.try_get("duplicate_of").map_err(g)?,
        accepted_status: parse_status(&accepted)?,
        status: parse_status(&status)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        readbacks: u32::try_from(readbacks).unwrap_or(0),
        next_attempt_at: r.try_get("next_attempt_at").map_err(g)?,
        lease: r.try_get("lease").map_err(g)?,
        first_attempt_at: r.try_get("first_attempt_at").map_err(g)?,
        provider_message_id: r.try_get("provider_message_id").map_err(g)?,
        last_error: r.try_get("last_error").map_err(g)?,
        created_at: r.try_get("created_at").map_err(g)?,
        updated_at: r.try_get("updated_at").map_err(g)?,
        delivered_at: r.try_get("delivered_at").map_err(g)?,
        not_after: r.try_get("not_after").map_err(g)?,
        expires_at: r.try_get("expires_at").map_err(g)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::outbox::{Outbox, suite};

    /// A fresh schema, or `None` (skip) when no server answers and `CI` is not `true`.
    async fn fresh() -> Option<PgOutbox> {
        let name = format!("t_outbox_{:016x}", fastrand::u64(..));
        match PgOutbox::connect_new_schema(
            &pg_test_url(),
            &name,
            8,
            OutboxOptions::with_status_events(),
        )
        .await
        {
            Ok(o) => Some(o),
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("skipping: PostgreSQL is not reachable ({e})");
                None
            }
            Err(e) => panic!("PostgreSQL is required under CI=true: {e}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_outbox_passes_the_suite() {
        let Some(pg) = fresh().await else { return };
        suite::run(&Outbox::Postgres(pg.clone())).await;
        pg.drop_schema().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_outbox_without_status_events_writes_none() {
        let Some(pg) = fresh().await else { return };
        let quiet = Outbox::Postgres(pg.with_options(OutboxOptions::default()));
        suite::run_without_status_events(&quiet).await;
        pg.drop_schema().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_relays_never_claim_the_same_row() {
        let Some(pg) = fresh().await else { return };
        let o = Outbox::Postgres(pg.clone());
        let now = suite::t0();
        for i in 0..200 {
            o.accept(
                suite::new_notification(&format!("k{i}"), &format!("text {i}")),
                AcceptOptions::default(),
                now,
            )
            .await
            .unwrap();
        }
        let (a, b) = tokio::join!(
            async {
                let mut got = Vec::new();
                for _ in 0..10 {
                    got.extend(o.claim(now, Duration::seconds(30), 15).await.unwrap());
                }
                got
            },
            async {
                let mut got = Vec::new();
                for _ in 0..10 {
                    got.extend(o.claim(now, Duration::seconds(30), 15).await.unwrap());
                }
                got
            }
        );
        let mut keys: Vec<String> = a
            .iter()
            .chain(&b)
            .map(|c| c.notification.key.clone())
            .collect();
        let total = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), total, "a row was claimed twice");
        assert_eq!(total, 200);
        pg.drop_schema().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_created_notification_equals_its_row() {
        let Some(pg) = fresh().await else { return };
        let o = Outbox::Postgres(pg.clone());
        // Nanoseconds: PostgreSQL keeps microseconds, and replays must be byte-identical.
        let now = suite::t0() + Duration::nanoseconds(123_456_789);
        let accepted = o
            .accept(
                suite::new_notification("k", "t"),
                AcceptOptions::default(),
                now,
            )
            .await
            .unwrap();
        let crate::outbox::Accepted::Created(n) = accepted else {
            panic!("expected Created: {accepted:?}")
        };
        assert_eq!(o.get("k", now).await.unwrap(), Some(n));
        pg.drop_schema().await.unwrap();
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }
}
