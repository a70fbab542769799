//! `dedupd emulator`: the platform emulator alone, on a fixed port, until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Flags of `dedupd emulator`.
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// Fault profile (TOML): 429 bursts, 5xx, slow responses, 504-but-applied, token expiry, …
    #[arg(long)]
    pub faults: Option<PathBuf>,
    /// Requests per minute per token.
    #[arg(long, default_value_t = 300)]
    pub rate_limit: u32,
    /// OAuth client id the emulator accepts.
    #[arg(long, env = "DEDUPD_EMULATOR_CLIENT_ID", default_value = "dedupd-demo")]
    pub client_id: String,
    /// OAuth client secret the emulator accepts (never printed).
    #[arg(
        long,
        env = "DEDUPD_EMULATOR_CLIENT_SECRET",
        default_value = "dedupd-demo-secret",
        hide_default_value = true,
        hide_env_values = true
    )]
    pub client_secret: String,
}

/// Runs the emulator until Ctrl-C.
pub fn main(args: EmulatorArgs) -> anyhow::Result<ExitCode> {
    let EmulatorArgs {
        port,
        faults,
        rate_limit,
        client_id,
        client_secret,
    } = args;

    let mut cfg = dedupd_emulator::EmulatorConfig {
        rate_limit_per_minute: rate_limit,
        clients: vec![(client_id.clone(), client_secret)],
        ..Default::default()
    };
    if let Some(path) = &faults {
        cfg.faults = dedupd_emulator::FaultProfile::from_file(path)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let emu = dedupd_emulator::RunningEmulator::start_on(cfg, addr)
            .await
            .with_context(|| format!("cannot start the emulator on {addr}"))?;
        eprintln!(
            "Genesys Cloud emulator on {} (client id `{client_id}`, {rate_limit} requests/min per token). Ctrl-C stops it.",
            emu.base_url()
        );
        tokio::signal::ctrl_c().await?;
        emu.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
