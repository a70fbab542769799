//! The emulator and a client configured for it.

use std::time::Duration;

use dedupd_cxone::{CxoneClient, CxoneConfig, RetryPolicy};
pub(crate) use dedupd_emulator::FaultKind;
use dedupd_emulator::cxone::{CxoneEmulatorConfig, CxoneSeed, RunningCxoneEmulator};
use dedupd_emulator::{FaultProfile, FaultRule};
use serde_json::json;

pub(crate) const CLIENT_ID: &str = "dedupd-demo";
pub(crate) const CLIENT_SECRET: &str = "dedupd-demo-secret";
pub(crate) const KEY_ID: &str = "dedupd-demo-key";
pub(crate) const KEY_SECRET: &str = "dedupd-demo-key-secret";
pub(crate) const TENANT: &str = "11eb0c8f-0000-4000-8000-00000000e0e1";
pub(crate) const CHANNEL: &str = "chat_dedupd_sms";

/// Backoffs of milliseconds: retried tests do not wait.
pub(crate) fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_total: Duration::from_secs(10),
        max_attempts: 6,
    }
}

pub(crate) async fn emulator(cfg: CxoneEmulatorConfig) -> RunningCxoneEmulator {
    let emu = RunningCxoneEmulator::start(cfg).await.unwrap();
    emu.state()
        .seed(&CxoneSeed {
            channels: vec![json!({
                "id": CHANNEL,
                "idOnExternalPlatform": "+13175550100",
                "channelIntegrationId": "byoc-1",
                "realExternalPlatformId": "custom",
                "name": "dedupd SMS",
                "hasOutboundFlow": true,
                "isPrivate": false,
                "hasTreeStructure": false,
            })],
            ..CxoneSeed::default()
        })
        .unwrap();
    emu
}

pub(crate) async fn default_emulator() -> RunningCxoneEmulator {
    emulator(CxoneEmulatorConfig {
        upload_job_polls: 0,
        ..CxoneEmulatorConfig::default()
    })
    .await
}

pub(crate) fn config_for(emu: &RunningCxoneEmulator) -> CxoneConfig {
    let mut c = CxoneConfig::stand_in(
        &emu.base_url(),
        CLIENT_ID,
        CLIENT_SECRET.to_owned(),
        KEY_ID,
        KEY_SECRET.to_owned(),
    )
    .unwrap();
    c.tenant_id = Some(TENANT.to_owned());
    c.retry = fast_retry();
    c.requests_per_minute = 60_000;
    c
}

pub(crate) async fn client_for(emu: &RunningCxoneEmulator) -> CxoneClient {
    CxoneClient::connect(config_for(emu)).await.unwrap()
}

pub(crate) fn rule(
    kind: FaultKind,
    probability: f64,
    methods: &[&str],
    paths: &[&str],
) -> FaultRule {
    let mut r = FaultRule::new(kind, probability);
    r.methods = methods.iter().map(|m| (*m).to_owned()).collect();
    r.paths = paths.iter().map(|p| (*p).to_owned()).collect();
    r
}

pub(crate) fn faults(rules: Vec<FaultRule>) -> FaultProfile {
    FaultProfile {
        seed: Some(7),
        rules,
        ..FaultProfile::default()
    }
}

/// Requests the emulator saw on a route template (e.g. `POST /dfo/3.0/channels/{channelId}/outbound`).
pub(crate) fn route_count(emu: &RunningCxoneEmulator, route: &str) -> u64 {
    emu.state()
        .stats()
        .requests_by_route
        .iter()
        .filter(|(k, _)| k.as_str() == route)
        .map(|(_, v)| *v)
        .sum()
}
