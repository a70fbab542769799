//! `dedupd serve`: the HTTP services on one listener (today the message dedup gateway,
//! `POST /v1/messages`), with `/openapi.json`, `/metrics`, `/healthz`, `/readyz`, graceful
//! shutdown on SIGTERM or Ctrl-C, and the embedded window snapshotted on the way out.
//!
//! Flags win over the `[serve]` section of `--config`, which wins over the defaults. Secrets
//! come from the environment only: `DEDUPD_API_TOKEN` (bearer token for API callers),
//! `DEDUPD_WEBHOOK_SECRET` (HMAC key of `X-Hub-Signature-256`), `GENESYS_CLIENT_SECRET`.
//!
//! Other services join the same server through [`run_with`]: pass their
//! [`utoipa_axum::router::OpenApiRouter`] and [`Health`]; they get the same envelope, metrics,
//! OpenAPI document and shutdown.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use dedupd_gateway::{
    ContactIndex, DegradedPolicy, ForwardConfig, Forwarder, Gateway, GatewayConfig, NearConfig,
    ResolutionLookup,
};
use dedupd_http::{self as common, Auth, Health, ServiceOptions, shutdown_signal};
use dedupd_store::window::{
    EmbeddedWindow, MAX_WINDOW, RedisWindow, RedisWindowConfig, Window, WindowRules,
};
use serde::Deserialize;

pub use crate::shared::serve_section::ServeSection;
use utoipa_axum::router::OpenApiRouter;

use crate::shared::platform::{PlatformArgs, PlatformKind};

pub mod resolve;

/// Command-line flags of `dedupd serve`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free port (printed).
    #[arg(long)]
    pub listen: Option<String>,
    /// Contact index: NDJSON lines of customer_id, phone, email.
    #[arg(long)]
    pub contacts: Option<PathBuf>,
    /// Contact index from the ingest state directory instead of --contacts.
    #[arg(long, conflicts_with = "contacts")]
    pub state: Option<PathBuf>,
    /// Share the dedup window with other gateways through this Redis.
    #[arg(long, env = "DEDUPD_REDIS_URL")]
    pub redis: Option<String>,
    /// Key prefix of the window in Redis [default: dedupd:window:].
    #[arg(long)]
    pub redis_prefix: Option<String>,
    /// The dedup window in seconds [default: 300].
    #[arg(long)]
    pub window: Option<u64>,
    /// The window of one pair of channels, e.g. `sms/email=3600` or `chat/*=120` (repeatable;
    /// pairs are unordered, `*` is any channel).
    #[arg(long = "window-pair", value_name = "PAIR=SECONDS")]
    pub window_pairs: Vec<String>,
    /// Flag near-duplicates: a PROCESS whose text is very similar to a recent message of the
    /// same customer gets `near_duplicate_of`.
    #[arg(long)]
    pub near_duplicates: bool,
    /// Least similarity (0–1) that flags a near-duplicate [default: 0.6].
    #[arg(long)]
    pub near_threshold: Option<f64>,
    /// `genesys`: forward PROCESS messages to Genesys Cloud Open Messaging and record
    /// duplicates on the first conversation; `cxone`: to NICE CXone as BYOC inbound messages
    /// (credentials from CXONE_* variables), duplicates recorded on the first message's
    /// customer card.
    #[arg(long)]
    pub forward: Option<String>,
    /// A TOML file with a [serve] section (flags win).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// When the window backend is down: process (default, flagged degraded) or reject (503).
    #[arg(long)]
    pub degraded: Option<String>,
    /// Embedded window snapshot file [default: .dedupd/window.snapshot].
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
    /// Open Messaging integration id to forward to.
    #[arg(long, env = "GENESYS_INTEGRATION_ID")]
    pub integration_id: Option<String>,
    /// CXone: the DFO channel id of the BYOC channel to forward to.
    #[arg(long, env = "CXONE_CHANNEL_ID")]
    pub channel_id: Option<String>,
    /// API base URL (e.g. the emulator's http://127.0.0.1:8787); wins over --region.
    #[arg(long, env = "GENESYS_BASE_URL")]
    pub base_url: Option<String>,
    /// Genesys Cloud region (us-east-1, eu-west-1, …).
    #[arg(long, env = "GENESYS_REGION")]
    pub region: Option<String>,
    /// OAuth client id (client credentials grant).
    #[arg(long, env = "GENESYS_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Resolution index (built by `merge plan --resolve-index DIR`): serve
    /// `POST /v1/contacts/resolve` against it, and resolve the gateway's senders through it
    /// (instead of --contacts or --state).
    #[arg(long, value_name = "DIR", env = "DEDUPD_RESOLVE_INDEX")]
    pub resolve_index: Option<PathBuf>,
    /// Resolution index in PostgreSQL, shared by every `serve` given the same database (built
    /// by `merge plan --resolve-postgres`): at DEDUPD_POSTGRES_URL.
    #[arg(long, conflicts_with = "resolve_index")]
    pub resolve_postgres: bool,
    /// With --resolve-postgres: the schema its tables are in [default: the search path].
    #[arg(long, requires = "resolve_postgres", value_name = "NAME")]
    pub resolve_schema: Option<String>,
    /// Notifications (`POST /v1/notifications`, issue 7).
    #[command(flatten)]
    pub notify: crate::shared::notifications::ServeNotifyArgs,
}

