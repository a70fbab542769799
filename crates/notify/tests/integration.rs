//! Integration tests of `dedupd-notify` over real HTTP on ephemeral ports, against both outbox
//! backends (PostgreSQL: `DATABASE_URL` / `POSTGRES_URL`, one schema per test; skipped when no
//! server answers unless `CI=true`).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "integration/common.rs"]
mod common;

#[path = "integration/http.rs"]
mod http;
#[path = "integration/relay.rs"]
mod relay;
