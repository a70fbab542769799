//! One progress-bar style for the long-running jobs: drawn on stderr when asked (the binary asks
//! only on a terminal), hidden otherwise, so pipes and logs stay quiet.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` `unit`s labelled `prefix`; hidden unless `visible`.
pub(crate) fn bar(len: u64, visible: bool, unit: &str, prefix: &'static str) -> ProgressBar {
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
    bar
}
