//! `dedupd-gateway`: the cross-channel message dedup gateway.
//!
//! A customer sends the same question by SMS, then chat, then e-mail; a phone retries a send; a
//! webhook is delivered twice. `POST /v1/messages` answers **PROCESS** for the first and
//! **SUPPRESS** for the rest within the window, in one atomic check-and-set, and (optionally)
//! forwards only PROCESS messages to the platform's inbound messaging (the
//! [`dedupd_platform::messaging::MessageIngress`] seam; Genesys Cloud Open Messaging today),
//! recording the duplicates on the first conversation ([`forward`]).
//!
//! # How a message is decided
//!
//! 1. **Customer**: `from` is read with the same `core` normalizers as ingest
//!    ([`dedupd_core::message::parse_address`]: E.164 with the configured default region,
//!    lowercased e-mail, or an opaque id) and resolved through the [`CustomerLookup`] seam:
//!    the exact [`ContactIndex`], or the resolution index ([`ResolutionLookup`]).
//! 2. **Text**: charset decoded, HTML/Markdown stripped, NFKC, case-folded, whitespace collapsed,
//!    punctuation at the ends ignored ([`dedupd_core::message::normalize_body`]).
//! 3. **Attachments**: images by a perceptual hash of their pixels, others by SHA-256
//!    ([`attachments`]).
//! 4. **Fingerprint** = SHA-256(customer, text, sorted attachment hashes)
//!    ([`dedupd_core::message::fingerprint`]), claimed in the dedup window
//!    ([`dedupd_store::window`]): embedded or Redis. How long a first message suppresses a later
//!    one depends on their pair of channels ([`GatewayConfig::windows`]).
//! 5. **Near-duplicates** (only with [`GatewayConfig::near`]): a first message's text sketch is
//!    compared with the customer's recent ones; a close one is reported as `near_duplicate_of`
//!    (the message is still PROCESSed).
//! 6. When the window backend is unreachable, the [`DegradedPolicy`] decides (default: PROCESS
//!    and flag `degraded`; never lose a message). After a failure the backend is skipped for
//!    [`GatewayConfig::backend_retry_after`], then tried again: recovery needs no restart.
//!
//! # Reusable pieces
//!
//! What every dedupd service shares (the error envelope, the JSON extractor, auth, metrics,
//! health, and [`dedupd_http::compose`] to serve several APIs on one listener) lives in the
//! `dedupd-http` toolkit; the gateway is one API it composes.
//!
//! ```no_run
//! # async fn run() {
//! use std::sync::Arc;
//! use dedupd_gateway::{ContactIndex, Gateway, GatewayConfig};
//! use dedupd_store::window::{EmbeddedWindow, Window};
//!
//! let window = Window::Embedded(Arc::new(EmbeddedWindow::new(1_000_000)));
//! let gateway = Gateway::new(GatewayConfig::default(), ContactIndex::new(), window, None);
//! let app = dedupd_http::compose(
//!     vec![gateway.api(dedupd_http::Auth::open(1 << 20))],
//!     gateway.health(),
//!     dedupd_http::metrics::install(),
//!     &dedupd_http::ServiceOptions::default(),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```

mod address_cache;
pub mod api;
pub mod attachments;
pub mod contacts;
pub mod events;
pub mod forward;
pub mod telemetry;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use dedupd_core::message::{
    AttachmentHash, BodyFormat, TextSketch, decode_charset, fingerprint, normalize_body,
    parse_address, strip_markup,
};
use dedupd_core::normalize::Region;
use dedupd_platform::messaging::{InboundMessage, MessageSender, SenderKind};
use dedupd_store::window::{
    Claim, DedupWindow, FirstSeen, NearHit, NearProbe, Window, WindowError, WindowKey, WindowRules,
};
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;

pub use api::{
    AttachmentRequest, Decision, DecisionResponse, DuplicateOf, MessageRequest, NearDuplicateOf,
};
pub use contacts::{ContactIndex, CustomerLookup, IndexError, IndexReport, ResolutionLookup};
pub use events::{DECISION_EVENT_SCHEMA, DecisionEvent, DecisionObserver};
pub use forward::{ForwardConfig, ForwardStats, Forwarder};