/// Where the contact index comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ContactSource {
    /// NDJSON file.
    Ndjson(PathBuf),
    /// Ingest state directory.
    State(PathBuf),
    /// None: every address is its own customer.
    None,
}

/// Forwarding settings (the secret comes from the environment at start).
#[derive(Debug, Clone)]
pub struct ForwardOptions {
    /// Where messages go in (Genesys Cloud: the Open Messaging integration id).
    pub channel: String,
    /// The platform: where, who, budget (its endpoint and id checked when the options are
    /// resolved).
    pub platform: PlatformArgs,
}

/// Everything `serve` needs, resolved and validated.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Listen address.
    pub listen: String,
    /// Contact index source.
    pub contacts: ContactSource,
    /// Redis window, when shared.
    pub redis: Option<RedisWindowConfig>,
    /// Embedded window capacity.
    pub max_entries: usize,
    /// Embedded window snapshot file.
    pub snapshot: PathBuf,
    /// Between snapshots.
    pub snapshot_every: Duration,
    /// Gateway settings.
    pub gateway: GatewayConfig,
    /// Forwarding, when on.
    pub forward: Option<ForwardOptions>,
    /// Header-read timeout and connection cap of the listener.
    pub limits: dedupd_http::Limits,
}

#[derive(Deserialize)]
struct FileWithServe {
    #[serde(default)]
    serve: Option<ServeSection>,
    // Other sections belong to other commands (ingest's [key], [[source]], …).
    #[serde(flatten)]
    _rest: toml::Table,
}

/// Reads the `[serve]` section of a config file; errors name the key (`serve.window`).
pub fn load_section(path: &Path) -> anyhow::Result<ServeSection> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let file: FileWithServe = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "config file {}: {}",
            path.display(),
            e.to_string().trim_end()
        )
    })?;
    Ok(file.serve.unwrap_or_default())
}

fn relative_to(config: Option<&Path>, p: PathBuf) -> PathBuf {
    match config.and_then(Path::parent) {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p,
    }
}

