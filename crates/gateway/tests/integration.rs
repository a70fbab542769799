//! The gateway over real HTTP, in process, on ephemeral ports: the sample replay with both
//! backends, concurrency, the error envelope and auth, degraded mode and recovery. (Forwarding
//! to the Genesys emulator is tested where the gateway meets the platform crate:
//! `crates/dedupd/tests/integration/forward.rs`; the forwarder's own rules in `src/forward.rs`.)
//!
//! Redis tests read `REDIS_URL` (default `redis://127.0.0.1:6379`), use a unique key prefix
//! each and delete their keys; without Redis they are skipped with a note, except under
//! `CI=true`, where a missing Redis is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

#[path = "integration/support.rs"]
mod support;

#[path = "integration/concurrency.rs"]
mod concurrency;
#[path = "integration/degraded.rs"]
mod degraded;
#[path = "integration/http.rs"]
mod http;
#[path = "integration/replay.rs"]
mod replay;
#[path = "integration/windows.rs"]
mod windows;
