//! `[serve]` of a config file: read by `dedupd serve`, and accepted (and checked) by every job
//! that reads the same file, so one file can hold the feeds, the service and notifications.

use std::path::PathBuf;

use serde::Deserialize;

/// `[serve]` in the config file. Every key is optional; flags win.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    /// Address to listen on (`127.0.0.1:8080`).
    pub listen: Option<String>,
    /// Contact index: NDJSON of `customer_id`, `phone`, `email` (relative to the config file).
    pub contacts: Option<PathBuf>,
    /// Contact index from the ingest state directory instead (relative to the config file).
    pub state: Option<PathBuf>,
    /// Share the dedup window through this Redis (`redis://host:6379/0`).
    pub redis: Option<String>,
    /// Key prefix of the window in Redis.
    pub redis_prefix: Option<String>,
    /// The dedup window, seconds (default 300).
    pub window: Option<u64>,
    /// Windows by channel pair, seconds: `"sms/email" = 3600`, `"sms/sms" = 60`,
    /// `"chat/*" = 120` (pairs are unordered; `*` is any channel).
    pub windows: Option<std::collections::BTreeMap<String, u64>>,
    /// Flag near-duplicates (`near_duplicate_of`): same customer, very similar text. Off by
    /// default.
    pub near_duplicates: Option<bool>,
    /// Least similarity (0–1) that flags a near-duplicate (default 0.6).
    pub near_threshold: Option<f64>,
    /// Recent messages remembered per customer for near-duplicates (default 16).
    pub near_keep: Option<usize>,
    /// Embedded window: most entries held (default 1 000 000).
    pub max_entries: Option<usize>,
    /// Embedded window: snapshot file (default `.dedupd/window.snapshot`).
    pub snapshot: Option<PathBuf>,
    /// Embedded window: seconds between snapshots (default 30).
    pub snapshot_every: Option<u64>,
    /// Region of national phone numbers in `from` (default `US`).
    pub default_region: Option<String>,
    /// Largest request body, bytes (default 1 MiB).
    pub body_limit: Option<usize>,
    /// When the window backend is down: `process` (default; flagged `degraded`) or `reject`
    /// (503).
    pub degraded: Option<String>,
    /// `genesys` to forward PROCESS messages to Genesys Cloud Open Messaging, `cxone` to NICE
    /// CXone as BYOC inbound messages.
    pub forward: Option<String>,
    /// The Open Messaging integration id (`GENESYS_INTEGRATION_ID`).
    pub integration_id: Option<String>,
    /// CXone: the DFO channel id of the BYOC channel (`CXONE_CHANNEL_ID`).
    pub channel_id: Option<String>,
    /// API base URL (the emulator's); wins over `region`.
    pub base_url: Option<String>,
    /// Genesys Cloud region (`us-east-1`, `eu-west-1`, …).
    pub region: Option<String>,
    /// OAuth client id.
    pub client_id: Option<String>,
    /// The org's API budget, requests per minute (default 300).
    pub rate: Option<u32>,
    /// Seconds a connection may take to send a whole request head before it is closed
    /// (default 10).
    pub header_timeout: Option<u64>,
    /// Most connections open at once (default 1024); past it only `/healthz` and `/readyz`
    /// are served, from a small reserve, and everything else gets 503.
    pub max_connections: Option<usize>,
}