/// Flags over the `[serve]` section over defaults, validated.
pub fn resolve(args: ServeArgs) -> anyhow::Result<ServeOptions> {
    let section = match &args.config {
        Some(path) => load_section(path)?,
        None => ServeSection::default(),
    };
    let cfg = args.config.as_deref();
    let contacts = match (args.contacts, args.state, section.contacts, section.state) {
        (Some(f), _, _, _) => ContactSource::Ndjson(f),
        (None, Some(d), _, _) => ContactSource::State(d),
        (None, None, Some(f), _) => ContactSource::Ndjson(relative_to(cfg, f)),
        (None, None, None, Some(d)) => ContactSource::State(relative_to(cfg, d)),
        (None, None, None, None) => ContactSource::None,
    };
    let window = args.window.or(section.window).unwrap_or(300);
    if window == 0 {
        bail!("serve.window: the window must be at least 1 second");
    }
    if window > MAX_WINDOW.as_secs() {
        bail!(
            "serve.window: {window} s is more than the longest window, 365 days ({} s)",
            MAX_WINDOW.as_secs()
        );
    }
    let mut windows = WindowRules::uniform(Duration::from_secs(window));
    for (pair, secs) in section.windows.iter().flatten() {
        windows = windows
            .with_pair(pair, Duration::from_secs(*secs))
            .map_err(|e| anyhow::anyhow!("serve.windows: {e}"))?;
    }
    for flag in &args.window_pairs {
        let (pair, secs) = flag
            .rsplit_once('=')
            .and_then(|(p, s)| Some((p, s.trim().parse::<u64>().ok()?)))
            .with_context(|| {
                format!("--window-pair {flag:?}: write PAIR=SECONDS, e.g. sms/email=3600")
            })?;
        windows = windows
            .with_pair(pair, Duration::from_secs(secs))
            .map_err(|e| anyhow::anyhow!("--window-pair: {e}"))?;
    }
    let near = match (
        args.near_duplicates || section.near_duplicates.unwrap_or(false),
        args.near_threshold.or(section.near_threshold),
    ) {
        (false, _) => None,
        (true, threshold) => {
            let mut near = NearConfig::default();
            if let Some(t) = threshold {
                if !(t > 0.0 && t <= 1.0) {
                    bail!("serve.near_threshold: {t} is not in (0, 1]");
                }
                near.threshold = t;
            }
            if let Some(keep) = section.near_keep {
                near.keep = keep.clamp(1, 1000);
            }
            Some(near)
        }
    };
    let mut gateway = GatewayConfig {
        windows,
        near,
        ..GatewayConfig::default()
    };
    if let Some(region) = &section.default_region {
        gateway.default_region = Some(
            region
                .parse()
                .map_err(|_| anyhow::anyhow!("serve.default_region: unknown region {region:?}"))?,
        );
    }
    if let Some(limit) = section.body_limit {
        if limit < 1024 {
            bail!("serve.body_limit: at least 1024 bytes");
        }
        gateway.body_limit = limit;
    }
    gateway.degraded_policy = match args.degraded.or(section.degraded).as_deref() {
        None | Some("process") => DegradedPolicy::Process,
        Some("reject") => DegradedPolicy::Reject,
        Some(other) => bail!("serve.degraded: {other:?} is not process or reject"),
    };
    let redis_url = args.redis.or(section.redis);
    let redis = redis_url.clone().map(|url| {
        let mut c = RedisWindowConfig::new(url);
        if let Some(prefix) = args.redis_prefix.clone().or(section.redis_prefix.clone()) {
            c.prefix = prefix;
        }
        c
    });
    let forward = match args.forward.or(section.forward).as_deref() {
        None | Some("none") => None,
        Some("genesys") => {
            let integration_id = args.integration_id.or(section.integration_id);
            let (base_url, region) = (
                args.base_url.or(section.base_url),
                args.region.or(section.region),
            );
            let client_id = args.client_id.or(section.client_id);
            // Everything missing is named at once.
            let missing: Vec<&str> = [
                (
                    integration_id.is_none(),
                    "--integration-id (or GENESYS_INTEGRATION_ID)",
                ),
                (
                    base_url.is_none() && region.is_none(),
                    "--base-url (or GENESYS_BASE_URL) or --region (or GENESYS_REGION)",
                ),
                (client_id.is_none(), "--client-id (or GENESYS_CLIENT_ID)"),
            ]
            .into_iter()
            .filter_map(|(gone, what)| gone.then_some(what))
            .collect();
            let Some(integration_id) = integration_id.filter(|_| missing.is_empty()) else {
                bail!("--forward genesys needs {}", missing.join("; "));
            };
            let platform = PlatformArgs {
                kind: PlatformKind::Genesys,
                base_url,
                region,
                client_id,
                rate: section.rate.unwrap_or(300),
                redis: redis_url,
                redis_key: None,
                give_up_after: None,
                skill_id: None,
                dnc_group_id: None,
            };
            platform.check_endpoint()?;
            Some(ForwardOptions {
                channel: integration_id,
                platform,
            })
        }
        Some("cxone") => {
            let channel = args
                .channel_id
                .or(section.channel_id)
                .context("--forward cxone needs --channel-id (or CXONE_CHANNEL_ID)")?;
            // Credentials come from the CXONE_* variables when the forwarder starts;
            // --base-url stands for a stand-in's issuer, API and DFO base.
            let platform = PlatformArgs {
                kind: PlatformKind::Cxone,
                base_url: args.base_url.or(section.base_url),
                region: None,
                client_id: None,
                rate: section.rate.unwrap_or(300),
                redis: redis_url,
                redis_key: None,
                give_up_after: None,
                skill_id: None,
                dnc_group_id: None,
            };
            platform.check_endpoint()?;
            Some(ForwardOptions { channel, platform })
        }
        Some(other) => bail!("serve.forward: {other:?} is not genesys or cxone"),
    };
    let mut limits = dedupd_http::Limits {
        overloaded: overloaded_answer,
        ..dedupd_http::Limits::default()
    };
    if let Some(secs) = section.header_timeout {
        if !(1..=3600).contains(&secs) {
            bail!("serve.header_timeout: {secs} s is not between 1 and 3600 seconds");
        }
        limits.header_timeout = Duration::from_secs(secs);
    }
    if let Some(max) = section.max_connections {
        if max == 0 {
            bail!("serve.max_connections: at least 1 connection");
        }
        limits.max_connections = max;
    }
    Ok(ServeOptions {
        limits,
        listen: args
            .listen
            .or(section.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned()),
        contacts,
        redis,
        max_entries: section.max_entries.unwrap_or(1_000_000).max(1),
        snapshot: args
            .snapshot
            .or_else(|| section.snapshot.map(|p| relative_to(cfg, p)))
            .unwrap_or_else(|| Path::new(crate::shared::STATE_DIR).join("window.snapshot")),
        snapshot_every: Duration::from_secs(section.snapshot_every.unwrap_or(30).max(1)),
        gateway,
        forward,
    })
}

