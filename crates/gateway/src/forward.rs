//! Forwarding to Genesys Cloud, off the request path.
//!
//! - A PROCESS message is sent to the inbound Open Messaging endpoint through the client (its
//!   rate budget and retries). The conversation it creates is recorded in the dedup window, so
//!   later duplicates know where to report. The send is not idempotent: a 504 or a timeout
//!   after sending is "outcome unknown" and is **not** resent (it could create a second
//!   conversation, the very thing this gateway exists to prevent); it is counted and logged.
//! - A SUPPRESS message is not sent. Its first conversation's customer participant gets the
//!   attributes `dedupd.duplicateCount`, `dedupd.lastDuplicateChannel` and
//!   `dedupd.lastDuplicateAt` (RFC 3339 UTC), asynchronously, with retry. Duplicates of one
//!   message are coalesced (the newest count wins), so a burst costs one update, and the
//!   attribute update is retried until the first conversation is known (its forward may still
//!   be in flight).
//!
//! Queues are bounded; when full, work is dropped and counted rather than slowing the gateway.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use dedupd_genesys::{GenesysClient, OpenInboundMessage};
use dedupd_store::window::{DedupWindow, Window, WindowKey};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use crate::telemetry;

/// Attribute names written on the first conversation's customer participant.
pub const ATTR_COUNT: &str = "dedupd.duplicateCount";
/// The channel of the newest duplicate.
pub const ATTR_LAST_CHANNEL: &str = "dedupd.lastDuplicateChannel";
/// When the newest duplicate arrived (RFC 3339 UTC).
pub const ATTR_LAST_AT: &str = "dedupd.lastDuplicateAt";

/// How the forwarder runs.
#[derive(Clone, Debug)]
pub struct ForwardConfig {
    /// The Open Messaging integration (deployment) id messages are delivered to.
    pub integration_id: String,
    /// Messages queued for sending before new ones are dropped.
    pub queue: usize,
    /// Sends in flight at once (they share the client's rate budget).
    pub concurrency: usize,
    /// Attempts of one duplicate-attribute update (waiting for the conversation, or after a
    /// failure the client gave up on).
    pub attribute_attempts: u32,
    /// Pause between those attempts (doubled each time, capped at 8×).
    pub attribute_retry_delay: Duration,
}

impl ForwardConfig {
    /// Defaults for `integration_id`: queue 10 000, 8 in flight, 8 attribute attempts 250 ms
    /// apart (growing).
    pub fn new(integration_id: impl Into<String>) -> Self {
        ForwardConfig {
            integration_id: integration_id.into(),
            queue: 10_000,
            concurrency: 8,
            attribute_attempts: 8,
            attribute_retry_delay: Duration::from_millis(250),
        }
    }
}

struct SendJob {
    key: WindowKey,
    message: OpenInboundMessage,
}

#[derive(Clone)]
struct DuplicateNote {
    count: u64,
    channel: String,
    at: DateTime<Utc>,
    conversation_hint: Option<String>,
}

/// Counts of what the forwarder did (for tests and logs; the same numbers are metrics).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ForwardStats {
    /// Messages accepted by the platform.
    pub sent: u64,
    /// Messages the platform refused or the client gave up on.
    pub failed: u64,
    /// Sends whose outcome is unknown (not resent).
    pub outcome_unknown: u64,
    /// Attribute updates applied.
    pub attributes_set: u64,
    /// Attribute updates given up.
    pub attributes_failed: u64,
    /// Work dropped because a queue was full.
    pub dropped: u64,
}

struct Shared {
    client: GenesysClient,
    window: Window,
    config: ForwardConfig,
    pending_duplicates: Mutex<HashMap<WindowKey, DuplicateNote>>,
    duplicates_ready: Arc<Notify>,
    participants: Mutex<HashMap<String, String>>,
    stats: Mutex<ForwardStats>,
}