use dedupd_http::{ApiError, Health, Readiness, ReadyCheck};

/// What to do when the window backend cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DegradedPolicy {
    /// PROCESS without a check, flagged `degraded` (a duplicate may get through; no message
    /// is lost).
    #[default]
    Process,
    /// Answer 503 with `Retry-After` (the sender retries; nothing gets through unchecked).
    Reject,
}

/// Near-duplicate flagging (off unless configured).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearConfig {
    /// Least similarity of two texts ([`dedupd_core::message::TextSketch::similarity`]) that
    /// flags the later one. Default 0.6: in the sample stream, texts that differ by one accent
    /// score 0.79–0.81 and different questions at most 0.16; a typo plus one added word ("where
    /// is my refund for ordr 4471 please") scores 0.71.
    pub threshold: f64,
    /// Recent first messages remembered per customer (default 16).
    pub keep: usize,
}

impl Default for NearConfig {
    fn default() -> Self {
        NearConfig {
            threshold: 0.6,
            keep: 16,
        }
    }
}

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The dedup windows, by channel pair (300 s for every pair by default).
    pub windows: WindowRules,
    /// Near-duplicate flagging; `None` (the default) leaves it off.
    pub near: Option<NearConfig>,
    /// Region of national phone numbers in `from` (`US` by default).
    pub default_region: Option<Region>,
    /// Largest accepted request body.
    pub body_limit: usize,
    /// Most attachments per message.
    pub max_attachments: usize,
    /// What to do when the window backend is down.
    pub degraded_policy: DegradedPolicy,
    /// After a backend failure, how long to decide by the policy without trying the backend.
    pub backend_retry_after: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            windows: WindowRules::uniform(Duration::from_secs(300)),
            near: None,
            default_region: "US".parse().ok(),
            body_limit: 1024 * 1024,
            max_attachments: 10,
            degraded_policy: DegradedPolicy::Process,
            backend_retry_after: Duration::from_secs(1),
        }
    }
}

struct Inner {
    config: GatewayConfig,
    contacts: Arc<dyn CustomerLookup>,
    /// `from` → parsed address for repeat senders (the index lookup is not cached).
    addresses: address_cache::AddressCache,
    window: Window,
    forwarder: Option<Forwarder>,
    /// Unix millis until which the backend is skipped after a failure (0: healthy).
    backend_down_until: AtomicI64,
    /// The backend refuses our credentials (set and cleared by every call that learns it).
    credentials_refused: AtomicBool,
    started: Instant,
    /// Metric handles, registered on the first message (the recorder is installed by then).
    metrics: std::sync::OnceLock<telemetry::Handles>,
    /// Told every decision, when decisions are published ([`Gateway::observe_decisions`]).
    decisions: std::sync::OnceLock<DecisionObserver>,
}

/// The gateway: decides messages, hands PROCESS/SUPPRESS to the forwarder. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

/// A message after normalization: what the fingerprint is taken over, plus what forwarding
/// needs. Never logged (it holds the address and text).
struct Prepared {
    customer: dedupd_core::message::Customer,
    address_kind: &'static str,
    text: String,
    readable: String,
    attachments: Vec<AttachmentHash>,
}

