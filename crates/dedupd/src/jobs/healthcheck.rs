//! `dedupd healthcheck [URL]`: asks a running `dedupd serve` whether it is alive (`GET
//! /healthz`) and exits 0 when it answers 200, 1 otherwise. For container health checks on a
//! minimal image that has no shell, curl or wget (deploy/Containerfile).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

/// Flags of `dedupd healthcheck`.
#[derive(Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// The health URL (plain http).
    #[arg(default_value = "http://127.0.0.1:8080/healthz")]
    pub url: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
}

/// `http://host:port/path` → (`host:port`, `path`).
fn split(url: &str) -> anyhow::Result<(&str, &str)> {
    let rest = url.strip_prefix("http://").with_context(|| {
        format!("{url}: give an http:// URL (e.g. http://127.0.0.1:8080/healthz)")
    })?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    if authority.is_empty() || !authority.contains(':') {
        bail!("{url}: give the host and the port (e.g. http://127.0.0.1:8080/healthz)");
    }
    Ok((authority, path))
}

/// The status code of `GET url`.
fn status(url: &str, timeout: Duration) -> anyhow::Result<u16> {
    let (authority, path) = split(url)?;
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("cannot connect to {authority}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    // The status line is all we need; the head is small.
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match stream.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let line = std::str::from_utf8(&head[..n]).unwrap_or("");
    line.strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("{authority} did not answer HTTP"))
}

/// Exit 0 when `url` answers 200, else 1 (with the reason on stderr).
pub fn main(args: HealthcheckArgs) -> anyhow::Result<ExitCode> {
    match status(&args.url, Duration::from_secs(args.timeout.max(1))) {
        Ok(200) => Ok(ExitCode::SUCCESS),
        Ok(code) => {
            eprintln!("unhealthy: {} answered {code}", args.url);
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("unhealthy: {}", crate::shared::error_chain(&e));
            Ok(ExitCode::from(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_and_path() {
        assert_eq!(
            split("http://127.0.0.1:8080/healthz").unwrap(),
            ("127.0.0.1:8080", "/healthz")
        );
        assert_eq!(split("http://localhost:9").unwrap(), ("localhost:9", "/"));
        assert!(split("https://x:1/healthz").is_err());
        assert!(split("http://nohost/healthz").is_err());
    }
}
