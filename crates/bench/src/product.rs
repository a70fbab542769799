//! The `dedupd` binary that the benchmarks run as a child process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

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

/// A `dedupd serve` child process, killed when dropped (also when a benchmark stops on an
/// error, so no server is left holding the terminal's pipe).
pub(crate) struct ServeChild {
    pub(crate) child: Child,
    /// `http://127.0.0.1:PORT`, from the line the server prints when it listens.
    pub(crate) base: String,
}

impl ServeChild {
    /// Starts `cmd` (a `dedupd serve --listen 127.0.0.1:0 …`) with its log in `log` and waits
    /// for the line that says where it listens.
    pub(crate) fn start(mut cmd: Command, log: &Path) -> anyhow::Result<ServeChild> {
        let file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .context("starting dedupd serve")?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("serve's stdout")?;
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(base) = line.trim().strip_prefix("dedupd serve listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "dedupd serve did not start (see {}): {line:?}",
                log.display()
            );
        };
        Ok(ServeChild {
            base: base.to_owned(),
            child,
        })
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
