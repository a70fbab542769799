//! What every PostgreSQL backend of the store shares: the pool (its connections pinned to a
//! schema when given), a schema of its own (each test gets one), and the error of a failed
//! statement, named by the server's redacted URL.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
// Every dynamic statement here is built from checked names, never from input.
use sqlx::{AssertSqlSafe, Connection};

use crate::{StoreError, redact_url};

/// A failure of `op` against the server at `addr` (redacted URL).
pub(crate) fn db<'a>(op: &'static str, addr: &'a str) -> impl Fn(sqlx::Error) -> StoreError + 'a {
    move |e| StoreError::backend(op, addr, e)
}

/// A pool of at most `max_connections`, every connection pinned to `schema` when given.
pub(crate) async fn pool(
    url: &str,
    schema: Option<&str>,
    max_connections: u32,
) -> Result<PgPool, StoreError> {
    let open = |e: sqlx::Error| StoreError::Open {
        path: redact_url(url),
        source: Box::new(e),
    };
    let mut opts = PgConnectOptions::from_str(url).map_err(open)?;
    if let Some(s) = schema {
        opts = opts.options([("search_path", s)]);
    }
    PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with(opts)
        .await
        .map_err(open)
}

/// Creates the schema `name` (`[a-z0-9_]` only) if it is missing.
pub(crate) async fn create_schema(url: &str, name: &str) -> Result<(), StoreError> {
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(StoreError::backend(
            "create schema",
            name,
            std::io::Error::other("schema names here are [a-z0-9_]"),
        ));
    }
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| StoreError::Open {
            path: redact_url(url),
            source: Box::new(e),
        })?;
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {name}")))
        .execute(&mut conn)
        .await
        .map_err(db("create schema", &redact_url(url)))?;
    conn.close().await.map_err(db("close", &redact_url(url)))
}

/// Drops the schema `name` and everything in it (tests clean up with it).
pub(crate) async fn drop_schema(pool: &PgPool, name: &str, addr: &str) -> Result<(), StoreError> {
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {name} CASCADE"
    )))
    .execute(pool)
    .await
    .map(drop)
    .map_err(db("drop schema", addr))
}
