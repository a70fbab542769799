//! What `dedupd serve` and `dedupd relay` share for notifications: the `[notifications]`
//! section, the outbox the flags and the section name, the senders it configures, and the
//! notification API plus in-process relay that `serve` adds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use dedupd_notify::{
    Clock, HttpProvider, NotificationSender, NotifyConfig, ProviderConfig, Relay, Senders,
};
use dedupd_store::outbox::{EmbeddedOutbox, Outbox, OutboxOptions, OutboxStore, PgOutbox};

use crate::shared::platform::Platform;

/// Reads the `[notifications]` section of a TOML file (absent: the defaults) and validates it.
pub fn load_section(path: &Path) -> anyhow::Result<NotifyConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let cfg: NotifyConfig = match doc.remove("notifications") {
        Some(v) => v
            .try_into()
            .with_context(|| format!("{}: [notifications]", path.display()))?,
        None => NotifyConfig::default(),
    };
    cfg.validate()?;
    Ok(cfg)
}

/// Reads the `[events]` section of a TOML file (absent: no sources, no events out) and
/// validates it; the broker URLs come from the environment (`DEDUPD_NATS_URL`,
/// `DEDUPD_AMQP_URL`, or a source's `url_env`), the webhook secrets from the variables named.
pub fn load_events(
    path: &Path,
) -> anyhow::Result<(Vec<dedupd_broker::Source>, Option<dedupd_broker::Out>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let cfg: dedupd_broker::EventsConfig = match doc.remove("events") {
        Some(v) => v
            .try_into()
            .with_context(|| format!("{}: [events]", path.display()))?,
        None => return Ok((Vec::new(), None)),
    };
    let env = |var: &str| std::env::var(var).ok();
    let sources = cfg
        .validate(env)
        .with_context(|| path.display().to_string())?;
    let out = cfg
        .out
        .as_ref()
        .map(|o| o.validate(env))
        .transpose()
        .with_context(|| path.display().to_string())?;
    Ok((sources, out))
}

/// What the outbox writes for this configuration: status events when `[events.out]` is there
/// (a publisher reads them); none otherwise. Every process that writes one outbox (`serve`, each
/// `relay`) reads the same file, so they agree.
pub fn outbox_options(events_out: bool) -> OutboxOptions {
    OutboxOptions {
        status_events: events_out,
    }
}

/// Whether the TOML file has an `[events.out]` section (read as `dedupd_broker::EventsConfig`,
/// without the secrets its webhooks name: a relay only needs to know that events are published).
pub fn has_events_out(path: &Path) -> anyhow::Result<bool> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let Some(v) = doc.remove("events") else {
        return Ok(false);
    };
    let cfg: dedupd_broker::EventsConfig = v
        .try_into()
        .with_context(|| format!("{}: [events]", path.display()))?;
    Ok(cfg.out.is_some())
}

/// Opens the outbox the flags and the section name, writing what `opts` asks for.
pub async fn open(
    cfg: &NotifyConfig,
    postgres: Option<&str>,
    schema: Option<&str>,
    outbox_dir: Option<&Path>,
    state_dir: &Path,
    opts: OutboxOptions,
) -> anyhow::Result<Outbox> {
    if let Some(url) = postgres.or(cfg.postgres.as_deref()) {
        return Ok(Outbox::Postgres(
            PgOutbox::connect(url, schema, 16, opts)
                .await
                .context("cannot open the PostgreSQL outbox")?,
        ));
    }
    let dir = outbox_dir
        .map(Path::to_owned)
        .or_else(|| cfg.outbox.clone())
        .unwrap_or_else(|| state_dir.join("outbox"));
    Ok(Outbox::Embedded(EmbeddedOutbox::open(&dir, opts)?))
}

/// The senders `cfg` configures, by provider name: the generic HTTP ones (their token from
/// the variable `token_env` names) and the Genesys agentless ones (credentials from the
/// environment: `GENESYS_CLIENT_ID`, `GENESYS_CLIENT_SECRET`, `GENESYS_BASE_URL` or
/// `GENESYS_REGION`), and the CXone DFO ones (`CXONE_*` variables).
pub async fn build_senders(cfg: &NotifyConfig) -> anyhow::Result<Senders> {
    let timeout = cfg.relay.request_timeout();
    let mut out = Senders::new();
    for (name, p) in &cfg.providers {
        let sender: Arc<dyn NotificationSender> = match p {
            ProviderConfig::Http {
                url,
                token_env,
                dedupes_on_key,
            } => Arc::new(HttpProvider::configured(
                name,
                url,
                token_env.as_deref(),
                *dedupes_on_key,
                timeout,
            )?),
            ProviderConfig::GenesysAgentless { from } => {
                // `{:#}` prints "Genesys provider: <cause>"; the cause stays in the chain.
                Platform::genesys_from_env()
                    .context("Genesys provider")?
                    .for_relay(timeout)
                    .notification_sender(from)
                    .await
                    .context("Genesys provider")?
            }
            ProviderConfig::CxoneDfo { channels } => Platform::cxone_from_env()
                .context("CXone provider")?
                .for_relay(timeout)
                .notification_sender(channels)
                .await
                .context("CXone provider")?,
        };
        out.insert(name.clone(), sender);
    }
    Ok(out)
}

