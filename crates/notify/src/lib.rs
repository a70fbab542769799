//! `dedupd-notify`: one business event = one notification, through retries, crashes and
//! timeouts.
//!
//! # Principal types
//!
//! - [`NotifyApi`] and [`router`] / [`app`]: `POST /v1/notifications` (Idempotency-Key
//!   semantics: 400 without a key, 202 the first time, the stored response replayed for the same
//!   body, 422 for another body, 409 while the first is in flight) and
//!   `GET /v1/notifications/{key}`.
//! - [`Relay`]: claims due notifications from the outbox (`dedupd_store::outbox`), sends them
//!   through a [`NotificationSender`] (the platform seam), retries with full-jitter backoff and `Retry-After`, and handles
//!   ambiguous outcomes per the [`Ambiguity`] policy its capabilities give; [`ProviderHealth`] pauses a
//!   provider that has had no success for a while (readiness `degraded`, a metric).
//! - [`NotifyConfig`]: the `[notifications]` section; [`open_outbox`] and
//!   [`HttpProvider::configured`] turn it into the runtime pieces (a platform's senders are
//!   built by the binary, which knows the platform crates).
//! - [`Clock`]: the system clock, or a manual one in tests.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), dedupd_notify::NotifyError> {
//! use std::sync::Arc;
//! use dedupd_notify::{
//!     Clock, HttpProvider, NotifyApi, NotifyConfig, NotifyError, Relay, Senders, app, open_outbox,
//! };
//! let cfg = NotifyConfig::default();
//! let outbox = open_outbox(
//!     &cfg, None, std::path::Path::new(".dedupd"), Default::default(),
//! ).await?;
//! let api = NotifyApi::new(outbox.clone(), &cfg, Clock::System);
//! let mailer = HttpProvider::configured(
//!     "mailer", "https://mail.example.com/v1/send", None, true, cfg.relay.request_timeout(),
//! )?;
//! let senders = Senders::from([("mailer".to_owned(), Arc::new(mailer) as _)]);
//! let relay = Relay::new(outbox, senders, cfg.relay.clone(), Clock::System);
//! tokio::spawn(relay.run(std::future::pending()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.map_err(NotifyError::Io)?;
//! axum::serve(listener, app(api)).await.map_err(NotifyError::Io)?;
//! # Ok(()) }
//! ```

mod clock;
pub mod config;
mod http;
pub mod provider;
mod relay;
pub mod telemetry;

use std::path::Path;

use dedupd_store::outbox::{EmbeddedOutbox, Outbox, OutboxOptions, PgOutbox};

pub use clock::Clock;
pub use config::{NotifyConfig, ProviderConfig, RelayConfig};
pub use http::{
    ApiError, InFlight, InFlightGuard, MAX_BODY_BYTES, NotifyApi, REPLAYED_HEADER, Submitted, app,
    router, routes,
};
pub use provider::{
    Ambiguity, HttpProvider, NotificationSender, Readback, SendResult, SenderCapabilities, Senders,
};
pub use relay::{PROVIDER_PAUSED_METRIC, ProviderHealth, Relay, RoundStats};

/// Errors of setting notifications up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The `[notifications]` section is wrong.
    #[error("invalid [notifications] configuration: {0}")]
    Config(String),
    /// The outbox could not be opened.
    #[error(transparent)]
    Store(#[from] dedupd_store::StoreError),
    /// An I/O error (binding a port…).
    #[error(transparent)]
    Io(std::io::Error),
}

/// The outbox `cfg` names: PostgreSQL when `postgres` (the flag, which wins) or
/// `cfg.postgres` is set, else the embedded outbox in `cfg.outbox` or `state_dir/outbox`;
/// `opts` says whether it writes status events (only when something publishes them).
pub async fn open_outbox(
    cfg: &NotifyConfig,
    postgres: Option<&str>,
    state_dir: &Path,
    opts: OutboxOptions,
) -> Result<Outbox, NotifyError> {
    match postgres.or(cfg.postgres.as_deref()) {
        Some(url) => Ok(Outbox::Postgres(
            PgOutbox::connect(url, None, 16, opts).await?,
        )),
        None => {
            let dir = cfg
                .outbox
                .clone()
                .unwrap_or_else(|| state_dir.join("outbox"));
            Ok(Outbox::Embedded(EmbeddedOutbox::open(&dir, opts)?))
        }
    }
}
