//! Forwarding to the contact-center platform, off the request path, through its inbound
//! messaging seam ([`MessageIngress`]: Genesys Cloud Open Messaging today, in
//! `dedupd-genesys`). The forwarder holds it as `Arc<dyn MessageIngress>`: the platform is
//! chosen at start from the configuration, the [`Forwarder`] stays one type that the
//! [`crate::Gateway`] holds without a type parameter, and one boxed future per forward is
//! nothing next to the network call it makes.
//!
//! - A PROCESS message is forwarded once (the platform's client applies its rate budget and
//!   its own retries). The conversation it creates is recorded in the dedup window, so later
//!   duplicates know where to report. The forward is not idempotent: a 504 or a timeout after
//!   sending is "outcome unknown" and is **not** resent (it could create a second
//!   conversation, the very thing this gateway exists to prevent); it is counted and logged.
//! - A SUPPRESS message is not sent. Its first conversation is annotated with the attributes
//!   `dedupd.duplicateCount`, `dedupd.lastDuplicateChannel` and `dedupd.lastDuplicateAt`
//!   (RFC 3339 UTC; Genesys: on its customer participant), asynchronously, with retry. Duplicates of one
//!   message are coalesced (the newest count wins), so a burst costs one update, and the
//!   attribute update is retried until the first conversation is known (its forward may still
//!   be in flight).
//!
//! Queues are bounded; when full, work is dropped and counted rather than slowing the gateway.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use dedupd_platform::messaging::{InboundMessage, MessageIngress};
use dedupd_platform::{ErrorKind, PlatformError};
use dedupd_store::window::{DedupWindow, Window, WindowKey};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use crate::telemetry;

/// Attribute names written on the first conversation.
pub const ATTR_COUNT: &str = "dedupd.duplicateCount";
/// The channel of the newest duplicate.
pub const ATTR_LAST_CHANNEL: &str = "dedupd.lastDuplicateChannel";
/// When the newest duplicate arrived (RFC 3339 UTC).
pub const ATTR_LAST_AT: &str = "dedupd.lastDuplicateAt";

/// How the forwarder runs.
#[derive(Clone, Debug)]
pub struct ForwardConfig {
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

/// Queue 10 000, 8 in flight, 8 attribute attempts 250 ms apart (growing).
impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            queue: 10_000,
            concurrency: 8,
            attribute_attempts: 8,
            attribute_retry_delay: Duration::from_millis(250),
        }
    }
}