/// The handle the gateway uses to hand work to the forwarder. Cheap to clone.
#[derive(Clone)]
pub struct Forwarder {
    sends: mpsc::Sender<SendJob>,
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Forwarder {
    /// Starts the workers on the current Tokio runtime. They stop when every `Forwarder` clone
    /// is dropped and the queue is drained ([`Forwarder::shutdown`] waits for that).
    pub fn start(
        client: GenesysClient,
        window: Window,
        config: ForwardConfig,
    ) -> (Forwarder, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let shared = Arc::new(Shared {
            client,
            window,
            config,
            pending_duplicates: Mutex::new(HashMap::new()),
            duplicates_ready: Arc::new(Notify::new()),
            participants: Mutex::new(HashMap::new()),
            stats: Mutex::new(ForwardStats::default()),
        });
        let send_worker = tokio::spawn(send_loop(shared.clone(), rx));
        let dup_worker = tokio::spawn(duplicate_loop(Arc::downgrade(&shared)));
        let handle = tokio::spawn(async move {
            let _ = send_worker.await;
            dup_worker.abort();
        });
        (Forwarder { sends: tx, shared }, handle)
    }

    /// Queues a PROCESS message for sending. Never waits: a full queue drops it (counted).
    pub fn send(&self, key: WindowKey, message: OpenInboundMessage) {
        if self.sends.try_send(SendJob { key, message }).is_err() {
            lock(&self.shared.stats).dropped += 1;
            metrics::counter!(telemetry::FORWARDS, "result" => "dropped").increment(1);
            tracing::warn!("Forward queue full; a PROCESS message was not forwarded.");
        }
    }

    /// Notes a suppressed duplicate of `key` for the attribute update.
    pub fn duplicate(
        &self,
        key: WindowKey,
        count: u64,
        channel: &str,
        at: DateTime<Utc>,
        conversation_hint: Option<String>,
    ) {
        {
            let mut pending = lock(&self.shared.pending_duplicates);
            let queued = pending.len();
            let note = pending.entry(key);
            match note {
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    if count >= o.get().count {
                        let hint = conversation_hint.or_else(|| o.get().conversation_hint.clone());
                        o.insert(DuplicateNote {
                            count,
                            channel: channel.to_owned(),
                            at,
                            conversation_hint: hint,
                        });
                    }
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    if queued >= self.shared.config.queue {
                        drop(pending);
                        lock(&self.shared.stats).dropped += 1;
                        metrics::counter!(telemetry::DUPLICATE_ATTRIBUTES, "result" => "dropped")
                            .increment(1);
                        return;
                    }
                    v.insert(DuplicateNote {
                        count,
                        channel: channel.to_owned(),
                        at,
                        conversation_hint,
                    });
                }
            }
        }
        self.shared.duplicates_ready.notify_one();
    }

    /// What the forwarder did so far.
    pub fn stats(&self) -> ForwardStats {
        lock(&self.shared.stats).clone()
    }

    /// Duplicate notes not yet applied.
    pub fn pending_duplicates(&self) -> usize {
        lock(&self.shared.pending_duplicates).len()
    }
}

async fn send_loop(shared: Arc<Shared>, mut rx: mpsc::Receiver<SendJob>) {
    let mut in_flight = JoinSet::new();
    while let Some(job) = rx.recv().await {
        while in_flight.len() >= shared.config.concurrency.max(1) {
            in_flight.join_next().await;
        }
        in_flight.spawn(send_one(shared.clone(), job));
    }
    while in_flight.join_next().await.is_some() {}
}

