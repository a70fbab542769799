//! The `dedupd` binary's library: configuration, the pipelines and their reports. `main.rs`
//! only parses the command line and calls in here, so tests drive the same code paths.

pub mod bench;
pub mod bench_gateway;
pub mod bench_merge;
pub mod bench_merge_apply;
pub mod config;
pub mod ingest;
pub mod merge;
pub mod notify;
mod progress;
pub mod serve;
pub mod sync;
