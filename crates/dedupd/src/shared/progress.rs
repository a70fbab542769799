//! One progress style for the long-running jobs. On a terminal, a bar drawn on stderr. Not on a
//! terminal (a log file, a pipe, a service manager), a plain line on stderr every 30 s
//! (`DEDUPD_PROGRESS_SECS` to change it), so a long run is never silent for minutes. With
//! `--quiet`, nothing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether a run not on a terminal prints periodic progress lines (set once by the binary).
static LINES: AtomicBool = AtomicBool::new(false);

/// Turns the periodic progress lines on or off (the binary: on unless `--quiet` or a terminal,
/// where the bar shows instead).
pub fn set_lines(on: bool) {
    LINES.store(on, Ordering::Relaxed);
}

/// A job's progress: a bar, periodic lines, or nothing.
pub(crate) struct Progress {
    bar: ProgressBar,
    lines: Option<Lines>,
}

struct Lines {
    prefix: &'static str,
    unit: String,
    len: u64,
    every: Duration,
    done: AtomicU64,
    started: Instant,
    last: Mutex<Instant>,
}

/// Progress over `len` `unit`s labelled `prefix`: a bar when `visible`, else periodic lines
/// when they are on.
pub(crate) fn bar(len: u64, visible: bool, unit: &str, prefix: &'static str) -> Progress {
    let bar = ProgressBar::with_draw_target(
        Some(len),
        if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{prefix:>8}} {{bar:30}} {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(prefix);
    let lines = (!visible && LINES.load(Ordering::Relaxed)).then(|| {
        let every = std::env::var("DEDUPD_PROGRESS_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(Duration::from_secs(30), Duration::from_secs);
        let now = Instant::now();
        Lines {
            prefix,
            unit: unit.to_owned(),
            len,
            every,
            done: AtomicU64::new(0),
            started: now,
            last: Mutex::new(now),
        }
    });
    Progress { bar, lines }
}

impl Progress {
    /// `n` more units done.
    pub(crate) fn inc(&self, n: u64) {
        self.bar.inc(n);
        let Some(l) = &self.lines else { return };
        let done = l.done.fetch_add(n, Ordering::Relaxed) + n;
        let now = Instant::now();
        let mut last = l
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.duration_since(*last) < l.every && done < l.len {
            return;
        }
        *last = now;
        let secs = now.duration_since(l.started).as_secs_f64();
        eprintln!(
            "{}: {done}/{} {} ({:.0} s, {:.1}/s)",
            l.prefix,
            l.len,
            l.unit,
            secs,
            if secs > 0.0 { done as f64 / secs } else { 0.0 }
        );
    }

    /// Done: the bar is removed (the job prints its summary).
    pub(crate) fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
    }
}
