//! The notification outbox: accepting a notification is one durable write; relays claim due
//! work with a lease, deliver, and record the outcome.
//!
//! # Principal types
//!
//! - [`OutboxStore`]: the trait every backend implements: [`EmbeddedOutbox`] (redb, the
//!   default; every write goes through one writer thread that commits groups of operations) and
//!   [`PgOutbox`] (PostgreSQL; several relays share the table through `FOR UPDATE SKIP
//!   LOCKED`). [`Outbox`] is the backend chosen at run time: an enum that dispatches to them
//!   (no `dyn`).
//! - [`NewNotification`] → [`OutboxStore::accept`] → [`Accepted`]: insert-or-get by
//!   `Idempotency-Key` with the request fingerprint (same fingerprint: the stored notification is
//!   replayed; another fingerprint: [`Accepted::Mismatch`]), plus the per-customer content guard.
//! - [`OutboxStore::claim`] → [`Claimed`] → [`OutboxStore::finish`] with an [`Outcome`]: the
//!   relay's side. A claim moves the notification to `sending` and sets its due time to the
//!   lease's end, so the work of a relay that died becomes due again by itself when the lease
//!   runs out.
//! - [`OutboxOptions`]: what the configuration asks besides notifications: whether status
//!   events are written (only when a sink reads them), given to both backends when opened.
//! - `suite` (feature `testing`): the behaviour suite every backend passes.
//!
//! Time is always passed in (`now`), in UTC, so tests move the clock instead of sleeping.

mod embedded;
mod postgres;
#[cfg(any(test, feature = "testing"))]
pub mod suite;

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use dedupd_core::notification::Status;
use serde::{Deserialize, Serialize};

pub use embedded::{EmbeddedOutbox, OUTBOX_FILE};
pub use postgres::PgOutbox;
#[cfg(any(test, feature = "testing"))]
pub use postgres::{DEFAULT_TEST_URL, pg_test_url};

use crate::StoreError;

/// What the content guard does when the same customer gets the same text on the same channel
/// again within the window under another key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuardMode {
    /// No check.
    Off,
    /// Accept it, and report the earlier key in `duplicate_of`.
    #[default]
    Report,
    /// Accept the key (so retries replay) but do not send: `failed`, reason `suppressed`.
    Suppress,
}

/// How [`OutboxStore::accept`] treats a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptOptions {
    /// How long a key is kept (and replayed) after it was first used.
    pub retention: Duration,
    /// The content guard.
    pub guard: GuardMode,
    /// The content guard's window.
    pub guard_window: Duration,
}

impl Default for AcceptOptions {
    fn default() -> Self {
        Self {
            retention: Duration::hours(24),
            guard: GuardMode::Report,
            guard_window: Duration::hours(24),
        }
    }
}

/// A notification to accept.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    /// The producer's `Idempotency-Key`.
    pub key: String,
    /// Our id (unique even when a key is reused after it expired).
    pub id: String,
    /// SHA-256 of the canonical request body.
    pub fingerprint: [u8; 32],
    /// The validated request (a `NotificationRequest` as JSON).
    pub request: serde_json::Value,
    /// The channel's wire name.
    pub channel: String,
    /// The provider's name.
    pub provider: String,
    /// The content-guard key, when the guard applies.
    pub guard_key: Option<[u8; 32]>,
    /// Drop it if it cannot go out before then.
    pub not_after: Option<DateTime<Utc>>,
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The `Idempotency-Key`.
    pub key: String,
    /// Our id.
    pub id: String,
    /// SHA-256 of the canonical request body.
    pub fingerprint: [u8; 32],
    /// The validated request.
    pub request: serde_json::Value,
    /// The channel.
    pub channel: String,
    /// The provider.
    pub provider: String,
    /// The content-guard key.
    pub guard_key: Option<[u8; 32]>,
    /// The key of an earlier notification with the same content (content guard).
    pub duplicate_of: Option<String>,
    /// The status the first response reported (`pending`, or `failed` when suppressed).
    pub accepted_status: Status,
    /// The status now.
    pub status: Status,
    /// Sends made: requests to the provider whose outcome a relay recorded (a refusal, a
    /// timeout and a delivery are one each; read-backs and holds are not attempts).
    pub attempts: u32,
    /// Read-backs made (asking the provider whether an uncertain send went out).
    #[serde(default)]
    pub readbacks: u32,
    /// When it is due (or, while `sending`, when the lease ends); `None`: no more work.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The lease token of the relay holding it.
    pub lease: Option<String>,
    /// When a relay first took it: no attempt can have gone out before.
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// The provider's id of the sent message.
    pub provider_message_id: Option<String>,
    /// The last error (a provider's reason, a give-up reason).
    pub last_error: Option<String>,
    /// Accepted at.
    pub created_at: DateTime<Utc>,
    /// Last changed at.
    pub updated_at: DateTime<Utc>,
    /// Delivered at.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Drop it if it cannot go out before then.
    pub not_after: Option<DateTime<Utc>>,
    /// The key is forgotten after this.
    pub expires_at: DateTime<Utc>,
}

