//! The `dedupd` binary's library: the jobs and what they share. `main.rs` only parses the
//! command line and calls in here, so tests drive the same code paths.

pub mod jobs;
pub mod shared;

/// What `dedupd --version` prints after the name: the version, the git commit it was built
/// from and the build date (UTC), e.g. `0.1.0 (commit 1a2b3c4d5e6f, built 2026-12-04)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("DEDUPD_GIT_COMMIT"),
    ", built ",
    env!("DEDUPD_BUILD_DATE"),
    ")"
);
