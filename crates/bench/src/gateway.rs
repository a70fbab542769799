//! `dedupd-bench gateway`: `POST /v1/messages` under `wrk`, with the embedded window, with Redis,
//! and next to a bare axum handler that only SHA-256s the body, in one run.
//!
//! `wrk` (which must be installed) drives each target in turn with the same Lua script, one of
//! two streams (see `dedupd_testdata::messages`): `--stream repeating` (HTML-formatted messages,
//! `--distinct` of them repeated, so the gateway sees both PROCESS and SUPPRESS) or `--stream
//! unique` (every request a new ~300-byte SMS from `--senders` numbers: each one a PROCESS and
//! a window insert, the common case). The servers run in this process on ephemeral ports with
//! the same runtime, or with `--serve-process` the gateway targets are `dedupd serve` itself as
//! a child process (its CPU read from `/proc/<pid>/stat`). The load average (`/proc/loadavg`)
//! is printed before each target: on a shared machine other work skews the figures, and the
//! table should say so.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use dedupd_gateway::{ContactIndex, Gateway, GatewayConfig};
use dedupd_http::{self as common, Auth, Health, ServiceOptions};
use dedupd_store::window::{EmbeddedWindow, RedisWindow, RedisWindowConfig, Window};
use dedupd_testdata::messages;
use sha2::{Digest, Sha256};

use crate::product::ServeChild;

/// Options of `dedupd-bench gateway`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct GatewayBench {
    /// Seconds per target.
    #[arg(long, default_value_t = 15)]
    pub(crate) duration: u64,
    /// wrk threads.
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: u32,
    /// wrk connections.
    #[arg(long, default_value_t = 64)]
    pub(crate) connections: u32,
    /// Which stream: `repeating` (`--distinct` messages repeated) or `unique` (every message
    /// new, from `--senders` numbers).
    #[arg(long, value_enum, default_value_t = StreamKind::Repeating)]
    pub(crate) stream: StreamKind,
    /// Distinct messages in the repeating stream (the rest are duplicates).
    #[arg(long, default_value_t = 50_000)]
    pub(crate) distinct: u64,
    /// Senders of the unique stream.
    #[arg(long, default_value_t = 8)]
    pub(crate) senders: u64,
    /// Run the gateway targets as `dedupd serve` child processes (the binary of `DEDUPD_BIN`,
    /// else beside this one) instead of in this process.
    #[arg(long, conflicts_with = "in_process")]
    pub(crate) serve_process: bool,
    /// Redis for the Redis target (skipped when unreachable).
    #[arg(
        long,
        env = "DEDUPD_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub(crate) redis: String,
    /// Instead of wrk: time the gateway's request path without HTTP (JSON in, decide with the
    /// embedded window, JSON out) on one thread, for the same message stream, and each of its
    /// main steps alone; prints µs per message.
    #[arg(long)]
    pub(crate) in_process: bool,
    /// Messages per round of `--in-process`.
    #[arg(long, default_value_t = 200_000)]
    pub(crate) messages: u64,
    /// Rounds of `--in-process` (the best round is reported).
    #[arg(long, default_value_t = 3)]
    pub(crate) rounds: u32,
    /// Turn near-duplicate flagging on in the gateway targets (off by default, as in `serve`),
    /// to measure what the second step costs.
    #[arg(long)]
    pub(crate) near_duplicates: bool,
}

/// `--stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StreamKind {
    /// `--distinct` messages, repeated.
    Repeating,
    /// Every message new.
    Unique,
}

impl GatewayBench {
    /// The message stream of this run.
    fn stream(&self) -> messages::Stream {
        match self.stream {
            StreamKind::Repeating => messages::Stream::Repeating {
                distinct: self.distinct,
            },
            StreamKind::Unique => messages::Stream::Unique {
                senders: self.senders,
            },
        }
    }

    /// What the stream is, for the table's heading.
    fn describe_stream(&self) -> String {
        match self.stream {
            StreamKind::Repeating => format!("{} distinct messages, repeated", self.distinct),
            StreamKind::Unique => format!(
                "every message unique (~300 bytes), {} senders",
                self.senders
            ),
        }
    }

    /// The gateway's settings for this run.
    fn gateway_config(&self) -> GatewayConfig {
        GatewayConfig {
            near: self
                .near_duplicates
                .then(dedupd_gateway::NearConfig::default),
            ..GatewayConfig::default()
        }
    }
}