/// The notification flags of `dedupd serve`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeNotifyArgs {
    /// Serve `POST /v1/notifications` and run a relay in the same process (also on when the
    /// config has a `[notifications]` section, or with --postgres / --outbox).
    #[arg(long)]
    pub notifications: bool,
    /// PostgreSQL notification outbox (migrations run at start; other `dedupd relay`
    /// processes may share it).
    #[arg(long, env = "DEDUPD_POSTGRES_URL", hide_env_values = true)]
    pub postgres: Option<String>,
    /// Embedded notification outbox directory [default: .dedupd/outbox beside the config].
    #[arg(long, conflicts_with = "postgres")]
    pub outbox: Option<PathBuf>,
}

/// What `dedupd serve` adds for notifications.
pub struct ServeParts {
    /// The notification API (behind the same bearer / HMAC auth as the gateway, from
    /// `DEDUPD_API_TOKEN` / `DEDUPD_WEBHOOK_SECRET`); when notifications are off, the routes
    /// that say so.
    pub apis: Vec<utoipa_axum::router::OpenApiRouter>,
    /// Readiness of the relay's providers.
    pub health: dedupd_http::Health,
    /// Where the gateway hands its decisions when `[events.out] gateway_decisions` is on.
    pub decisions: Option<dedupd_broker::EventTap>,
}

/// What `dedupd serve` adds for notifications: the API, a relay task, the broker sources and
/// the events publisher. Only the "off" routes when notifications are not asked for.
pub async fn serve_parts(
    args: &ServeNotifyArgs,
    config: Option<&Path>,
) -> anyhow::Result<ServeParts> {
    let mut health = dedupd_http::Health::new();
    let has_section = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let doc: toml::Table = toml::from_str(&text)
                .with_context(|| format!("{} is not valid TOML", path.display()))?;
            doc.contains_key("notifications") || doc.contains_key("events")
        }
        None => false,
    };
    if !(args.notifications || has_section || args.postgres.is_some() || args.outbox.is_some()) {
        return Ok(ServeParts {
            apis: vec![notifications_off()],
            health,
            decisions: None,
        });
    }
    let cfg = match config {
        Some(path) => load_section(path)?,
        None => NotifyConfig::default(),
    };
    let (sources, events_out) = match config {
        Some(path) => load_events(path)?,
        None => (Vec::new(), None),
    };
    // The relay registers its series as it is built: the recorder must be there first.
    dedupd_http::metrics::install();
    dedupd_notify::telemetry::describe();
    let state_dir =
        config.map_or_else(|| PathBuf::from(super::STATE_DIR), super::default_state_dir);
    let outbox = open(
        &cfg,
        args.postgres.as_deref(),
        None,
        args.outbox.as_deref(),
        &state_dir,
        outbox_options(events_out.is_some()),
    )
    .await?;
    let providers = build_senders(&cfg).await?;
    let relay = Relay::new(outbox.clone(), providers, cfg.relay.clone(), Clock::System);
    // `degraded` while a provider is paused (no success for provider_pause_after_secs).
    health = health.with("notification_providers", Arc::new(relay.health()));
    tokio::spawn(relay.run(std::future::pending()));
    tracing::info!(backend = outbox.backend(), "Notifications enabled");

    let mut auth = dedupd_http::Auth::open(dedupd_notify::MAX_BODY_BYTES);
    for (var, bearer) in [("DEDUPD_API_TOKEN", true), ("DEDUPD_WEBHOOK_SECRET", false)] {
        if let Some(v) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
            let secret = secrecy::SecretString::from(v);
            auth = if bearer {
                auth.with_bearer(secret)
            } else {
                auth.with_hmac_secret(secret)
            };
        }
    }
    let api = dedupd_notify::NotifyApi::new(outbox, &cfg, Clock::System);
    // Broker sources: each event through the same accept path as `POST /v1/notifications`.
    for source in sources {
        tracing::info!(source = %source.name, "Events source configured");
        tokio::spawn(dedupd_broker::run_source(
            api.clone(),
            source,
            std::future::pending(),
        ));
    }
    // Events out: the status events the outbox writes with each change, and the gateway's
    // decisions when asked for.
    let mut decisions = None;
    if let Some(out) = events_out {
        let tap = out.gateway_decisions.map(|capacity| {
            let (tap, rx) = dedupd_broker::EventTap::new("gateway", capacity);
            decisions = Some(tap);
            rx
        });
        tokio::spawn(dedupd_broker::run_publisher(
            api.outbox().clone(),
            out,
            tap,
            std::future::pending(),
        ));
    }
    Ok(ServeParts {
        apis: vec![dedupd_http::guard(dedupd_notify::routes(api), auth)],
        health,
        decisions,
    })
}

/// What the notification routes answer when `serve` runs without notifications: a 404 in the
/// envelope that says they are off and how to turn them on (not "no such route"). Not in the
/// OpenAPI document: the running service does not serve them.
fn notifications_off() -> utoipa_axum::router::OpenApiRouter {
    async fn off() -> dedupd_http::ApiError {
        dedupd_http::ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "notifications_disabled",
            "notifications are off in this server: start `dedupd serve` with a config that has \
             a [notifications] section (--config FILE; see examples/serve.toml), or with \
             --notifications, --postgres URL or --outbox DIR",
        )
    }
    utoipa_axum::router::OpenApiRouter::new()
        .route("/v1/notifications", axum::routing::any(off))
        .route("/v1/notifications/{key}", axum::routing::any(off))
}
