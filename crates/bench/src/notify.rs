//! `dedupd-bench notify`: accepted notifications per second per outbox backend, and the cost
//! of the idempotency check next to a plain insert.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use dedupd_core::notification::{content_guard_key, fingerprint};
use dedupd_store::outbox::{
    AcceptOptions, EmbeddedOutbox, GuardMode, NewNotification, Outbox, OutboxOptions, OutboxStore,
    PgOutbox,
};

/// Notification `i` of round `run`, as the outbox takes it.
fn sample(i: u64, run: &str) -> anyhow::Result<NewNotification> {
    let req = dedupd_testdata::notifications::request(i);
    let body = serde_json::json!({
        "channel": "sms", "to": req.to, "text": req.text, "customer_id": req.customer_id,
        "event_type": req.event_type,
    });
    Ok(NewNotification {
        key: format!("{run}-{i}"),
        id: format!("ntf_{run}_{i}"),
        fingerprint: fingerprint(&body),
        request: serde_json::to_value(&req).context("the bench notification as JSON")?,
        channel: "sms".into(),
        provider: "bench".into(),
        guard_key: Some(content_guard_key(
            req.guard_customer(),
            req.channel,
            &req.text,
        )),
        not_after: None,
    })
}

/// What a benchmark round does per notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A plain insert: no key lookup, no fingerprint comparison, no content guard.
    Plain,
    /// The idempotent accept (key lookup + fingerprint), content guard off.
    Idempotent,
    /// The idempotent accept with the content guard reporting (the default configuration).
    Guarded,
}

/// Accepts `n` notifications with `concurrency` tasks in `mode`; returns notifications/s.
async fn load(
    outbox: &Outbox,
    n: u64,
    concurrency: u64,
    mode: Mode,
    run: &str,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let opts = AcceptOptions {
        guard: if mode == Mode::Guarded {
            GuardMode::Report
        } else {
            GuardMode::Off
        },
        ..AcceptOptions::default()
    };
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let outbox = outbox.clone();
        let next = Arc::clone(&next);
        let run = run.to_owned();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                let mut new = sample(i, &run)?;
                match mode {
                    Mode::Plain => outbox.insert_plain(new, Utc::now()).await?,
                    Mode::Idempotent | Mode::Guarded => {
                        if mode == Mode::Idempotent {
                            new.guard_key = None;
                        }
                        outbox.accept(new, opts, Utc::now()).await?;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// `dedupd-bench notify`: for each backend, `rounds` rounds, each of `n` plain inserts, `n`
/// idempotent accepts and `n` idempotent accepts with the content guard (fresh keys each);
/// prints every round and the best rate of each with the overheads against the plain insert.
/// `status_events`: the outbox writes an `accepted` status event with each accept (what
/// `[events.out]` turns on); off, as without a sink.
pub(crate) fn run(
    n: u64,
    concurrency: u64,
    rounds: u32,
    postgres: Option<String>,
    status_events: bool,
) -> anyhow::Result<()> {
    let opts = OutboxOptions { status_events };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let dir = tempfile::tempdir()?;
        let mut backends = vec![(
            "embedded",
            Outbox::Embedded(EmbeddedOutbox::open(dir.path(), opts)?),
            None,
        )];
        if let Some(url) = postgres {
            let schema = format!("bench_notify_{:08x}", fastrand::u32(..));
            let pg = PgOutbox::connect_new_schema(&url, &schema, 32, opts)
                .await
                .context("cannot reach PostgreSQL for the benchmark")?;
            backends.push(("postgres", Outbox::Postgres(pg.clone()), Some(pg)));
        }
        println!(
            "notifications per round and mode: {n}, concurrency: {concurrency}, rounds: {rounds}, status events: {}",
            if status_events { "on" } else { "off" }
        );
        for (name, outbox, pg) in backends {
            let mut best = [0f64; 3];
            for r in 0..rounds {
                let p = load(&outbox, n, concurrency, Mode::Plain, &format!("p{r}")).await?;
                let i = load(&outbox, n, concurrency, Mode::Idempotent, &format!("i{r}")).await?;
                let g = load(&outbox, n, concurrency, Mode::Guarded, &format!("g{r}")).await?;
                println!(
                    "  {name} round {r}: plain insert {p:>8.0}/s  idempotent accept {i:>8.0}/s  + content guard {g:>8.0}/s"
                );
                for (b, v) in best.iter_mut().zip([p, i, g]) {
                    *b = b.max(v);
                }
            }
            let [p, i, g] = best;
            println!(
                "{name}: plain insert {p:.0}/s; idempotent accept {i:.0}/s (overhead {:.1} %); with the content guard {g:.0}/s (overhead {:.1} %)",
                (p / i - 1.0) * 100.0,
                (p / g - 1.0) * 100.0
            );
            if let Some(pg) = pg {
                pg.drop_schema().await?;
            }
        }
        Ok(())
    })
}