impl Gateway {
    /// A gateway over `window`, resolving customers through `contacts` (a [`ContactIndex`] or
    /// a [`ResolutionLookup`]), forwarding through `forwarder` when given.
    pub fn new(
        config: GatewayConfig,
        contacts: impl CustomerLookup,
        window: Window,
        forwarder: Option<Forwarder>,
    ) -> Gateway {
        let addresses = address_cache::AddressCache::new(
            config.default_region,
            address_cache::DEFAULT_CAPACITY,
        );
        Gateway {
            inner: Arc::new(Inner {
                addresses,
                config,
                contacts: Arc::new(contacts),
                window,
                forwarder,
                backend_down_until: AtomicI64::new(0),
                credentials_refused: AtomicBool::new(false),
                started: Instant::now(),
                metrics: std::sync::OnceLock::new(),
                decisions: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Tells `observer` every decision from now on, as a [`DecisionEvent`] (no text, no
    /// address). One observer per gateway: false when one was set before.
    pub fn observe_decisions(&self, observer: DecisionObserver) -> bool {
        self.inner.decisions.set(observer).is_ok()
    }

    /// The configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    /// The window backend.
    pub fn window(&self) -> &Window {
        &self.inner.window
    }

    /// The forwarder, when forwarding is on.
    pub fn forwarder(&self) -> Option<&Forwarder> {
        self.inner.forwarder.as_ref()
    }

    /// `POST /v1/messages` (with its OpenAPI path), behind `auth` and the body limit.
    pub fn api(&self, auth: dedupd_http::Auth) -> OpenApiRouter {
        dedupd_http::guard(api::routes(self.clone()), auth).layer(dedupd_http::BodyLimitLayer::new(
            self.inner.config.body_limit,
        ))
    }

    /// The gateway's readiness check (`window`): ready, or degraded while the backend is down
    /// under the PROCESS policy, or not ready under the reject policy, or not ready whatever
    /// the policy while the backend refuses the credentials (a wrong Redis password).
    pub fn health(&self) -> Health {
        Health::new().with("window", Arc::new(self.clone()))
    }

    fn validate(&self, req: &MessageRequest) -> Result<(), ApiError> {
        let channel = req.channel.trim();
        if channel.is_empty() {
            return Err(ApiError::invalid_field(
                "channel",
                "channel must not be empty",
            ));
        }
        if channel.chars().count() > 64 {
            return Err(ApiError::invalid_field(
                "channel",
                "channel is longer than 64 characters",
            ));
        }
        if req.from.trim().is_empty() {
            return Err(ApiError::invalid_field("from", "from must not be empty"));
        }
        if req.from.chars().count() > 512 {
            return Err(ApiError::invalid_field(
                "from",
                "from is longer than 512 characters",
            ));
        }
        match (&req.text, &req.body_base64) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid_field(
                    "body_base64",
                    "give either text or body_base64, not both",
                ));
            }
            (None, None) if req.attachments.is_empty() => {
                return Err(ApiError::invalid_field(
                    "text",
                    "a message needs text, body_base64 or attachments",
                ));
            }
            _ => {}
        }
        if req.charset.is_some() && req.body_base64.is_none() {
            return Err(ApiError::invalid_field(
                "charset",
                "charset applies to body_base64 only (text is UTF-8)",
            ));
        }
        if req.attachments.len() > self.inner.config.max_attachments {
            return Err(ApiError::invalid_field(
                "attachments",
                format!(
                    "at most {} attachments per message",
                    self.inner.config.max_attachments
                ),
            ));
        }
        for field in [
            ("message_id", &req.message_id),
            ("conversation_id", &req.conversation_id),
        ] {
            if field.1.as_ref().is_some_and(|v| v.chars().count() > 256) {
                return Err(ApiError::invalid_field(
                    field.0,
                    format!("{} is longer than 256 characters", field.0),
                ));
            }
        }
        Ok(())
    }

    fn prepare(&self, req: &MessageRequest) -> Result<Prepared, ApiError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let body: std::borrow::Cow<'_, str> = match (&req.text, &req.body_base64) {
            (Some(t), _) => t.into(),
            (None, Some(encoded)) => {
                let bytes = b64.decode(encoded.trim()).map_err(|_| {
                    ApiError::invalid_field("body_base64", "body_base64 is not valid base64")
                })?;
                let label = req.charset.as_deref().unwrap_or("utf-8");
                decode_charset(&bytes, label)
                    .map_err(|_| {
                        ApiError::invalid_field(
                            "charset",
                            "charset is not a WHATWG encoding label (utf-8, iso-8859-1, windows-1252, …)",
                        )
                    })?
                    .into()
            }
            (None, None) => "".into(),
        };
        let format = match req.content_type.as_deref() {
            None => BodyFormat::Auto,
            Some(ct) => BodyFormat::from_mime(ct).ok_or_else(|| {
                ApiError::invalid_field(
                    "content_type",
                    "content_type must be text/plain, text/html or text/markdown",
                )
            })?,
        };
        let mut attachments = Vec::with_capacity(req.attachments.len());
        for (i, a) in req.attachments.iter().enumerate() {
            let bytes = b64.decode(a.data_base64.trim()).map_err(|_| {
                ApiError::invalid_field(
                    format!("attachments[{i}].data_base64"),
                    "data_base64 is not valid base64",
                )
            })?;
            if a.content_type.trim().is_empty() {
                return Err(ApiError::invalid_field(
                    format!("attachments[{i}].content_type"),
                    "content_type must not be empty",
                ));
            }
            attachments.push(attachments::hash_attachment(&a.content_type, &bytes));
        }
        let address = self.inner.addresses.parse(&req.channel, &req.from);
        let address_kind = address.kind();
        Ok(Prepared {
            customer: self.inner.contacts.customer(address),
            address_kind,
            text: normalize_body(&body, format),
            readable: if self.inner.forwarder.is_some() {
                strip_markup(&body, format)
            } else {
                String::new()
            },
            attachments,
        })
    }