/// What a connection past the cap gets for anything but `/healthz` and `/readyz`.
fn overloaded_answer() -> axum::response::Response {
    use axum::response::IntoResponse;
    common::ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "too many open connections; retry later",
    )
    .with_retry_after(1)
    .into_response()
}

fn secret_from_env(name: &str) -> Option<secrecy::SecretString> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(secrecy::SecretString::from)
}

fn load_contacts(opts: &ServeOptions) -> anyhow::Result<ContactIndex> {
    let region = opts.gateway.default_region;
    let (index, report) = match &opts.contacts {
        ContactSource::Ndjson(path) => ContactIndex::load_ndjson(path, region)?,
        ContactSource::State(dir) => {
            let store = dedupd_store::EmbeddedStore::open(dir)?;
            ContactIndex::from_state(&store, region)?
        }
        ContactSource::None => {
            tracing::warn!(
                "No contact index (--contacts or --state): every address is its own customer."
            );
            return Ok(ContactIndex::new());
        }
    };
    tracing::info!(
        records = report.records,
        addresses = report.addresses,
        ambiguous = report.ambiguous,
        invalid = report.invalid_values,
        "Loaded the contact index."
    );
    Ok(index)
}

/// Runs `dedupd serve` until SIGTERM or Ctrl-C.
pub async fn run(opts: ServeOptions) -> anyhow::Result<()> {
    run_with(opts, Vec::new(), Health::new(), None, None).await
}

