//! What the jobs share: the atomic file writer, the feed decoder and CSV reader, the feeds
//! config, the plan file, the platform arguments, the state directory, the shutdown signal and
//! progress bars. Jobs never import each other; what two jobs need lives here.

pub mod feed;
pub mod feeds;
pub mod fs;
pub mod plan_file;
pub mod platform;
pub(crate) mod progress;

use std::path::{Path, PathBuf};

/// `.dedupd/` beside the config file: the jobs of one config (ingest, sync) share one state.
pub fn default_state_dir(config: &Path) -> PathBuf {
    config.parent().unwrap_or(Path::new(".")).join(".dedupd")
}

/// Peak resident set size from `/proc/self/status` (`VmHWM`), on Linux.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Exit status of a run that left work for the next one (contacts pending after their retries,
/// clusters not settled) or gave up on an unreachable platform: run it again.
pub const EXIT_INCOMPLETE: u8 = 3;