/// One target's figures.
#[derive(Debug, Clone, Default)]
pub(crate) struct WrkResult {
    /// Requests per second.
    pub(crate) rps: f64,
    /// Median latency, milliseconds.
    pub(crate) p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub(crate) p99_ms: f64,
    /// Answers that were not 2xx.
    pub(crate) non_2xx: u64,
    /// Load average before the target ran.
    pub(crate) load: String,
    /// CPU this process (the servers) spent per request during the run, microseconds (user +
    /// system, so the kernel's socket work is in it); `None` where `/proc` is not there.
    pub(crate) server_cpu_us: Option<f64>,
}

/// Parses `wrk --latency` output.
pub(crate) fn parse_wrk(out: &str) -> anyhow::Result<WrkResult> {
    let ms = |v: &str| -> Option<f64> {
        let v = v.trim();
        if let Some(x) = v.strip_suffix("us") {
            x.parse::<f64>().ok().map(|x| x / 1000.0)
        } else if let Some(x) = v.strip_suffix("ms") {
            x.parse().ok()
        } else if let Some(x) = v.strip_suffix('s') {
            x.parse::<f64>().ok().map(|x| x * 1000.0)
        } else {
            None
        }
    };
    let mut r = WrkResult::default();
    for line in out.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().context("wrk Requests/sec")?;
        } else if let Some(v) = t.strip_prefix("50%") {
            r.p50_ms = ms(v).context("wrk 50%")?;
        } else if let Some(v) = t.strip_prefix("99%") {
            r.p99_ms = ms(v).context("wrk 99%")?;
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = v.trim().parse().unwrap_or(u64::MAX);
        }
    }
    if r.rps == 0.0 {
        bail!("wrk printed no Requests/sec:\n{out}");
    }
    Ok(r)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".to_owned())
}

/// CPU seconds (user + system) this process (or `pid`) has used, from `/proc/self/stat` (Linux; the
/// kernel reports it in USER_HZ = 100 ticks a second on every Linux ABI).
fn process_cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn wrk(
    opts: &GatewayBench,
    script: &Path,
    base: &str,
    server: Option<u32>,
) -> anyhow::Result<WrkResult> {
    let load = load_average();
    let cpu_before = process_cpu_seconds(server);
    let out = Command::new("wrk")
        .arg(format!("-t{}", opts.threads))
        .arg(format!("-c{}", opts.connections))
        .arg(format!("-d{}s", opts.duration))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(format!("{base}/v1/messages"))
        .output()
        .context("running wrk (apt-get install -y wrk)")?;
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut r = parse_wrk(&String::from_utf8_lossy(&out.stdout))?;
    r.load = load;
    r.server_cpu_us = cpu_before
        .zip(process_cpu_seconds(server))
        .map(|(a, b)| (b - a) * 1e6 / (r.rps * opts.duration as f64).max(1.0));
    Ok(r)
}

/// How a bench server listens: plain `axum::serve` (the bare baseline), or the listener
/// `dedupd serve` runs (header timeout, connection cap), so the gateway targets measure it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Listener {
    Plain,
    Serve,
}

pub(crate) async fn bind(app: Router, how: Listener) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let served = match how {
            Listener::Plain => axum::serve(listener, app).await,
            Listener::Serve => {
                dedupd_http::serve(
                    listener,
                    app,
                    dedupd_http::Limits::default(),
                    std::future::pending(),
                )
                .await
            }
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "A bench server stopped.");
        }
    });
    Ok(format!("http://{addr}"))
}

/// The baseline: read the body, SHA-256 it, answer the hex digest as JSON.
pub(crate) fn bare_router() -> Router {
    Router::new().route(
        "/v1/messages",
        post(|body: Bytes| async move {
            let digest: [u8; 32] = Sha256::digest(&body).into();
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            axum::Json(serde_json::json!({"fingerprint": hex}))
        }),
    )
}

fn gateway_router(config: GatewayConfig, window: Window) -> Router {
    let gateway = Gateway::new(config, ContactIndex::new(), window, None);
    common::compose(
        vec![gateway.api(Auth::open(GatewayConfig::default().body_limit))],
        gateway.health().merge(Health::new()),
        common::metrics::install(),
        &ServiceOptions::default(),
    )
}

/// `dedupd serve` for the window benchmark: embedded, or on Redis under this run's prefix.
fn start_serve(opts: &GatewayBench, dir: &Path, redis: Option<&str>) -> anyhow::Result<ServeChild> {
    let name = if redis.is_some() { "redis" } else { "embedded" };
    let mut cmd = Command::new(crate::product::dedupd()?);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--snapshot"])
        .arg(dir.join(format!("window-{name}.snapshot")))
        .env_remove("DEDUPD_REDIS_URL");
    if let Some(url) = redis {
        cmd.args(["--redis", url, "--redis-prefix"])
            .arg(format!("dedupd-bench:{}:", std::process::id()));
    }
    if opts.near_duplicates {
        cmd.arg("--near-duplicates");
    }
    ServeChild::start(cmd, &dir.join(format!("serve-{name}.log")))
}

