//! What the jobs share: the atomic file writer, the config file (`feeds`; its readers are the
//! `dedupd-feed` crate), the plan file, the platform arguments, the state directory, the shutdown signal and
//! progress bars, what a run prints. Jobs never import each other; what two jobs need lives here.

pub mod emulator_seed;
pub mod feeds;
pub mod fs;
pub mod notifications;
pub mod output;
pub mod plan_file;
pub mod platform;
pub mod progress;
pub mod review;
pub mod serve_section;

use std::path::{Path, PathBuf};

/// The name of dedupd's state directory.
pub const STATE_DIR: &str = ".dedupd";

/// `.dedupd/` beside the config file (or, for `merge apply`, inside the plan directory): the
/// jobs of one config (ingest, sync, serve, relay) share one state.
pub fn default_state_dir(config: &Path) -> PathBuf {
    config.parent().unwrap_or(Path::new(".")).join(STATE_DIR)
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

/// The error and its causes on one line, `outer: cause: root`, leaving out a cause whose words
/// the line already holds: many messages embed their source (`cannot open X: No such file or
/// directory (os error 2)`), and printing the chain as it is would say it twice.
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line
}

/// Logs to stderr: `warn` by default, `info` with one `-v`, `debug` with more; `RUST_LOG`
/// overrides. Colours only on a terminal.
pub fn init_logging(verbose: u8) {
    use std::io::IsTerminal;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// The PostgreSQL URL of the resolution index: `DEDUPD_POSTGRES_URL` (the one name every
/// command reads; a machine's generic `DATABASE_URL` is never taken for dedupd's).
pub fn postgres_url() -> Option<String> {
    std::env::var("DEDUPD_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone (os error 2)");
        let inner = anyhow::Error::new(io).context("cannot open x.redb: gone (os error 2)");
        let e = inner.context("loading the state");
        assert_eq!(
            error_chain(&e),
            "loading the state: cannot open x.redb: gone (os error 2)"
        );
        let e = anyhow::anyhow!("root cause").context("what failed");
        assert_eq!(error_chain(&e), "what failed: root cause");
    }
}