struct SendJob {
    key: WindowKey,
    message: InboundMessage,
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
    ingress: Arc<dyn MessageIngress>,
    window: Window,
    config: ForwardConfig,
    pending_duplicates: Mutex<HashMap<WindowKey, DuplicateNote>>,
    duplicates_ready: Arc<Notify>,
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
        ingress: Arc<dyn MessageIngress>,
        window: Window,
        config: ForwardConfig,
    ) -> (Forwarder, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let shared = Arc::new(Shared {
            ingress,
            window,
            config,
            pending_duplicates: Mutex::new(HashMap::new()),
            duplicates_ready: Arc::new(Notify::new()),
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
    pub fn send(&self, key: WindowKey, message: InboundMessage) {
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
    let result = shared.ingress.forward(&job.message).await;
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
        Err(e) if e.kind == ErrorKind::OutcomeUnknown => {
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
) -> Result<(), PlatformError> {
    let attributes = BTreeMap::from([
        (ATTR_COUNT.to_owned(), note.count.to_string()),
        (ATTR_LAST_CHANNEL.to_owned(), note.channel.clone()),
        (
            ATTR_LAST_AT.to_owned(),
            note.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        ),
    ]);
    shared.ingress.annotate(conversation_id, &attributes).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use dedupd_platform::messaging::{BoxFuture, Forwarded, MessageSender, SenderKind};
    use dedupd_store::window::{EmbeddedWindow, FirstSeen, WindowRules};

    use super::*;

    /// A platform that records what it is asked, answers forwards with `forward`, and fails the
    /// first `annotate_failures` annotations.
    struct FakeIngress {
        forward: Result<Forwarded, PlatformError>,
        forwards: Mutex<Vec<InboundMessage>>,
        annotate_failures: Mutex<u32>,
        annotations: Mutex<Vec<(String, BTreeMap<String, String>)>>,
        annotate_calls: Mutex<u32>,
    }

    impl FakeIngress {
        fn new(forward: Result<Forwarded, PlatformError>, annotate_failures: u32) -> Arc<Self> {
            Arc::new(Self {
                forward,
                forwards: Mutex::new(Vec::new()),
                annotate_failures: Mutex::new(annotate_failures),
                annotations: Mutex::new(Vec::new()),
                annotate_calls: Mutex::new(0),
            })
        }
    }

    impl MessageIngress for FakeIngress {
        fn platform(&self) -> &'static str {
            "fake"
        }

        fn forward<'a>(
            &'a self,
            message: &'a InboundMessage,
        ) -> BoxFuture<'a, Result<Forwarded, PlatformError>> {
            lock(&self.forwards).push(message.clone());
            Box::pin(std::future::ready(self.forward.clone()))
        }

        fn annotate<'a>(
            &'a self,
            conversation_id: &'a str,
            attributes: &'a BTreeMap<String, String>,
        ) -> BoxFuture<'a, Result<(), PlatformError>> {
            *lock(&self.annotate_calls) += 1;
            let mut failures = lock(&self.annotate_failures);
            let result = if *failures > 0 {
                *failures -= 1;
                Err(PlatformError::new(ErrorKind::Transient, "HTTP 503"))
            } else {
                lock(&self.annotations).push((conversation_id.to_owned(), attributes.clone()));
                Ok(())
            };
            Box::pin(std::future::ready(result))
        }
    }

    fn message() -> InboundMessage {
        InboundMessage {
            fingerprint: "ab".repeat(32),
            channel: "sms".into(),
            from: MessageSender {
                id: "+12013093185".into(),
                kind: SenderKind::Phone,
            },
            sent_at: Utc::now(),
            message_id: Some("m-1".into()),
            text: "Where is my refund?".into(),
            metadata: BTreeMap::new(),
        }
    }

    fn window() -> Window {
        Window::Embedded(Arc::new(EmbeddedWindow::new(1000)))
    }

    /// Lets the workers run (paused time: sleeping advances the clock, not the wall).
    async fn until(what: &str, ok: impl Fn() -> bool) {
        for _ in 0..10_000 {
            if ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never: {what}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_process_message_is_forwarded_once_and_its_conversation_recorded() {
        let ingress = FakeIngress::new(
            Ok(Forwarded {
                conversation_id: Some("conv-1".into()),
                message_id: Some("pm-1".into()),
            }),
            0,
        );
        let window = window();
        let key = [7u8; 32];
        let entry = FirstSeen {
            message_id: None,
            conversation_id: None,
            channel: "sms".into(),
            first_seen_at: Utc::now(),
        };
        window
            .claim(
                &key,
                &entry,
                &WindowRules::uniform(Duration::from_secs(300)),
            )
            .await
            .unwrap();
        let (forwarder, _worker) =
            Forwarder::start(ingress.clone(), window.clone(), ForwardConfig::default());
        forwarder.send(key, message());
        until("the forward", || forwarder.stats().sent == 1).await;
        let expected = message_with_time(&ingress);
        assert_eq!(*lock(&ingress.forwards), [expected]);
        let (first, _) = window.get(&key, Utc::now()).await.unwrap().unwrap();
        assert_eq!(first.conversation_id.as_deref(), Some("conv-1"));
    }

    /// The one forwarded message, compared field by field except its time.
    fn message_with_time(ingress: &FakeIngress) -> InboundMessage {
        let sent = lock(&ingress.forwards)[0].clone();
        InboundMessage {
            sent_at: sent.sent_at,
            ..message()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_outcome_unknown_forward_is_counted_and_never_resent() {
        let ingress = FakeIngress::new(
            Err(PlatformError::new(ErrorKind::OutcomeUnknown, "HTTP 504").with_status(504)),
            0,
        );
        let (forwarder, _worker) =
            Forwarder::start(ingress.clone(), window(), ForwardConfig::default());
        forwarder.send([1u8; 32], message());
        until("the forward", || {
            forwarder.stats() != ForwardStats::default()
        })
        .await;
        assert_eq!(
            forwarder.stats(),
            ForwardStats {
                outcome_unknown: 1,
                ..ForwardStats::default()
            }
        );
        assert_eq!(lock(&ingress.forwards).len(), 1, "sent once, not again");

        let refused = FakeIngress::new(Err(PlatformError::new(ErrorKind::Permanent, "400")), 0);
        let (forwarder, _worker) =
            Forwarder::start(refused.clone(), window(), ForwardConfig::default());
        forwarder.send([1u8; 32], message());
        until("the forward", || {
            forwarder.stats() != ForwardStats::default()
        })
        .await;
        assert_eq!(forwarder.stats().failed, 1);
        assert_eq!(lock(&refused.forwards).len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn duplicates_are_coalesced_and_annotated_with_retry() {
        let ingress = FakeIngress::new(Ok(Forwarded::default()), 2);
        let (forwarder, _worker) =
            Forwarder::start(ingress.clone(), window(), ForwardConfig::default());
        let at = Utc::now();
        let key = [2u8; 32];
        forwarder.duplicate(key, 2, "email", at, Some("conv-9".into()));
        forwarder.duplicate(key, 3, "chat", at, None);
        forwarder.duplicate(key, 1, "fax", at, None); // older count: ignored
        until("the annotation", || forwarder.stats().attributes_set == 1).await;
        assert_eq!(
            *lock(&ingress.annotate_calls),
            3,
            "two failures, then success"
        );
        let annotations = lock(&ingress.annotations).clone();
        assert_eq!(
            annotations,
            [(
                "conv-9".to_owned(),
                BTreeMap::from([
                    (ATTR_COUNT.to_owned(), "3".to_owned()),
                    (ATTR_LAST_CHANNEL.to_owned(), "chat".to_owned()),
                    (
                        ATTR_LAST_AT.to_owned(),
                        at.to_rfc3339_opts(SecondsFormat::Millis, true)
                    ),
                ])
            )]
        );
        assert_eq!(forwarder.pending_duplicates(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_duplicate_without_a_known_conversation_is_given_up_after_its_attempts() {
        let ingress = FakeIngress::new(Ok(Forwarded::default()), 0);
        let config = ForwardConfig {
            attribute_attempts: 3,
            ..ForwardConfig::default()
        };
        let (forwarder, _worker) = Forwarder::start(ingress.clone(), window(), config);
        forwarder.duplicate([3u8; 32], 2, "chat", Utc::now(), None);
        until("giving up", || forwarder.stats().attributes_failed == 1).await;
        assert_eq!(*lock(&ingress.annotate_calls), 0, "nothing to annotate");
    }
}