impl Notification {
    fn from_new(n: NewNotification, opts: &AcceptOptions, now: DateTime<Utc>) -> Self {
        Notification {
            key: n.key,
            id: n.id,
            fingerprint: n.fingerprint,
            request: n.request,
            channel: n.channel,
            provider: n.provider,
            guard_key: n.guard_key,
            duplicate_of: None,
            accepted_status: Status::Pending,
            status: Status::Pending,
            attempts: 0,
            readbacks: 0,
            next_attempt_at: Some(now),
            lease: None,
            first_attempt_at: None,
            provider_message_id: None,
            last_error: None,
            created_at: now,
            updated_at: now,
            delivered_at: None,
            not_after: n.not_after,
            expires_at: now + opts.retention,
        }
    }

    /// Applies the content guard's verdict: `earlier` is the key of a live notification with the
    /// same guard key inside the window.
    fn apply_guard(&mut self, earlier: Option<String>, mode: GuardMode) {
        let Some(earlier) = earlier else { return };
        if mode == GuardMode::Suppress {
            self.status = Status::Failed;
            self.accepted_status = Status::Failed;
            self.next_attempt_at = None;
            self.last_error = Some(format!(
                "suppressed: same customer, channel and text as notification key {earlier} within the guard window"
            ));
        }
        self.duplicate_of = Some(earlier);
    }
}

/// The result of [`OutboxStore::accept`].
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// First use of the key: stored.
    Created(Notification),
    /// The key is known with the same fingerprint: the stored notification.
    Replay(Notification),
    /// The key is known with another fingerprint.
    Mismatch(Notification),
}

/// A notification a relay now holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The notification (status `sending`, `lease` set).
    pub notification: Notification,
    /// Its status before the claim: `pending` (nothing sent yet, or a known-failed attempt),
    /// `sending` (a relay died or lost its lease mid-attempt: an attempt may have gone out), or
    /// `unknown` (an attempt's outcome is not known).
    pub previous: Status,
}

/// What a relay records after working on a claimed notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The provider accepted it.
    Delivered {
        /// The provider's message id.
        provider_message_id: Option<String>,
    },
    /// Try again at `at` (transient error).
    Retry {
        /// When.
        at: DateTime<Utc>,
        /// Why.
        error: String,
    },
    /// The outcome of an attempt is not known. `recheck_at`: when to reconcile; `None`: stop
    /// (reported as `unknown` for good).
    Unknown {
        /// When to reconcile.
        recheck_at: Option<DateTime<Utc>>,
        /// Why.
        error: String,
    },
    /// Given up.
    Failed {
        /// The provider's reason or the cap that was hit.
        error: String,
    },
    /// `not_after` passed.
    Expired,
}

/// What the work on a claim did, counted when its outcome is recorded: the claim itself counts
/// nothing, so a relay that only holds a notification back (its provider is paused) or gives up
/// adds no attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// A send went to the provider (whatever came of it): `attempts` + 1.
    pub sent: bool,
    /// The provider was asked whether an earlier send went out: `readbacks` + 1.
    pub read_back: bool,
}

/// The work still ahead of the relays: for the outbox depth and age metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Notifications still to be worked: `pending`, `sending` (under a lease) or `unknown`
    /// awaiting a recheck.
    pub count: u64,
    /// When the oldest of them was accepted.
    pub oldest: Option<DateTime<Utc>>,
}

/// An outbox backend. Every method is one atomic operation; time is passed in.
pub trait OutboxStore: Send + Sync {
    /// The backend's name (`embedded`, `postgres`), for logs and reports.
    fn backend(&self) -> &'static str;

