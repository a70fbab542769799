//! `dedupd relay` (the notification relay without the HTTP server, for scale-out) and
//! `dedupd bench notify` (accepted notifications per second per backend, and the cost of the
//! idempotency check next to a plain insert).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use dedupd_core::notification::{Channel, NotificationRequest, content_guard_key, fingerprint};
use dedupd_notify::{
    Clock, HttpProvider, NotificationSender, NotifyConfig, ProviderConfig, Relay, Senders,
};
use dedupd_store::outbox::{
    AcceptOptions, EmbeddedOutbox, GuardMode, NewNotification, Outbox, PgOutbox,
};

/// `dedupd relay`.
#[derive(Debug, clap::Args)]
pub struct RelayArgs {
    /// A TOML file with a `[notifications]` section (other sections are ignored).
    #[arg(long, short)]
    pub config: PathBuf,
    /// PostgreSQL outbox URL (several relays share it); overrides `notifications.postgres`.
    #[arg(long, env = "DEDUPD_POSTGRES_URL", hide_env_values = true)]
    pub postgres: Option<String>,
    /// Pin the PostgreSQL connections to this schema (`search_path`).
    #[arg(long, requires = "postgres")]
    pub postgres_schema: Option<String>,
    /// Embedded outbox directory; overrides `notifications.outbox`.
    #[arg(long, conflicts_with = "postgres")]
    pub outbox: Option<PathBuf>,
}

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

/// Opens the outbox the flags and the section name.
pub async fn open(
    cfg: &NotifyConfig,
    postgres: Option<&str>,
    schema: Option<&str>,
    outbox_dir: Option<&Path>,
    state_dir: &Path,
) -> anyhow::Result<Outbox> {
    if let Some(url) = postgres.or(cfg.postgres.as_deref()) {
        return Ok(Outbox::Postgres(
            PgOutbox::connect(url, schema, 16)
                .await
                .context("cannot open the PostgreSQL outbox")?,
        ));
    }
    let dir = outbox_dir
        .map(Path::to_owned)
        .or_else(|| cfg.outbox.clone())
        .unwrap_or_else(|| state_dir.join("outbox"));
    Ok(Outbox::Embedded(EmbeddedOutbox::open(&dir)?))
}

/// The senders `cfg` configures, by provider name: the generic HTTP ones (their token from
/// the variable `token_env` names) and the Genesys agentless ones (credentials from the
/// environment: `GENESYS_CLIENT_ID`, `GENESYS_CLIENT_SECRET`, `GENESYS_BASE_URL` or
/// `GENESYS_REGION`).
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
                let mut client_cfg =
                    dedupd_genesys::ClientConfig::from_env().context("Genesys provider")?;
                client_cfg.request_timeout = timeout;
                client_cfg.retry = relay_retry_policy();
                let client = dedupd_genesys::GenesysClient::new(client_cfg)
                    .await
                    .context("Genesys provider")?;
                Arc::new(dedupd_genesys::seams::notify::AgentlessSender::new(
                    client,
                    from.clone(),
                ))
            }
        };
        out.insert(name.clone(), sender);
    }
    Ok(out)
}

/// The Genesys client's own retries inside one relay attempt: a few quick ones (429 with
/// `Retry-After`, 5xx on reads); the relay's backoff does the rest.
fn relay_retry_policy() -> dedupd_genesys::RetryPolicy {
    dedupd_genesys::RetryPolicy {
        base_delay: std::time::Duration::from_millis(200),
        max_delay: std::time::Duration::from_secs(5),
        max_total: std::time::Duration::from_secs(15),
        max_attempts: 3,
    }
}

/// Runs the relay until Ctrl-C / SIGTERM.
pub async fn relay(args: RelayArgs) -> anyhow::Result<()> {
    let cfg = load_section(&args.config)?;
    let state_dir = args
        .config
        .parent()
        .map_or_else(|| PathBuf::from(".dedupd"), |p| p.join(".dedupd"));
    let outbox = open(
        &cfg,
        args.postgres.as_deref(),
        args.postgres_schema.as_deref(),
        args.outbox.as_deref(),
        &state_dir,
    )
    .await?;
    let providers = build_senders(&cfg).await?;
    tracing::info!(
        backend = outbox.backend(),
        providers = providers.len(),
        "Relay started"
    );
    let relay = Relay::new(outbox, providers, cfg.relay.clone(), Clock::System);
    relay.run(shutdown()).await;
    tracing::info!("Relay stopped");
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn sample(i: u64, run: &str) -> NewNotification {
    let req = NotificationRequest {
        channel: Channel::Sms,
        to: format!("+1415555{:04}", i % 10_000),
        text: format!("Your order {i} has shipped"),
        template: None,
        customer_id: Some(format!("C-{i}")),
        event_type: Some("order_shipped".into()),
        provider: None,
        not_after: None,
    };
    let body = serde_json::json!({
        "channel": "sms", "to": req.to, "text": req.text, "customer_id": req.customer_id,
        "event_type": req.event_type,
    });
    NewNotification {
        key: format!("{run}-{i}"),
        id: format!("ntf_{run}_{i}"),
        fingerprint: fingerprint(&body),
        request: serde_json::to_value(&req).unwrap_or_default(),
        channel: "sms".into(),
        provider: "bench".into(),
        guard_key: Some(content_guard_key(
            req.guard_customer(),
            req.channel,
            &req.text,
        )),
        not_after: None,
    }
}

/// What a benchmark round does per notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A plain insert: no key lookup, no fingerprint comparison, no content guard.
    Plain,
    /// The idempotent accept (key lookup + fingerprint), content guard off.
    Idempotent,
    /// The idempotent accept with the content guard reporting (the default configuration).
    Guarded,
}