/// Runs the gateway plus `extra` APIs (each already carrying its own auth and state) on one
/// listener until SIGTERM or Ctrl-C; `extra_health` joins `/readyz`; every decision goes to
/// `decisions` when given (published by the events publisher). With `resolution`, the gateway
/// resolves its senders through the resolution index instead of the contact index.
pub async fn run_with(
    opts: ServeOptions,
    extra: Vec<OpenApiRouter>,
    extra_health: Health,
    decisions: Option<dedupd_broker::EventTap>,
    resolution: Option<ResolutionLookup>,
) -> anyhow::Result<()> {
    let lookup = match resolution {
        Some(lookup) => {
            if opts.contacts != ContactSource::None {
                bail!(
                    "the gateway takes its customers from the resolution index \
                     (--resolve-index or --resolve-postgres) or from --contacts/--state, not both"
                );
            }
            tracing::info!("The gateway resolves senders through the resolution index.");
            Lookup::Resolution(lookup)
        }
        None => Lookup::Contacts(load_contacts(&opts)?),
    };
    let metrics = common::metrics::install();
    // Every series from the start, described, not only after the first message.
    common::server::describe();
    dedupd_gateway::telemetry::describe();
    let _upkeep = common::metrics::spawn_upkeep(metrics.clone(), Duration::from_secs(5));

    let (window, embedded) = match &opts.redis {
        Some(config) => (Window::Redis(RedisWindow::new(config)?), None),
        None => {
            let w = EmbeddedWindow::load(&opts.snapshot, opts.max_entries, Utc::now())
                .with_context(|| {
                    format!("loading the window snapshot {}", opts.snapshot.display())
                })?;
            tracing::info!(entries = w.len(), "Loaded the embedded dedup window.");
            let w = Arc::new(w);
            (Window::Embedded(w.clone()), Some(w))
        }
    };

    let (forwarder, forward_worker) = match &opts.forward {
        Some(f) => {
            // The forwarder runs for the life of the server: it never gives up on the platform.
            let ingress = f
                .platform
                .platform(false, 0)?
                .message_ingress(&f.channel)
                .await
                .context("connecting to the platform to forward to")?;
            let (fw, worker) = Forwarder::start(ingress, window.clone(), ForwardConfig::default());
            (Some(fw), Some(worker))
        }
        None => (None, None),
    };

    let mut auth = Auth::open(opts.gateway.body_limit);
    if let Some(token) = secret_from_env("DEDUPD_API_TOKEN") {
        auth = auth.with_bearer(token);
    }
    if let Some(secret) = secret_from_env("DEDUPD_WEBHOOK_SECRET") {
        auth = auth.with_hmac_secret(secret);
    }
    if auth.is_open() {
        tracing::warn!(
            "Neither DEDUPD_API_TOKEN nor DEDUPD_WEBHOOK_SECRET is set: the API is open."
        );
    }
    let gateway = match lookup {
        Lookup::Contacts(c) => Gateway::new(opts.gateway.clone(), c, window, forwarder),
        Lookup::Resolution(r) => Gateway::new(opts.gateway.clone(), r, window, forwarder),
    };
    gateway.register_metrics();
    if let Some(tap) = decisions {
        gateway.observe_decisions(Arc::new(move |e: &dedupd_gateway::DecisionEvent| {
            // A full queue drops the event and counts it (best effort, never blocking).
            if let Ok(body) = serde_json::to_vec(e) {
                tap.offer(dedupd_broker::Outgoing {
                    id: e.id.clone(),
                    routing_key: e.routing_key().to_owned(),
                    body,
                });
            }
        }));
        tracing::info!("The gateway's decisions are published to [events.out] (best effort).");
    }
    if opts.redis.is_some() {
        // Say at once when the shared window is unusable; a refused password is logged as an
        // error by the check itself.
        use common::ReadyCheck;
        match gateway.check().await {
            common::Readiness::Ready => tracing::info!("The Redis dedup window answers."),
            _ => tracing::warn!(
                "The Redis dedup window does not answer yet; deciding by the degraded policy \
                 until it does."
            ),
        }
    }
    let mut apis = vec![gateway.api(auth)];
    apis.extend(extra);
    let app = common::compose(
        apis,
        gateway.health().merge(extra_health),
        metrics,
        &ServiceOptions::default(),
    );

    let listener = tokio::net::TcpListener::bind(&opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    let addr = listener.local_addr()?;
    println!("dedupd serve listening on http://{addr}");

    // Background: gauges and periodic snapshots of the embedded window.
    let housekeeping = {
        let gateway = gateway.clone();
        let embedded = embedded.clone();
        let path = opts.snapshot.clone();
        let every = opts.snapshot_every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                gateway.publish_window_gauges(Utc::now());
                if let Some(w) = &embedded {
                    snapshot(w.clone(), path.clone()).await;
                }
            }
        })
    };

    dedupd_http::serve(listener, app, opts.limits.clone(), shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    housekeeping.abort();
    tracing::info!("Shutting down: draining the forwarder and saving the window.");
    drop(gateway);
    if let Some(worker) = forward_worker
        && tokio::time::timeout(Duration::from_secs(10), worker)
            .await
            .is_err()
    {
        tracing::warn!("The forwarder did not drain within 10 s; some forwards were abandoned.");
    }
    if let Some(w) = embedded {
        snapshot(w, opts.snapshot.clone()).await;
    }
    Ok(())
}