/// Runs the benchmark and prints a Markdown table.
pub(crate) fn run(opts: &GatewayBench) -> anyhow::Result<()> {
    if opts.in_process {
        return run_in_process(opts);
    }
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("messages.lua");
    std::fs::write(&script, opts.stream().wrk_script())
        .with_context(|| format!("cannot write {}", script.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The Redis client spawns its connection task on the runtime it is made in.
    let _runtime = rt.enter();
    let prefix = format!("dedupd-bench:{}:", std::process::id());
    let mut config = RedisWindowConfig::new(opts.redis.clone());
    config.prefix = prefix.clone();
    let window = RedisWindow::new(&config)?;
    let redis_up = rt.block_on(window.ping());
    if !redis_up {
        eprintln!("No Redis at {}: the Redis target is skipped.", opts.redis);
    }
    // Each target: its name, its base URL, and the process whose CPU it uses (None: this one).
    let mut children = Vec::new();
    let mut targets: Vec<(&str, String, Option<u32>)> = Vec::new();
    let bare = rt.block_on(bind(bare_router(), Listener::Plain))?;
    targets.push(("bare axum + SHA-256", bare, None));
    if opts.serve_process {
        let embedded = start_serve(opts, dir.path(), None)?;
        targets.push((
            "`dedupd serve`, embedded window",
            embedded.base.clone(),
            Some(embedded.child.id()),
        ));
        children.push(embedded);
        if redis_up {
            let redis = start_serve(opts, dir.path(), Some(&opts.redis))?;
            targets.push((
                "`dedupd serve`, Redis window",
                redis.base.clone(),
                Some(redis.child.id()),
            ));
            children.push(redis);
        }
    } else {
        let embedded = rt.block_on(bind(
            gateway_router(
                opts.gateway_config(),
                Window::Embedded(Arc::new(EmbeddedWindow::new(1_000_000))),
            ),
            Listener::Serve,
        ))?;
        targets.push(("gateway, embedded window", embedded, None));
        if redis_up {
            let base = rt.block_on(bind(
                gateway_router(opts.gateway_config(), Window::Redis(window.clone())),
                Listener::Serve,
            ))?;
            targets.push(("gateway, Redis window", base, None));
        }
    }
    // Warm up each target briefly (connections, allocator, Lua), then measure.
    let warm = GatewayBench {
        duration: 2,
        ..opts.clone()
    };
    let mut rows: Vec<(&str, WrkResult)> = Vec::new();
    for (name, base, pid) in &targets {
        wrk(&warm, &script, base, *pid)?;
        std::thread::sleep(Duration::from_secs(1));
        rows.push((name, wrk(opts, &script, base, *pid)?));
    }
    drop(children);
    if redis_up {
        let n = rt.block_on(window.clear())?;
        eprintln!("Deleted {n} bench keys from Redis.");
    }
    let bare_rps = rows.first().map(|(_, r)| r.rps).unwrap_or(1.0);
    println!(
        "wrk -t{} -c{} -d{}s --latency, {}{}",
        opts.threads,
        opts.connections,
        opts.duration,
        opts.describe_stream(),
        if opts.near_duplicates {
            ", near-duplicates on"
        } else {
            ""
        }
    );
    println!();
    println!(
        "| target | requests/s | × bare | p50 | p99 | non-2xx | server CPU µs/request | load before |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for (name, r) in &rows {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} ms | {:.2} ms | {} | {} | {} |",
            r.rps,
            r.rps / bare_rps,
            r.p50_ms,
            r.p99_ms,
            r.non_2xx,
            r.server_cpu_us
                .map_or_else(|| "n/a".to_owned(), |us| format!("{us:.1}")),
            r.load
        );
    }
    Ok(())
}

/// Best of `rounds`, µs per item: `f` runs once per round over the whole stream.
fn best_us(
    rounds: u32,
    items: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..rounds.max(1) {
        let started = std::time::Instant::now();
        f()?;
        let us = started.elapsed().as_secs_f64() * 1e6 / items.max(1) as f64;
        best = best.min(us);
    }
    Ok(best)
}

/// `--in-process`: the handler's work without HTTP, on one thread.
fn run_in_process(opts: &GatewayBench) -> anyhow::Result<()> {
    use dedupd_core::message::{BodyFormat, normalize_body, parse_address};
    use dedupd_gateway::MessageRequest;

    let load = load_average();
    let stream = opts.stream().bodies(opts.messages);
    let requests: Vec<MessageRequest> = stream
        .iter()
        .map(|b| common::parse_json(b))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("bench message: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The same recorder as `serve`, so metric updates cost what they cost there.
    let _metrics = common::metrics::install();
    let n = stream.len();
    let mut processed = 0u64;
    let full = best_us(opts.rounds, n, || {
        let gateway = Gateway::new(
            opts.gateway_config(),
            ContactIndex::new(),
            Window::Embedded(Arc::new(EmbeddedWindow::new(1_000_000))),
            None,
        );
        processed = 0;
        rt.block_on(async {
            for body in &stream {
                let req: MessageRequest =
                    common::parse_json(body).map_err(|e| anyhow::anyhow!("{e}"))?;
                let answer = gateway
                    .decide(req, chrono::Utc::now())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                processed += u64::from(answer.decision == dedupd_gateway::Decision::Process);
                std::hint::black_box(serde_json::to_vec(&answer)?);
            }
            anyhow::Ok(())
        })
    })?;
    // The same requests through the whole axum stack (routing, middleware, extractor,
    // response) without sockets: what HTTP adds on top of the decide path, minus hyper.
    let through_router = |router: Router| {
        best_us(opts.rounds, n, || {
            let router = router.clone();
            rt.block_on(async {
                for body in &stream {
                    let req = axum::http::Request::builder()
                        .method("POST")
                        .uri("/v1/messages")
                        .header("content-type", "application/json")
                        .body(axum::body::Body::from(body.clone()))?;
                    let resp = tower::ServiceExt::oneshot(router.clone(), req).await?;
                    if !resp.status().is_success() {
                        bail!("the router answered {}", resp.status());
                    }
                    std::hint::black_box(axum::body::to_bytes(resp.into_body(), 1 << 20).await?);
                }
                anyhow::Ok(())
            })
        })
    };
    let router_bare = through_router(bare_router())?;
    let router_gateway = {
        let router = rt.block_on(async {
            gateway_router(
                opts.gateway_config(),
                Window::Embedded(Arc::new(EmbeddedWindow::new(1_000_000))),
            )
        });
        through_router(router)?
    };
    let json_in = best_us(opts.rounds, n, || {
        for body in &stream {
            let req: MessageRequest =
                common::parse_json(body).map_err(|e| anyhow::anyhow!("{e}"))?;
            std::hint::black_box(req);
        }
        Ok(())
    })?;
    let region = GatewayConfig::default().default_region;
    let address = best_us(opts.rounds, n, || {
        for r in &requests {
            std::hint::black_box(parse_address(&r.channel, &r.from, region));
        }
        Ok(())
    })?;
    let text = best_us(opts.rounds, n, || {
        for r in &requests {
            let t = r.text.as_deref().unwrap_or("");
            std::hint::black_box(normalize_body(t, BodyFormat::Auto));
        }
        Ok(())
    })?;
    println!(
        "in-process, 1 thread, {n} messages ({}; {processed} PROCESS), best of {} rounds, load before {load}",
        opts.describe_stream(),
        opts.rounds
    );
    println!();
    println!("| step | µs/message |");
    println!("|---|---:|");
    println!("| bare handler through its axum router (no sockets) | {router_bare:.2} |");
    println!("| gateway through the `serve` axum stack (no sockets) | {router_gateway:.2} |");
    println!("| whole request path (JSON in, decide, JSON out) | {full:.2} |");
    println!("| JSON in alone | {json_in:.2} |");
    println!("| parse_address alone (`from` → E.164) | {address:.2} |");
    println!("| normalize_body alone (HTML → text) | {text:.2} |");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_latency_output() {
        let out = "Running 15s test @ http://127.0.0.1:1/v1/messages
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   710.05us  400.10us  12.00ms   90.00%
  Latency Distribution
     50%  650.00us
     75%  800.00us
     90%    1.00ms
     99%    2.50ms
  1000000 requests in 15.00s, 200.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  66666.67
Transfer/sec:     13.33MB
";
        let r = parse_wrk(out).unwrap();
        assert!((r.rps - 66666.67).abs() < 0.01);
        assert!((r.p50_ms - 0.65).abs() < 1e-9);
        assert!((r.p99_ms - 2.5).abs() < 1e-9);
        assert_eq!(r.non_2xx, 3);
        assert!(parse_wrk("nothing").is_err());
    }
}
