//! The `dedupd` binary that `ingest` and `merge` run as a child process.

use std::path::PathBuf;

use anyhow::Context;

/// Where to find `dedupd`: `DEDUPD_BIN` if set, else the `dedupd` built beside this
/// executable (`cargo build --release -p dedupd -p dedupd-bench` puts both in target/release).
pub(crate) fn dedupd() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("DEDUPD_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let me =
                std::env::current_exe().context("cannot locate the dedupd-bench executable")?;
            me.with_file_name(format!("dedupd{}", std::env::consts::EXE_SUFFIX))
        }
    };
    anyhow::ensure!(
        path.is_file(),
        "the dedupd binary is not at {}: build it beside dedupd-bench (cargo build --release -p dedupd -p dedupd-bench) or set DEDUPD_BIN",
        path.display()
    );
    Ok(path)
}