    /// Insert-or-get by key (see [`Accepted`]). A key whose `expires_at` has passed is forgotten
    /// first, so it can be used again.
    fn accept(
        &self,
        new: NewNotification,
        opts: AcceptOptions,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Accepted, StoreError>> + Send;

    /// A plain insert without the idempotency check or the content guard (for the benchmark's
    /// baseline: what accepting costs without idempotency). A key that exists is an error.
    fn insert_plain(
        &self,
        new: NewNotification,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The notification under `key`, unless its key expired.
    fn get(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Notification>, StoreError>> + Send;

    /// Claims up to `limit` notifications due at `now` (`pending`, `unknown` due for a
    /// recheck, or `sending` whose lease ran out) for `lease`.
    fn claim(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Claimed>, StoreError>> + Send;

    /// Records the outcome of a claim and counts its `work`. Returns false (and changes
    /// nothing) when the lease is no longer held (it ran out and another relay took the
    /// notification).
    fn finish(
        &self,
        key: &str,
        lease: &str,
        outcome: Outcome,
        work: Work,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Forgets keys whose `expires_at` passed and that need no more work. Returns how many.
    fn purge_expired(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The notifications that still need a relay's work (see [`Backlog`]); reads only those.
    fn backlog(&self) -> impl Future<Output = Result<Backlog, StoreError>> + Send;

    /// How many notifications are in each status.
    fn counts(&self) -> impl Future<Output = Result<BTreeMap<Status, u64>, StoreError>> + Send;

    /// Up to `limit` notifications in `status`, oldest first (for reports).
    fn list(
        &self,
        status: Status,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Notification>, StoreError>> + Send;

    /// Up to `limit` status events still to publish, oldest first. Each was written in the
    /// same transaction as the status change it reports (see [`StatusEvent`]), and only when
    /// the outbox was opened with [`OutboxOptions::status_events`].
    fn unpublished_events(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StatusEvent>, StoreError>> + Send;

    /// Deletes the events `ids`: every sink confirmed them, so the outbox holds only what is
    /// still to publish. Returns how many it held.
    fn remove_published(
        &self,
        ids: Vec<String>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// How many status events the outbox holds (all of them still to publish): the publisher's
    /// backlog.
    fn events_backlog(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// What an outbox writes besides the notifications, from the configuration; both backends
/// take it when they are opened and ask it (never their own rule) which events to write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxOptions {
    /// Write a [`StatusEvent`] with every published transition, in the transaction of the
    /// change. On when the configuration has a sink for them (`[events.out]`); off (the
    /// default), nothing is written, so an accept costs one row.
    pub status_events: bool,
}

impl OutboxOptions {
    /// Status events on.
    pub fn with_status_events() -> Self {
        Self {
            status_events: true,
        }
    }

    /// The event `transition` of `n` to write with this change at `now`: `None` when status
    /// events are off.
    pub(crate) fn event(
        &self,
        n: &Notification,
        transition: &str,
        now: DateTime<Utc>,
    ) -> Option<StatusEvent> {
        self.status_events
            .then(|| StatusEvent::of(n, transition, now))
    }
}

/// The schema name of the status events (versioned; documented in the README).
pub const STATUS_EVENT_SCHEMA: &str = "dedupd.notification.status/v1";

/// A notification's status change, as published to the user's brokers and webhooks. Written
/// by the outbox in the same transaction as the change (when [`OutboxOptions::status_events`]
/// is on), so a crash neither loses nor invents one, and deleted once every sink confirmed it;
/// `id` is stable (`<notification id>:<transition>`), so a re-publish after a crash carries the
/// same id and consumers dedupe on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusEvent {
    /// `dedupd.notification.status/v1`.
    pub schema: String,
    /// Unique per transition of one notification: `<notification id>:<transition>`.
    pub id: String,
    /// `accepted`, `delivered`, `failed`, `unknown` or `expired`.
    pub transition: String,
    /// The producer's idempotency key.
    pub key: String,
    /// dedupd's notification id.
    pub notification_id: String,
    /// The status after the change.
    pub status: Status,
    /// The channel.
    pub channel: String,
    /// The provider.
    pub provider: String,
    /// Sends made so far.
    pub attempts: u32,
    /// The provider's message id, once delivered.
    pub provider_message_id: Option<String>,
    /// The value-free reason of a failure or an uncertain outcome.
    pub last_error: Option<String>,
    /// When the change happened (UTC).
    pub at: DateTime<Utc>,
}

impl StatusEvent {
    /// The event `transition` of `n` (its state after the change), at `now`.
    pub fn of(n: &Notification, transition: &str, now: DateTime<Utc>) -> Self {
        Self {
            schema: STATUS_EVENT_SCHEMA.to_owned(),
            id: format!("{}:{transition}", n.id),
            transition: transition.to_owned(),
            key: n.key.clone(),
            notification_id: n.id.clone(),
            status: n.status,
            channel: n.channel.clone(),
            provider: n.provider.clone(),
            attempts: n.attempts,
            provider_message_id: n.provider_message_id.clone(),
            last_error: n.last_error.clone(),
            at: now,
        }
    }
}

/// The transition a relay's outcome makes, when it is one that is published: a notification
/// that ends (or is left) `delivered`, `failed`, `unknown` or `expired`. A retry (back to
/// `pending`) is not an event.
pub(crate) fn finish_transition(n: &Notification) -> Option<&'static str> {
    match n.status {
        Status::Delivered => Some("delivered"),
        Status::Failed => Some("failed"),
        Status::Unknown => Some("unknown"),
        Status::Expired => Some("expired"),
        _ => None,
    }
}

/// The configured backend, chosen at run time: a thin dispatcher over [`OutboxStore`].
#[derive(Debug, Clone)]
pub enum Outbox {
    /// redb in a directory.
    Embedded(EmbeddedOutbox),
    /// PostgreSQL.
    Postgres(PgOutbox),
}

impl OutboxStore for Outbox {
    fn backend(&self) -> &'static str {
        match self {
            Outbox::Embedded(b) => b.backend(),
            Outbox::Postgres(b) => b.backend(),
        }
    }

    async fn accept(
        &self,
        new: NewNotification,
        opts: AcceptOptions,
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        match self {
            Outbox::Embedded(b) => b.accept(new, opts, now).await,
            Outbox::Postgres(b) => b.accept(new, opts, now).await,
        }
    }

    async fn insert_plain(
        &self,
        new: NewNotification,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        match self {
            Outbox::Embedded(b) => b.insert_plain(new, now).await,
            Outbox::Postgres(b) => b.insert_plain(new, now).await,
        }
    }

    async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Notification>, StoreError> {
        match self {
            Outbox::Embedded(b) => b.get(key, now).await,
            Outbox::Postgres(b) => b.get(key, now).await,
        }
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        match self {
            Outbox::Embedded(b) => b.claim(now, lease, limit).await,
            Outbox::Postgres(b) => b.claim(now, lease, limit).await,
        }
    }

    async fn finish(
        &self,
        key: &str,
        lease: &str,
        outcome: Outcome,
        work: Work,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        match self {
            Outbox::Embedded(b) => b.finish(key, lease, outcome, work, now).await,
            Outbox::Postgres(b) => b.finish(key, lease, outcome, work, now).await,
        }
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        match self {
            Outbox::Embedded(b) => b.purge_expired(now).await,
            Outbox::Postgres(b) => b.purge_expired(now).await,
        }
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        match self {
            Outbox::Embedded(b) => b.backlog().await,
            Outbox::Postgres(b) => b.backlog().await,
        }
    }

    async fn counts(&self) -> Result<BTreeMap<Status, u64>, StoreError> {
        match self {
            Outbox::Embedded(b) => b.counts().await,
            Outbox::Postgres(b) => b.counts().await,
        }
    }

    async fn list(&self, status: Status, limit: usize) -> Result<Vec<Notification>, StoreError> {
        match self {
            Outbox::Embedded(b) => b.list(status, limit).await,
            Outbox::Postgres(b) => b.list(status, limit).await,
        }
    }

    async fn unpublished_events(&self, limit: usize) -> Result<Vec<StatusEvent>, StoreError> {
        match self {
            Outbox::Embedded(b) => b.unpublished_events(limit).await,
            Outbox::Postgres(b) => b.unpublished_events(limit).await,
        }
    }

    async fn remove_published(&self, ids: Vec<String>) -> Result<u64, StoreError> {
        match self {
            Outbox::Embedded(b) => b.remove_published(ids).await,
            Outbox::Postgres(b) => b.remove_published(ids).await,
        }
    }

    async fn events_backlog(&self) -> Result<u64, StoreError> {
        match self {
            Outbox::Embedded(b) => b.events_backlog().await,
            Outbox::Postgres(b) => b.events_backlog().await,
        }
    }
}

/// A fresh lease token.
fn lease_token() -> String {
    format!("l{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// Applies an outcome to a claimed notification (shared by the backends' Rust paths).
fn apply_outcome(n: &mut Notification, outcome: Outcome, work: Work, now: DateTime<Utc>) {
    n.lease = None;
    n.attempts = n.attempts.saturating_add(u32::from(work.sent));
    n.readbacks = n.readbacks.saturating_add(u32::from(work.read_back));
    n.updated_at = now;
    match outcome {
        Outcome::Delivered {
            provider_message_id,
        } => {
            n.status = Status::Delivered;
            n.next_attempt_at = None;
            n.delivered_at = Some(now);
            if provider_message_id.is_some() {
                n.provider_message_id = provider_message_id;
            }
        }
        Outcome::Retry { at, error } => {
            n.status = Status::Pending;
            n.next_attempt_at = Some(at);
            n.last_error = Some(error);
        }
        Outcome::Unknown { recheck_at, error } => {
            n.status = Status::Unknown;
            n.next_attempt_at = recheck_at;
            n.last_error = Some(error);
        }
        Outcome::Failed { error } => {
            n.status = Status::Failed;
            n.next_attempt_at = None;
            n.last_error = Some(error);
        }
        Outcome::Expired => {
            n.status = Status::Expired;
            n.next_attempt_at = None;
            n.last_error = Some("not_after passed before it could be sent".into());
        }
    }
}