/// Where the gateway's customers come from.
enum Lookup {
    Contacts(ContactIndex),
    Resolution(ResolutionLookup),
}

async fn snapshot(window: Arc<EmbeddedWindow>, path: PathBuf) {
    let result = tokio::task::spawn_blocking(move || window.snapshot(&path, Utc::now())).await;
    match result {
        Ok(Ok(n)) => tracing::debug!(entries = n, "Saved the window snapshot."),
        Ok(Err(e)) => tracing::error!(error = %e, "Could not save the window snapshot."),
        Err(e) => tracing::error!(error = %e, "The snapshot task failed."),
    }
}

/// Runs `dedupd serve` until SIGTERM or Ctrl-C.
pub fn main(args: ServeArgs) -> anyhow::Result<std::process::ExitCode> {
    let (notify, notify_config) = (args.notify.clone(), args.config.clone());
    let resolve_index = args.resolve_index.clone();
    let resolve_postgres = args
        .resolve_postgres
        .then(|| {
            crate::shared::postgres_url().context("--resolve-postgres needs DEDUPD_POSTGRES_URL")
        })
        .transpose()?
        .map(|url| (url, args.resolve_schema.clone()));
    let opts = resolve(args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let parts =
            crate::shared::notifications::serve_parts(&notify, notify_config.as_deref()).await?;
        let (mut extra, health) = (parts.apis, parts.health);
        let api = match (&resolve_index, &resolve_postgres) {
            (Some(dir), _) => Some(self::resolve::open(dir).await?),
            (None, Some((url, schema))) => {
                Some(self::resolve::open_postgres(url, schema.as_deref()).await?)
            }
            (None, None) => None,
        };
        let lookup = api
            .as_ref()
            .map(|api| ResolutionLookup::new(api.resolver()));
        if let Some(api) = api {
            let mut auth = Auth::open(self::resolve::MAX_BODY_BYTES);
            if let Some(token) = secret_from_env("DEDUPD_API_TOKEN") {
                auth = auth.with_bearer(token);
            }
            if let Some(secret) = secret_from_env("DEDUPD_WEBHOOK_SECRET") {
                auth = auth.with_hmac_secret(secret);
            }
            extra.push(dedupd_http::auth::guard(self::resolve::routes(api), auth));
        }
        run_with(opts, extra, health, parts.decisions, lookup).await
    })?;
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_section_and_paths_follow_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.toml");
        std::fs::write(
            &path,
            "[key]\nfields = [\"customer_id\"]\n\n[serve]\nlisten = \"127.0.0.1:9999\"\nwindow = 600\ncontacts = \"contacts.ndjson\"\ndegraded = \"reject\"\n",
        )
        .unwrap();
        let opts = resolve(ServeArgs {
            config: Some(path.clone()),
            window: Some(120),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(opts.listen, "127.0.0.1:9999");
        assert_eq!(
            opts.gateway.windows,
            WindowRules::uniform(Duration::from_secs(120))
        );
        assert_eq!(
            opts.contacts,
            ContactSource::Ndjson(dir.path().join("contacts.ndjson"))
        );
        assert_eq!(opts.gateway.degraded_policy, DegradedPolicy::Reject);
        assert!(opts.redis.is_none());
    }

    #[test]
    fn header_timeout_and_connection_cap_from_the_section() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.toml");
        let defaults = resolve(ServeArgs::default()).unwrap().limits;
        assert_eq!(defaults.header_timeout, Duration::from_secs(10));
        assert_eq!(defaults.max_connections, 1024);
        std::fs::write(&path, "[serve]\nheader_timeout = 3\nmax_connections = 16\n").unwrap();
        let limits = resolve(ServeArgs {
            config: Some(path.clone()),
            ..ServeArgs::default()
        })
        .unwrap()
        .limits;
        assert_eq!(limits.header_timeout, Duration::from_secs(3));
        assert_eq!(limits.max_connections, 16);
        for (text, key) in [
            ("[serve]\nheader_timeout = 0\n", "serve.header_timeout"),
            ("[serve]\nmax_connections = 0\n", "serve.max_connections"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = resolve(ServeArgs {
                config: Some(path.clone()),
                ..ServeArgs::default()
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.toml");
        std::fs::write(&path, "[serve]\nwindoww = 3\n").unwrap();
        let err = resolve(ServeArgs {
            config: Some(path.clone()),
            ..ServeArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("windoww"), "{err}");
        let err = resolve(ServeArgs {
            degraded: Some("maybe".into()),
            ..ServeArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("serve.degraded"), "{err}");
        let err = resolve(ServeArgs {
            forward: Some("genesys".into()),
            ..ServeArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("integration"), "{err}");
    }

    #[test]
    fn channel_pair_windows_and_near_duplicates_from_section_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.toml");
        std::fs::write(
            &path,
            "[serve]\nwindow = 300\nnear_duplicates = true\nnear_threshold = 0.9\n\n[serve.windows]\n\"sms/sms\" = 60\n\"sms/email\" = 3600\n",
        )
        .unwrap();
        let opts = resolve(ServeArgs {
            config: Some(path.clone()),
            window_pairs: vec!["email/sms=7200".into(), "chat/*=120".into()],
            ..ServeArgs::default()
        })
        .unwrap();
        let w = &opts.gateway.windows;
        assert_eq!(w.between("sms", "sms"), Duration::from_secs(60));
        assert_eq!(
            w.between("sms", "email"),
            Duration::from_secs(7200),
            "the flag wins"
        );
        assert_eq!(w.between("chat", "webform"), Duration::from_secs(120));
        assert_eq!(w.between("webform", "fax"), Duration::from_secs(300));
        let near = opts.gateway.near.expect("near-duplicates on");
        assert!((near.threshold - 0.9).abs() < 1e-12);
        assert!(
            resolve(ServeArgs::default())
                .unwrap()
                .gateway
                .near
                .is_none(),
            "off by default"
        );
        for (flag, needle) in [
            ("sms-email=60", "--window-pair"),
            ("sms/email=soon", "PAIR=SECONDS"),
            ("sms/email=0", "at least 1 second"),
            ("sms/email=18446744073709551615", "at most 365 days"),
        ] {
            let err = resolve(ServeArgs {
                window_pairs: vec![flag.into()],
                ..ServeArgs::default()
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains(needle), "{flag}: {err}");
        }
        let err = resolve(ServeArgs {
            window: Some(u64::MAX),
            ..ServeArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("serve.window"), "{err}");
        let err = resolve(ServeArgs {
            near_duplicates: true,
            near_threshold: Some(1.5),
            ..ServeArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("near_threshold"), "{err}");
    }
}