    /// Decides one message at `now`: validation, normalization, the atomic claim, metrics and
    /// the hand-off to the forwarder.
    pub async fn decide(
        &self,
        req: MessageRequest,
        now: DateTime<Utc>,
    ) -> Result<DecisionResponse, ApiError> {
        self.validate(&req)?;
        let prepared = if req.attachments.is_empty() {
            self.prepare(&req)?
        } else {
            // Image decoding is CPU work: keep it off the async workers.
            let this = self.clone();
            let (req_back, prepared) = tokio::task::spawn_blocking(move || {
                let p = this.prepare(&req);
                (req, p)
            })
            .await
            .map_err(|_| ApiError::internal())?;
            let p = prepared?;
            return self.decide_prepared(req_back, p, now).await;
        };
        self.decide_prepared(req, prepared, now).await
    }

    async fn decide_prepared(
        &self,
        req: MessageRequest,
        prepared: Prepared,
        now: DateTime<Utc>,
    ) -> Result<DecisionResponse, ApiError> {
        let fp = fingerprint(&prepared.customer, &prepared.text, &prepared.attachments);
        let channel = req.channel.trim().to_owned();
        let rules = &self.inner.config.windows;
        let entry = FirstSeen {
            message_id: req.message_id.clone(),
            conversation_id: req.conversation_id.clone(),
            channel: channel.clone(),
            first_seen_at: now,
        };
        let claim = self.claim(&fp.0, &entry, rules, now).await;
        let customer = prepared.customer.canonical_id();
        let mut answer = DecisionResponse {
            decision: Decision::Process,
            fingerprint: fp.to_hex(),
            customer,
            duplicate_of: None,
            duplicates: 0,
            window_seconds: rules.longest_from(&channel).as_secs(),
            near_duplicate_of: None,
            degraded: false,
        };
        let reason = match claim {
            Ok(Claim::First) => match self.near(&prepared, &fp.0, &entry).await {
                Some(hit) => {
                    answer.near_duplicate_of = Some(NearDuplicateOf {
                        message_id: hit.first.message_id,
                        conversation_id: hit.first.conversation_id,
                        first_seen_at: hit.first.first_seen_at,
                        channel: hit.first.channel,
                        similarity: hit.similarity,
                    });
                    telemetry::Reason::NearDuplicate
                }
                None => telemetry::Reason::First,
            },
            Ok(Claim::Duplicate { first, duplicates }) => {
                answer.decision = Decision::Suppress;
                answer.duplicates = duplicates;
                answer.window_seconds = rules.between(&first.channel, &channel).as_secs();
                answer.duplicate_of = Some(DuplicateOf {
                    message_id: first.message_id,
                    conversation_id: first.conversation_id,
                    first_seen_at: first.first_seen_at,
                    channel: first.channel,
                });
                telemetry::Reason::Duplicate
            }
            Err(_) if self.inner.config.degraded_policy == DegradedPolicy::Reject => {
                return Err(ApiError::unavailable(
                    "the dedup window is unavailable; retry later",
                    u32::try_from(self.inner.config.backend_retry_after.as_secs().max(1))
                        .unwrap_or(1),
                ));
            }
            Err(_) => {
                answer.degraded = true;
                telemetry::Reason::Degraded
            }
        };
        self.metrics().decided(&channel, reason);
        tracing::debug!(
            fingerprint = %&answer.fingerprint[..16],
            channel = telemetry::channel_label(&channel),
            address_kind = prepared.address_kind,
            decision = answer.decision.as_str(),
            reason = reason.as_str(),
            "Decided a message."
        );
        if let Some(observe) = self.inner.decisions.get() {
            let contact = match &prepared.customer {
                dedupd_core::message::Customer::Known(id) => Some(id.as_str()),
                dedupd_core::message::Customer::Unknown(_) => None,
            };
            observe(&DecisionEvent::of(
                &answer,
                &channel,
                req.message_id.as_deref(),
                contact,
                prepared.address_kind,
                now,
            ));
        }
        if let Some(forwarder) = &self.inner.forwarder {
            match answer.decision {
                Decision::Process => {
                    forwarder.send(fp.0, self.inbound_message(&req, &prepared, &answer, now));
                }
                Decision::Suppress => forwarder.duplicate(
                    fp.0,
                    answer.duplicates,
                    &channel,
                    now,
                    answer
                        .duplicate_of
                        .as_ref()
                        .and_then(|d| d.conversation_id.clone()),
                ),
            }
        }
        Ok(answer)
    }

