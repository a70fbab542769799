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
//!   through a [`Provider`], retries with full-jitter backoff and `Retry-After`, and handles
//!   ambiguous outcomes per the provider's [`Ambiguity`] policy; [`ProviderHealth`] pauses a
//!   provider that has had no success for a while (readiness `degraded`, a metric).
//! - [`NotifyConfig`]: the `[notifications]` section; [`open_outbox`] and [`build_providers`]
//!   turn it into the runtime pieces.
//! - [`Clock`]: the system clock, or a manual one in tests.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), dedupd_notify::NotifyError> {
//! use dedupd_notify::{
//!     Clock, NotifyApi, NotifyConfig, NotifyError, Relay, app, build_providers, open_outbox,
//! };
//! let cfg = NotifyConfig::default();
//! let outbox = open_outbox(&cfg, None, std::path::Path::new(".dedupd")).await?;
//! let api = NotifyApi::new(outbox.clone(), &cfg, Clock::System);
//! let relay = Relay::new(outbox, build_providers(&cfg).await?, cfg.relay.clone(), Clock::System);
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

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use dedupd_genesys::{ClientConfig, GenesysClient, RetryPolicy};
use dedupd_store::outbox::{EmbeddedOutbox, Outbox, PgOutbox};
use secrecy::SecretString;

pub use clock::Clock;
pub use config::{NotifyConfig, ProviderConfig, RelayConfig};
pub use http::{
    ApiError, InFlight, InFlightGuard, MAX_BODY_BYTES, NotifyApi, REPLAYED_HEADER, app, router,
};
pub use provider::{Ambiguity, Provider, Readback, SendResult};
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
    /// The Genesys client could not be built.
    #[error("Genesys provider: {0}")]
    Genesys(#[from] dedupd_genesys::Error),
    /// An I/O error (binding a port…).
    #[error(transparent)]
    Io(std::io::Error),
}

/// The outbox `cfg` names: PostgreSQL when `postgres` (the flag, which wins) or
/// `cfg.postgres` is set, else the embedded outbox in `cfg.outbox` or `state_dir/outbox`.
pub async fn open_outbox(
    cfg: &NotifyConfig,
    postgres: Option<&str>,
    state_dir: &Path,
) -> Result<Outbox, NotifyError> {
    match postgres.or(cfg.postgres.as_deref()) {
        Some(url) => Ok(Outbox::Postgres(PgOutbox::connect(url, None, 16).await?)),
        None => {
            let dir = cfg
                .outbox
                .clone()
                .unwrap_or_else(|| state_dir.join("outbox"));
            Ok(Outbox::Embedded(EmbeddedOutbox::open(&dir)?))
        }
    }
}

/// The providers `cfg` configures. Genesys credentials come from the environment; an HTTP
/// provider's token from the variable its `token_env` names.
pub async fn build_providers(
    cfg: &NotifyConfig,
) -> Result<BTreeMap<String, Provider>, NotifyError> {
    let timeout = Duration::from_secs(cfg.relay.request_timeout_secs);
    let mut out = BTreeMap::new();
    for (name, p) in &cfg.providers {
        let provider = match p {
            ProviderConfig::Http {
                url,
                token_env,
                dedupes_on_key,
            } => {
                let token = match token_env {
                    Some(var) => Some(SecretString::from(std::env::var(var).map_err(|_| {
                        NotifyError::Config(format!(
                            "provider `{name}`: environment variable {var} is not set"
                        ))
                    })?)),
                    None => None,
                };
                Provider::Http(
                    provider::HttpProvider::new(url.clone(), token, *dedupes_on_key, timeout)
                        .map_err(|e| NotifyError::Config(format!("provider `{name}`: {e}")))?,
                )
            }
            ProviderConfig::GenesysAgentless { from } => {
                let mut client_cfg = ClientConfig::from_env()?;
                client_cfg.request_timeout = timeout;
                client_cfg.retry = relay_retry_policy();
                let client = GenesysClient::new(client_cfg).await?;
                Provider::Agentless(provider::AgentlessProvider::new(client, from.clone()))
            }
        };
        out.insert(name.clone(), provider);
    }
    Ok(out)
}

/// The Genesys client's own retries inside one relay attempt: a few quick ones (429 with
/// `Retry-After`, 5xx on reads); the relay's backoff does the rest.
pub fn relay_retry_policy() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(5),
        max_total: Duration::from_secs(15),
        max_attempts: 3,
    }
}
