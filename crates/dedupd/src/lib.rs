//! The `dedupd` binary's library: the jobs and what they share. `main.rs` only parses the
//! command line and calls in here, so tests drive the same code paths.

pub mod jobs;
pub mod shared;
