//! Integration tests of the CXone client against the CXone emulator over real HTTP (started
//! in-process), with fault injection: auth and discovery, each endpoint, each seam, retries,
//! `Retry-After`, short-lived tokens, the shared rate budget in Redis, redaction.
//!
//! Nothing sleeps on the wall clock and nothing asserts elapsed time: retries use
//! millisecond backoffs, and "Retry-After wins" is shown by a `Retry-After` longer than the
//! retry budget, which stops the retries at once.

#![allow(clippy::unwrap_used)]

#[path = "integration/common.rs"]
mod common;

#[path = "integration/auth.rs"]
mod auth;
#[path = "integration/endpoints.rs"]
mod endpoints;
#[path = "integration/retries.rs"]
mod retries;
#[path = "integration/seams.rs"]
mod seams;