/// Accepts `n` notifications with `concurrency` tasks in `mode`; returns notifications/s.
async fn load(
    outbox: &Outbox,
    n: u64,
    concurrency: u64,
    mode: Mode,
    run: &str,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let opts = AcceptOptions {
        guard: if mode == Mode::Guarded {
            GuardMode::Report
        } else {
            GuardMode::Off
        },
        ..AcceptOptions::default()
    };
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let outbox = outbox.clone();
        let next = Arc::clone(&next);
        let run = run.to_owned();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), dedupd_store::StoreError>(());
                }
                let mut new = sample(i, &run);
                match mode {
                    Mode::Plain => outbox.insert_plain(new, Utc::now()).await?,
                    Mode::Idempotent | Mode::Guarded => {
                        if mode == Mode::Idempotent {
                            new.guard_key = None;
                        }
                        outbox.accept(new, opts, Utc::now()).await?;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// `dedupd bench notify`: for each backend, `rounds` rounds, each of `n` plain inserts, `n`
/// idempotent accepts and `n` idempotent accepts with the content guard (fresh keys each);
/// prints every round and the best rate of each with the overheads against the plain insert.
pub fn bench(
    n: u64,
    concurrency: u64,
    rounds: u32,
    postgres: Option<String>,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let dir = tempfile::tempdir()?;
        let mut backends = vec![(
            "embedded",
            Outbox::Embedded(EmbeddedOutbox::open(dir.path())?),
            None,
        )];
        if let Some(url) = postgres {
            let schema = format!("bench_notify_{:08x}", fastrand::u32(..));
            let pg = PgOutbox::connect_new_schema(&url, &schema, 32)
                .await
                .context("cannot reach PostgreSQL for the benchmark")?;
            backends.push(("postgres", Outbox::Postgres(pg.clone()), Some(pg)));
        }
        println!("notifications per round and mode: {n}, concurrency: {concurrency}, rounds: {rounds}");
        for (name, outbox, pg) in backends {
            let mut best = [0f64; 3];
            for r in 0..rounds {
                let p = load(&outbox, n, concurrency, Mode::Plain, &format!("p{r}")).await?;
                let i = load(&outbox, n, concurrency, Mode::Idempotent, &format!("i{r}")).await?;
                let g = load(&outbox, n, concurrency, Mode::Guarded, &format!("g{r}")).await?;
                println!(
                    "  {name} round {r}: plain insert {p:>8.0}/s  idempotent accept {i:>8.0}/s  + content guard {g:>8.0}/s"
                );
                for (b, v) in best.iter_mut().zip([p, i, g]) {
                    *b = b.max(v);
                }
            }
            let [p, i, g] = best;
            println!(
                "{name}: plain insert {p:.0}/s; idempotent accept {i:.0}/s (overhead {:.1} %); with the content guard {g:.0}/s (overhead {:.1} %)",
                (p / i - 1.0) * 100.0,
                (p / g - 1.0) * 100.0
            );
            if let Some(pg) = pg {
                pg.drop_schema().await?;
            }
        }
        Ok(())
    })
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

/// What `dedupd serve` adds for notifications: the API (behind the same bearer / HMAC auth as
/// the gateway, from `DEDUPD_API_TOKEN` / `DEDUPD_WEBHOOK_SECRET`) and a relay task. Empty when
/// notifications are not asked for.
pub async fn serve_parts(
    args: &ServeNotifyArgs,
    config: Option<&Path>,
) -> anyhow::Result<(
    Vec<utoipa_axum::router::OpenApiRouter>,
    dedupd_gateway::common::Health,
)> {
    let mut health = dedupd_gateway::common::Health::new();
    let has_section = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let doc: toml::Table = toml::from_str(&text)
                .with_context(|| format!("{} is not valid TOML", path.display()))?;
            doc.contains_key("notifications")
        }
        None => false,
    };
    if !(args.notifications || has_section || args.postgres.is_some() || args.outbox.is_some()) {
        return Ok((Vec::new(), health));
    }
    let cfg = match config {
        Some(path) => load_section(path)?,
        None => NotifyConfig::default(),
    };
    let state_dir = config
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from(".dedupd"), |p| p.join(".dedupd"));
    let outbox = open(
        &cfg,
        args.postgres.as_deref(),
        None,
        args.outbox.as_deref(),
        &state_dir,
    )
    .await?;
    let providers = build_senders(&cfg).await?;
    let relay = Relay::new(outbox.clone(), providers, cfg.relay.clone(), Clock::System);
    // `degraded` while a provider is paused (no success for provider_pause_after_secs).
    health = health.with("notification_providers", Arc::new(relay.health()));
    tokio::spawn(relay.run(std::future::pending()));
    tracing::info!(backend = outbox.backend(), "Notifications enabled");

    let mut auth = dedupd_gateway::common::Auth::open(dedupd_notify::MAX_BODY_BYTES);
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
    let router = dedupd_notify::router(api).route_layer(axum::middleware::from_fn_with_state(
        Arc::new(auth),
        dedupd_gateway::common::require_auth,
    ));
    Ok((vec![router.into()], health))
}