    /// The near-duplicate step after a first claim, when configured: the customer's most
    /// similar recent message. A backend failure here only loses the flag.
    async fn near(
        &self,
        prepared: &Prepared,
        fingerprint: &WindowKey,
        entry: &FirstSeen,
    ) -> Option<NearHit> {
        let config = self.inner.config.near?;
        let sketch = TextSketch::of(&prepared.text);
        if sketch.is_empty() {
            return None;
        }
        let customer: WindowKey = Sha256::new()
            .chain_update(b"dedupd.near.v1\0")
            .chain_update(prepared.customer.canonical_id().as_bytes())
            .finalize()
            .into();
        let probe = NearProbe {
            customer: &customer,
            fingerprint,
            sketch: &sketch,
            entry,
            threshold: config.threshold,
            keep: config.keep,
        };
        let window = &self.inner.window;
        let mut hit = match window.near(&probe, &self.inner.config.windows).await {
            Ok(hit) => hit?,
            Err(e) => {
                let backend = window.backend_name();
                metrics::counter!(telemetry::BACKEND_ERRORS, "backend" => backend).increment(1);
                tracing::warn!(backend, error = %e, "The near-duplicate step failed; no flag.");
                return None;
            }
        };
        // The conversation the earlier message created is known to its window entry.
        if hit.first.conversation_id.is_none()
            && let Ok(Some((first, _))) = window.get(&hit.fingerprint, entry.first_seen_at).await
        {
            hit.first.conversation_id = first.conversation_id;
        }
        Some(hit)
    }

    async fn claim(
        &self,
        key: &[u8; 32],
        entry: &FirstSeen,
        rules: &WindowRules,
        now: DateTime<Utc>,
    ) -> Result<Claim, WindowError> {
        let backend = self.inner.window.backend_name();
        let down_until = self.inner.backend_down_until.load(Ordering::Relaxed);
        if down_until != 0 && now.timestamp_millis() < down_until {
            return Err(WindowError::Unavailable {
                at: self.inner.window.address(),
                source: "backend paused after a failure".into(),
            });
        }
        let started = Instant::now();
        let result = self.inner.window.claim(key, entry, rules).await;
        self.metrics()
            .backend_latency(started.elapsed().as_secs_f64());
        match &result {
            Ok(_) if down_until != 0 => {
                self.inner.backend_down_until.store(0, Ordering::Relaxed);
                self.note_refused(false);
                tracing::info!(backend, "The dedup window backend is back.");
            }
            Ok(_) => {}
            Err(e) => {
                self.note_refused(matches!(e, WindowError::Refused { .. }));
                metrics::counter!(telemetry::BACKEND_ERRORS, "backend" => backend).increment(1);
                let pause = i64::try_from(self.inner.config.backend_retry_after.as_millis())
                    .unwrap_or(1000);
                self.inner
                    .backend_down_until
                    .store(now.timestamp_millis() + pause, Ordering::Relaxed);
                tracing::warn!(backend, error = %e, "The dedup window backend failed; deciding by the degraded policy.");
            }
        }
        result
    }