async fn send_one(shared: Arc<Shared>, job: SendJob) {
    let result = shared
        .client
        .conversations()
        .send_inbound_open_message(&shared.config.integration_id, &job.message, true)
        .await;
    match result {
        Ok(sent) => {
            lock(&shared.stats).sent += 1;
            metrics::counter!(telemetry::FORWARDS, "result" => "sent").increment(1);
            if let Some(conversation) = sent.conversation_id
                && let Err(e) = shared
                    .window
                    .set_conversation(&job.key, &conversation, Utc::now())
                    .await
            {
                tracing::warn!(error = %e, "Could not record the forwarded message's conversation.");
            }
        }
        Err(e) if e.is_outcome_unknown() => {
            lock(&shared.stats).outcome_unknown += 1;
            metrics::counter!(telemetry::FORWARDS, "result" => "outcome_unknown").increment(1);
            tracing::warn!(
                "A forward's outcome is unknown (504 or timeout after sending); not resent, so no second conversation is created."
            );
        }
        Err(e) => {
            lock(&shared.stats).failed += 1;
            metrics::counter!(telemetry::FORWARDS, "result" => "failed").increment(1);
            tracing::error!(error = %e, "Forwarding a PROCESS message failed.");
        }
    }
}

async fn duplicate_loop(shared: std::sync::Weak<Shared>) {
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let batch: Vec<(WindowKey, DuplicateNote)> =
            lock(&strong.pending_duplicates).drain().collect();
        if batch.is_empty() {
            let ready = strong.duplicates_ready.clone();
            drop(strong);
            ready.notified().await;
            continue;
        }
        // Distinct keys in a batch: at most one update per message in flight, so counts never
        // go backwards on the platform.
        let mut set = JoinSet::new();
        for (key, note) in batch {
            set.spawn(apply_duplicate(strong.clone(), key, note));
        }
        while set.join_next().await.is_some() {}
    }
}

async fn apply_duplicate(shared: Arc<Shared>, key: WindowKey, note: DuplicateNote) {
    let mut delay = shared.config.attribute_retry_delay;
    let max_delay = delay * 8;
    let mut conversation = note.conversation_hint.clone();
    for attempt in 1..=shared.config.attribute_attempts.max(1) {
        if conversation.is_none() {
            conversation = match shared.window.get(&key, Utc::now()).await {
                Ok(Some((first, _))) => first.conversation_id,
                _ => None,
            };
        }
        if let Some(conversation_id) = &conversation {
            match set_attributes(&shared, conversation_id, &note).await {
                Ok(()) => {
                    lock(&shared.stats).attributes_set += 1;
                    metrics::counter!(telemetry::DUPLICATE_ATTRIBUTES, "result" => "set")
                        .increment(1);
                    return;
                }
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "Recording a duplicate on its first conversation failed; retrying.");
                }
            }
        }
        if attempt < shared.config.attribute_attempts {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(max_delay);
        }
    }
    lock(&shared.stats).attributes_failed += 1;
    let result = if conversation.is_none() {
        "no_conversation"
    } else {
        "failed"
    };
    metrics::counter!(telemetry::DUPLICATE_ATTRIBUTES, "result" => result).increment(1);
    tracing::warn!(
        result,
        "Gave up recording a duplicate on its first conversation."
    );
}

async fn set_attributes(
    shared: &Shared,
    conversation_id: &str,
    note: &DuplicateNote,
) -> Result<(), AttributeError> {
    let api = shared.client.conversations();
    let cached = lock(&shared.participants).get(conversation_id).cloned();
    let participant = match cached {
        Some(p) => p,
        None => {
            let conversation = api.get(conversation_id).await?;
            let Some(p) = conversation
                .participant_with_purpose("customer")
                .and_then(|p| p.id.clone())
            else {
                return Err(AttributeError::NoCustomer);
            };
            let mut cache = lock(&shared.participants);
            if cache.len() >= 100_000 {
                cache.clear();
            }
            cache.insert(conversation_id.to_owned(), p.clone());
            p
        }
    };
    let attributes = BTreeMap::from([
        (ATTR_COUNT.to_owned(), note.count.to_string()),
        (ATTR_LAST_CHANNEL.to_owned(), note.channel.clone()),
        (
            ATTR_LAST_AT.to_owned(),
            note.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        ),
    ]);
    api.set_participant_attributes(conversation_id, &participant, &attributes)
        .await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum AttributeError {
    #[error(transparent)]
    Api(#[from] dedupd_genesys::Error),
    #[error("the first conversation has no customer participant")]
    NoCustomer,
}
