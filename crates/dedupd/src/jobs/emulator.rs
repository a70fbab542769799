//! `dedupd emulator`: a platform emulator alone, on a fixed port, until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Which platform to emulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EmulatedPlatform {
    /// Genesys Cloud: `POST /oauth/token` and the `/api/v2` paths dedupd uses.
    Genesys,
    /// NICE CXone: the issuer (`/.well-known/…`, `/auth/token`), DFO (`/dfo/3.0/…`) and the
    /// Admin lists and DNC paths (`/inContactAPI/services/vNN.0/…`), all on one port.
    Cxone,
}

/// Flags of `dedupd emulator`.
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// The platform to emulate.
    #[arg(long, value_enum, default_value_t = EmulatedPlatform::Genesys)]
    pub platform: EmulatedPlatform,
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
    /// CXone only: the access key id the password grant accepts (its `username`).
    #[arg(
        long,
        env = "DEDUPD_EMULATOR_ACCESS_KEY_ID",
        default_value = "dedupd-demo-key"
    )]
    pub access_key_id: String,
    /// CXone only: the access key secret (the password grant's `password`; never printed).
    #[arg(
        long,
        env = "DEDUPD_EMULATOR_ACCESS_KEY_SECRET",
        default_value = "dedupd-demo-key-secret",
        hide_default_value = true,
        hide_env_values = true
    )]
    pub access_key_secret: String,
    /// Genesys only: load External Contacts from a contact export (the CSV or NDJSON
    /// `merge plan --input` reads, default layout), each with its `record_id` as the External
    /// Contact id, so that a plan made from the same file can be applied to this emulator.
    #[arg(long, value_name = "FILE")]
    pub seed_external_contacts: Option<PathBuf>,
}

/// Runs the emulator until Ctrl-C.
pub fn main(args: EmulatorArgs) -> anyhow::Result<ExitCode> {
    let faults = match &args.faults {
        Some(path) => Some(dedupd_emulator::FaultProfile::from_file(path)?),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], args.port));
        let started = || format!("cannot start the emulator on {addr}");
        let rate = args.rate_limit;
        match args.platform {
            EmulatedPlatform::Genesys => {
                let cfg = dedupd_emulator::EmulatorConfig {
                    rate_limit_per_minute: rate,
                    clients: vec![(args.client_id.clone(), args.client_secret)],
                    faults: faults.unwrap_or_default(),
                    ..Default::default()
                };
                let emu = dedupd_emulator::RunningEmulator::start_on(cfg, addr)
                    .await
                    .with_context(started)?;
                if let Some(path) = &args.seed_external_contacts {
                    let (body, rejects) = crate::shared::emulator_seed::external_contacts(path)?;
                    let seeded = emu.state().seed(&body).map_err(|e| {
                        anyhow::anyhow!("cannot seed the External Contacts of {}: {e}", path.display())
                    })?;
                    eprintln!(
                        "Seeded {} External Contacts from {} ({rejects} rows or values refused, as merge plan refuses them).",
                        seeded["externalContacts"].as_array().map_or(0, Vec::len),
                        path.display()
                    );
                }
                eprintln!(
                    "Genesys Cloud emulator on {} (client id `{}`, {rate} requests/min per token). Ctrl-C stops it.",
                    emu.base_url(),
                    args.client_id
                );
                tokio::signal::ctrl_c().await?;
                emu.shutdown().await;
            }
            EmulatedPlatform::Cxone => {
                use dedupd_emulator::cxone::{CxoneEmulatorConfig, RunningCxoneEmulator};
                if args.seed_external_contacts.is_some() {
                    anyhow::bail!("--seed-external-contacts seeds Genesys Cloud External Contacts: use it with --platform genesys");
                }
                let cfg = CxoneEmulatorConfig {
                    rate_limit_per_minute: rate,
                    clients: vec![(args.client_id.clone(), args.client_secret)],
                    access_keys: vec![(args.access_key_id.clone(), args.access_key_secret)],
                    faults: faults.unwrap_or_default(),
                    ..Default::default()
                };
                let emu = RunningCxoneEmulator::start_on(cfg, addr)
                    .await
                    .with_context(started)?;
                let tenant = emu.state().tenant();
                eprintln!(
                    "NICE CXone emulator on {} (issuer, API and DFO base; tenant `{}`; client id `{}`, access key id `{}`; {rate} requests/min per token). Ctrl-C stops it.",
                    emu.base_url(),
                    tenant.tenant_id,
                    args.client_id,
                    args.access_key_id
                );
                tokio::signal::ctrl_c().await?;
                emu.shutdown().await;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
