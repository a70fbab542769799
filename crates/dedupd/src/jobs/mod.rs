//! One folder per job. Each holds its command-line arguments, its run and its report; a job
//! imports `shared` and the library crates, never another job.

pub mod demo;
pub mod emulator;
pub mod eval;
pub mod healthcheck;
pub mod ingest;
pub mod merge_apply;
pub mod merge_plan;
pub mod merge_review;
pub mod relay;
pub mod serve;
pub mod sync;
