//! What a job says when it is done, the same way in every command: a short summary for people
//! on stderr (left out with `--quiet`), and with `--json` its report, the same object as the
//! report file it writes, as one line of JSON on stdout for scripts
//! (`LIST=$(dedupd sync … --json | jq -r .contact_list_id)`). Stdout carries nothing else.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);
static JSON: AtomicBool = AtomicBool::new(false);

/// Sets the global flags once, from the command line.
pub fn set(quiet: bool, json: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
    JSON.store(json, Ordering::Relaxed);
}

/// Whether the summary and progress are left out (`--quiet`).
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Prints the summary line(s) on stderr, unless `--quiet`.
pub fn summary(text: impl std::fmt::Display) {
    if !quiet() {
        eprintln!("{text}");
    }
}

/// With `--json`, writes `report` as one line of JSON on stdout; otherwise does nothing.
pub fn report<T: serde::Serialize>(report: &T) -> anyhow::Result<()> {
    if !JSON.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut line = serde_json::to_vec(report)?;
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    match out.write_all(&line).and_then(|()| out.flush()) {
        // A reader that stopped early (`| head`) is no error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