    fn inbound_message(
        &self,
        req: &MessageRequest,
        prepared: &Prepared,
        answer: &DecisionResponse,
        now: DateTime<Utc>,
    ) -> InboundMessage {
        use dedupd_core::message::{Address, Customer};
        let (id, kind) = match &prepared.customer {
            Customer::Unknown(Address::Phone(p)) => (p.clone(), SenderKind::Phone),
            Customer::Unknown(Address::Email(e)) => (e.clone(), SenderKind::Email),
            _ => match parse_address(&req.channel, &req.from, self.inner.config.default_region) {
                Address::Phone(p) => (p, SenderKind::Phone),
                Address::Email(e) => (e, SenderKind::Email),
                Address::Opaque { id, .. } => (id, SenderKind::Opaque),
            },
        };
        let metadata = std::collections::BTreeMap::from([
            ("dedupd.fingerprint".to_owned(), answer.fingerprint.clone()),
            ("dedupd.channel".to_owned(), req.channel.trim().to_owned()),
        ]);
        InboundMessage {
            fingerprint: answer.fingerprint.clone(),
            channel: req.channel.trim().to_owned(),
            from: MessageSender { id, kind },
            sent_at: req.received_at.unwrap_or(now),
            message_id: req.message_id.clone(),
            text: prepared.readable.clone(),
            metadata,
        }
    }

    /// Records whether the backend refuses our credentials; says so loudly (an error) when it
    /// starts, since it will not recover without an operator, and when it ends.
    fn note_refused(&self, refused: bool) {
        let was = self
            .inner
            .credentials_refused
            .swap(refused, Ordering::Relaxed);
        let backend = self.inner.window.backend_name();
        match (was, refused) {
            (false, true) => tracing::error!(
                backend,
                "The dedup window backend REFUSED dedupd's credentials (a wrong or missing \
                 password or ACL user in the Redis URL). This will not fix itself: /readyz \
                 answers 503 and every message is decided by the degraded policy, unchecked, \
                 until the URL is corrected."
            ),
            (true, false) => {
                tracing::info!(
                    backend,
                    "The dedup window backend accepts the credentials again."
                );
            }
            _ => {}
        }
    }

    /// Publishes the embedded window's size and effective window as gauges (call periodically).
    pub fn publish_window_gauges(&self, now: DateTime<Utc>) {
        if let Window::Embedded(w) = &self.inner.window {
            metrics::gauge!(telemetry::WINDOW_ENTRIES).set(w.len() as f64);
            metrics::gauge!(telemetry::WINDOW_EFFECTIVE_SECONDS).set(
                w.effective_window(self.inner.config.windows.longest(), now)
                    .as_secs_f64(),
            );
        }
    }

    /// Registers the gateway's metric series (every channel and reason, the backend's latency
    /// and errors) with the installed recorder, so `/metrics` lists them before the first
    /// message. Without it they are registered on the first message.
    pub fn register_metrics(&self) {
        let _ = self.metrics();
    }

    fn metrics(&self) -> &telemetry::Handles {
        self.inner
            .metrics
            .get_or_init(|| telemetry::Handles::register(self.inner.window.backend_name()))
    }

    /// Seconds since the gateway was built.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }
}

impl ReadyCheck for Gateway {
    fn check(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Readiness> + Send + '_>> {
        Box::pin(async move {
            let result = match &self.inner.window {
                Window::Embedded(_) => Ok(()),
                Window::Redis(r) => r.check().await,
            };
            self.note_refused(matches!(result, Err(WindowError::Refused { .. })));
            match (result, self.inner.config.degraded_policy) {
                (Ok(()), _) => Readiness::Ready,
                // A configuration error: no instance with it should take traffic.
                (Err(WindowError::Refused { .. }), _) => Readiness::NotReady,
                (Err(_), DegradedPolicy::Process) => Readiness::Degraded,
                (Err(_), DegradedPolicy::Reject) => Readiness::NotReady,
            }
        })
    }
}
