//! `dedupd relay`: the notification relay without the HTTP server, for scale-out.

use std::path::PathBuf;

use dedupd_notify::{Clock, Relay};
use dedupd_store::StoreError;
use dedupd_store::outbox::OutboxStore;

use crate::shared::notifications::{
    build_senders, has_events_out, load_section, open, outbox_options,
};

/// `dedupd relay`.
#[derive(Debug, clap::Args)]
pub struct RelayArgs {
    /// A TOML file with a `[notifications]` section; its `[events.out]`, when present, makes
    /// the relay write status events with each outcome (the sources of `[events]` are
    /// consumed by `dedupd serve`, not here).
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

/// Runs the relay until Ctrl-C / SIGTERM.
pub async fn relay(args: RelayArgs) -> anyhow::Result<()> {
    let cfg = load_section(&args.config)?;
    // Status events are written by whichever process records the change: the relay too.
    let events_out = has_events_out(&args.config)?;
    let state_dir = crate::shared::default_state_dir(&args.config);
    let outbox = match open(
        &cfg,
        args.postgres.as_deref(),
        args.postgres_schema.as_deref(),
        args.outbox.as_deref(),
        &state_dir,
        outbox_options(events_out),
    )
    .await
    {
        Ok(outbox) => outbox,
        Err(e) => return Err(explain_locked(e)),
    };
    let providers = build_senders(&cfg).await?;
    tracing::info!(
        backend = outbox.backend(),
        providers = providers.len(),
        "Relay started"
    );
    let relay = Relay::new(outbox, providers, cfg.relay.clone(), Clock::System);
    relay.run(dedupd_http::shutdown_signal()).await;
    tracing::info!("Relay stopped");
    Ok(())
}

/// The embedded outbox allows one process: when another holds it (a running `dedupd serve`
/// delivers it with its own relay), say that separate relays need PostgreSQL and how to set it,
/// instead of the store's lock error.
fn explain_locked(e: anyhow::Error) -> anyhow::Error {
    match e.downcast_ref::<StoreError>() {
        Some(locked @ StoreError::Open { path, .. }) if locked.is_locked() => {
            anyhow::anyhow!(
                "the embedded notification outbox {path} is in use by another process (a running \
                 `dedupd serve` delivers it with its own relay). A separate `dedupd relay` needs \
                 the PostgreSQL outbox: set `postgres = \"postgres://…\"` in [notifications] (or \
                 pass --postgres URL, or set DEDUPD_POSTGRES_URL) for `dedupd serve` and every \
                 `dedupd relay`"
            )
        }
        _ => e,
    }
}

/// Runs `dedupd relay` until SIGTERM or Ctrl-C.
pub fn main(args: RelayArgs) -> anyhow::Result<std::process::ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(relay(args))?;
    Ok(std::process::ExitCode::SUCCESS)
}
