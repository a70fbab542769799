//! The `dedupd` binary's library: the jobs and what they share. `main.rs` only parses the
//! command line and calls in here, so tests drive the same code paths.

pub mod bench;
pub mod bench_gateway;
pub mod bench_merge;
pub mod bench_merge_apply;
pub mod jobs;
pub mod shared;
