//! `dedupd demo`: the whole product in seconds, on bundled data, against a local Genesys
//! Cloud emulator: ingest → sync → merge plan → (review) → merge apply → serve with messages and
//! notifications. Each step is the real command, run as a child process and printed first, so
//! the user can run it again by hand; each step says where to look.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Flags of `dedupd demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Directory for the demo's files and outputs. Made if missing; an earlier demo's directory
    /// is replaced, any other non-empty directory refused.
    #[arg(long, default_value = "dedupd-demo")]
    pub dir: PathBuf,
    /// The emulator's rate limit, requests per minute per token (a real org allows about 300;
    /// the demo raises it so that it takes seconds, not many minutes).
    #[arg(long, default_value_t = 30_000)]
    pub rate: u32,
    /// Clusters at or above this confidence are merged without review; the rest wait for
    /// `dedupd merge review`.
    #[arg(long, default_value_t = 0.9)]
    pub min_confidence: f64,
    /// At the end, keep the emulator and `dedupd serve` running (until Ctrl-C) to try with curl.
    #[arg(long)]
    pub keep_running: bool,
}

/// The file that marks a directory as the demo's own (so it may be replaced).
const MARKER: &str = ".dedupd-demo";

/// The bundled data: the feeds of `examples/`, a contact export with known duplicates (1,500
/// records of 953 people from the labelled sample), the gateway's customers and its sample
/// message stream (each message labelled PROCESS or SUPPRESS).
const FILES: &[(&str, &str)] = &[
    (
        "feeds.toml",
        include_str!("../../../../examples/feeds.toml"),
    ),
    (
        "feeds/crm.csv",
        include_str!("../../../../examples/feeds/crm.csv"),
    ),
    (
        "feeds/webform.ndjson",
        include_str!("../../../../examples/feeds/webform.ndjson"),
    ),
    (
        "feeds/billing.json",
        include_str!("../../../../examples/feeds/billing.json"),
    ),
    (
        "contacts.csv",
        include_str!("../../../../examples/demo/contacts.csv"),
    ),
    (
        "customers.ndjson",
        include_str!("../../../../examples/demo/customers.ndjson"),
    ),
    (
        "messages.ndjson",
        include_str!("../../../../examples/demo/messages.ndjson"),
    ),
];

/// The demo's serve config: the gateway on the bundled customers, notifications by SMS through
/// the emulator's agentless messages, a relay that polls often.
const SERVE_TOML: &str = r#"# Written by `dedupd demo`. See examples/serve.toml for every setting, commented.
[serve]
contacts = "customers.ndjson"
default_region = "US"
window = 300

[notifications]
[notifications.channels]
sms = "genesys"

[notifications.providers.genesys]
type = "genesys_agentless"
from = { sms = "+13175550100" }

[notifications.relay]
poll_ms = 50
base_delay_ms = 100
max_delay_ms = 1000
"#;

/// The sync step, run twice: the second run finds the list by its name and sends nothing.
const SYNC: [&str; 7] = [
    "sync",
    "--config",
    "feeds.toml",
    "--out",
    "sync",
    "--create-list",
    "dedupd demo",
];

/// The emulator's OAuth client (it is the demo's own; nothing real).
const CLIENT_ID: &str = "dedupd-demo";
const CLIENT_SECRET: &str = "dedupd-demo-secret";

/// Notifications the demo sends, each twice (a producer's retry), plus one key reused with
/// another text.
const NOTIFICATIONS: u64 = 20;

/// Runs the demo.
pub fn main(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    prepare(&args.dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let emu = rt.block_on(start_emulator(&args))?;
    let mut demo = Demo {
        dir: args.dir.clone(),
        exe: std::env::current_exe().context("cannot find the dedupd binary")?,
        base_url: emu.base_url(),
        rate: args.rate,
        step: 0,
    };
    say(format_args!(
        "dedupd demo: everything runs against a local Genesys Cloud emulator on {} ({} requests/min); files in {}.\n",
        demo.base_url,
        args.rate,
        args.dir.display()
    ));

    let ingest = demo.run(
        "ingest: three messy feeds (CSV, NDJSON, a JSON array) become one contact per customer",
        &["ingest", "--config", "feeds.toml", "--out", "ingest"],
        "ingest/contacts.csv (import-ready), ingest/rejects.ndjson (each refused row: line, field, reason)",
    )?;
    let sync = demo.run(
        "sync: the contacts go into an Outbound contact list (only real changes, never twice)",
        &SYNC,
        "sync/sync_report.json",
    )?;
    let resync = demo.run(
        "sync again: nothing changed, so nothing is sent, and the list is found by its name",
        &SYNC,
        "sync/sync_report.json (the same contact_list_id)",
    )?;
    let seeded = seed_external_contacts(&emu, &demo.dir.join("contacts.csv"))?;
    say(format_args!(
        "(The emulator now holds {seeded} External Contacts: the records of contacts.csv.)\n"
    ));
    let plan = demo.run(
        "merge plan: find the duplicate External Contacts of an export",
        &["merge", "plan", "--input", "contacts.csv", "--out", "plan"],
        "plan/plan.html (every cluster, least confident first), plan/clusters.csv",
    )?;
    say(format_args!(
        "Review step: `dedupd merge review --plan {}` serves the review page (approve, reject, split); \
         here the demo approves only clusters of confidence ≥ {} and leaves the rest for review.\n",
        demo.dir.join("plan").display(),
        args.min_confidence
    ));
    let confidence = args.min_confidence.to_string();
    let apply = demo.run(
        "merge apply: merge the approved clusters through the External Contacts API",
        &[
            "merge",
            "apply",
            "--plan",
            "plan",
            "--out",
            "apply",
            "--min-confidence",
            &confidence,
        ],
        "apply/apply_report.json, apply/apply_clusters.ndjson (one line per cluster)",
    )?;

    let mut serve = demo.serve()?;
    let traffic = rt.block_on(traffic(&serve.base, &demo.dir, &emu));
    let report = json!({
        "dir": demo.dir,
        "emulator": demo.base_url,
        "ingest": ingest,
        "sync": sync,
        "resync": resync,
        "external_contacts_seeded": seeded,
        "merge_plan": plan,
        "merge_apply": apply,
        "serve": traffic.as_ref().ok(),
        "seconds": started.elapsed().as_secs_f64(),
    });
    let traffic = match traffic {
        Ok(t) => t,
        Err(e) => {
            serve.stop();
            return Err(e);
        }
    };
    say(format_args!(
        "Messages: {} sent, {} PROCESS and {} SUPPRESS ({} as the stream's labels expect).\n\
         Notifications: {} accepted, {} retries answered from the outbox, {} key reused with \
         another text refused (422); {} delivered, each sent once by the emulator ({} SMS in all).\n\
         → look at {}/metrics and {}/openapi.json\n",
        traffic["messages"]["sent"],
        traffic["messages"]["process"],
        traffic["messages"]["suppress"],
        traffic["messages"]["as_labelled"],
        traffic["notifications"]["accepted"],
        traffic["notifications"]["replayed"],
        traffic["notifications"]["refused"],
        traffic["notifications"]["delivered"],
        traffic["notifications"]["sms_sent"],
        serve.base,
        serve.base,
    ));
    say(format_args!(
        "Done in {:.0} s. With --keep-running the emulator and the server stay up, and every \
         command above can be run again by hand in {} with GENESYS_BASE_URL={} \
         GENESYS_CLIENT_ID={CLIENT_ID} GENESYS_CLIENT_SECRET={CLIENT_SECRET}.",
        started.elapsed().as_secs_f64(),
        demo.dir.display(),
        demo.base_url
    ));
    crate::shared::output::report(&report)?;
    if args.keep_running {
        say(format_args!(
            "\nStill running: the emulator on {} and dedupd serve on {}. Try:\n  \
             curl -s {}/v1/messages -H 'content-type: application/json' -d '{{\"channel\":\"sms\",\"from\":\"+12017485260\",\"text\":\"Where is my order?\"}}'\n\
             Ctrl-C stops both.",
            demo.base_url, serve.base, serve.base
        ));
        rt.block_on(tokio::signal::ctrl_c())?;
    }
    serve.stop();
    rt.block_on(emu.shutdown());
    Ok(ExitCode::SUCCESS)
}

/// Makes `dir` the demo's: new, or an earlier demo's (replaced); never someone else's.
fn prepare(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let ours = dir.join(MARKER).is_file();
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !ours && !empty {
            bail!(
                "{} exists and is not a demo directory (no {MARKER} file): choose another with --dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot clear the earlier demo in {}", dir.display()))?;
    }
    for (name, text) in FILES
        .iter()
        .copied()
        .chain([("serve.toml", SERVE_TOML), (MARKER, "")])
    {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

async fn start_emulator(args: &DemoArgs) -> anyhow::Result<dedupd_emulator::RunningEmulator> {
    let cfg = dedupd_emulator::EmulatorConfig {
        rate_limit_per_minute: args.rate,
        clients: vec![(CLIENT_ID.into(), CLIENT_SECRET.into())],
        ..Default::default()
    };
    dedupd_emulator::RunningEmulator::start_on(cfg, ([127, 0, 0, 1], 0).into())
        .await
        .context("cannot start the emulator")
}

/// Loads the export's records into the emulator as External Contacts (what a real org would
/// already hold), so that the plan made from it can be applied.
fn seed_external_contacts(
    emu: &dedupd_emulator::RunningEmulator,
    export: &Path,
) -> anyhow::Result<usize> {
    let (body, _refused) = crate::shared::emulator_seed::external_contacts(export)?;
    let seeded = emu
        .state()
        .seed(&body)
        .map_err(|e| anyhow::anyhow!("cannot seed the emulator: {e}"))?;
    Ok(seeded["externalContacts"].as_array().map_or(0, Vec::len))
}

/// Prints a line of the demo's own on stderr (unless `--quiet`).
fn say(text: std::fmt::Arguments<'_>) {
    crate::shared::output::summary(text);
}

struct Demo {
    dir: PathBuf,
    exe: PathBuf,
    base_url: String,
    rate: u32,
    step: usize,
}

impl Demo {
    /// A `dedupd` child in the demo directory, with the emulator's endpoint and credentials.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.args(args)
            .current_dir(&self.dir)
            .env("GENESYS_BASE_URL", &self.base_url)
            .env("GENESYS_CLIENT_ID", CLIENT_ID)
            .env("GENESYS_CLIENT_SECRET", CLIENT_SECRET)
            .env("GENESYS_REQUESTS_PER_MINUTE", self.rate.to_string())
            .env_remove("GENESYS_REGION")
            .env_remove("DEDUPD_PLATFORM")
            .env_remove("DEDUPD_REDIS_URL")
            .env_remove("DEDUPD_POSTGRES_URL")
            .env_remove("DEDUPD_API_TOKEN")
            .env_remove("DEDUPD_WEBHOOK_SECRET");
        cmd
    }

    /// Runs one step: prints what it does and the command, runs it (its summary on stderr),
    /// says where to look, and returns its report (`--json`).
    fn run(&mut self, what: &str, args: &[&str], look: &str) -> anyhow::Result<Value> {
        self.step += 1;
        say(format_args!(
            "[{}] {what}\n$ dedupd {}",
            self.step,
            shell_words(args)
        ));
        let mut cmd = self.command(args);
        if crate::shared::output::quiet() {
            cmd.arg("--quiet");
        }
        let out = cmd
            .arg("--json")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run dedupd {}", args[0]))?;
        if !out.status.success() {
            bail!(
                "step {} (dedupd {}) failed with {}; its message is above",
                self.step,
                shell_words(args),
                out.status
            );
        }
        let look: Vec<String> = look
            .split(", ")
            .map(|l| format!("{}/{l}", self.dir.display()))
            .collect();
        say(format_args!("→ look at {}\n", look.join(", ")));
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("dedupd {} printed no JSON report", args[0]))
    }

    /// Starts `dedupd serve` on a free port and waits for its address.
    fn serve(&mut self) -> anyhow::Result<Serve> {
        self.step += 1;
        let args = ["serve", "--config", "serve.toml", "--listen", "127.0.0.1:0"];
        say(format_args!(
            "[{}] serve: the message gateway (one inbound message = one conversation) and \
             idempotent notifications (one business event = one notification)\n$ dedupd {}",
            self.step,
            shell_words(&args)
        ));
        let mut child = self
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start dedupd serve")?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("dedupd serve has no stdout")?;
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(base) = line.trim().strip_prefix("dedupd serve listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("dedupd serve did not start (it printed {:?})", line.trim());
        };
        Ok(Serve {
            base: base.to_owned(),
            child,
        })
    }
}

/// A running `dedupd serve`.
struct Serve {
    base: String,
    child: Child,
}

impl Serve {
    /// Stops the server gracefully (SIGTERM), or at once if that cannot be sent.
    fn stop(&mut self) {
        let id = self.child.id().to_string();
        let termed = Command::new("kill")
            .args(["-s", "TERM", &id])
            .status()
            .is_ok_and(|s| s.success());
        if !termed {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Sends the sample message stream and the demo's notifications through the server, waits for
/// every notification to be delivered, and counts what happened.
async fn traffic(
    base: &str,
    dir: &Path,
    emu: &dedupd_emulator::RunningEmulator,
) -> anyhow::Result<Value> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;

    let stream = std::fs::read_to_string(dir.join("messages.ndjson"))?;
    let (mut sent, mut process, mut suppress, mut as_labelled) = (0u64, 0u64, 0u64, 0u64);
    for line in stream.lines().filter(|l| !l.trim().is_empty()) {
        let m: Value = serde_json::from_str(line)?;
        let mut body = json!({
            "channel": m["channel"],
            "from": m["address"],
            "message_id": format!("demo-{}", m["seq"]),
        });
        if let Some(b64) = m.get("body_latin1_b64") {
            body["body_base64"] = b64.clone();
            body["charset"] = "iso-8859-1".into();
        } else {
            body["text"] = m["body"].clone();
        }
        let answer: Value = http
            .post(format!("{base}/v1/messages"))
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        sent += 1;
        let decision = answer["decision"].as_str().unwrap_or_default();
        match decision {
            "PROCESS" => process += 1,
            "SUPPRESS" => suppress += 1,
            _ => {}
        }
        if m["expect"].as_str() == Some(decision) {
            as_labelled += 1;
        }
    }

    let (mut accepted, mut replayed, mut refused) = (0u64, 0u64, 0u64);
    let to = |i: u64| format!("+1415555{:04}", 2600 + i);
    for round in 0..2 {
        for i in 0..NOTIFICATIONS {
            let resp = http
                .post(format!("{base}/v1/notifications"))
                .header("Idempotency-Key", format!("demo-order-{i}-shipped"))
                .json(&json!({"channel": "sms", "to": to(i), "text": format!("Order {i} has shipped.")}))
                .send()
                .await?;
            match (resp.status().as_u16(), round) {
                (202, 0) => accepted += 1,
                (202, _) if resp.headers().contains_key("idempotent-replayed") => replayed += 1,
                (status, _) => bail!("POST /v1/notifications answered {status}"),
            }
        }
    }
    let reused = http
        .post(format!("{base}/v1/notifications"))
        .header("Idempotency-Key", "demo-order-0-shipped")
        .json(&json!({"channel": "sms", "to": to(0), "text": "Order 0 was cancelled."}))
        .send()
        .await?;
    if reused.status().as_u16() == 422 {
        refused += 1;
    }

    // Delivery is asynchronous (the relay): wait, bounded, until every one is delivered.
    let deadline = Instant::now() + Duration::from_secs(60);
    let delivered = loop {
        let mut delivered = 0u64;
        for i in 0..NOTIFICATIONS {
            let s: Value = http
                .get(format!("{base}/v1/notifications/demo-order-{i}-shipped"))
                .send()
                .await?
                .json()
                .await?;
            if s["status"] == "delivered" {
                delivered += 1;
            }
        }
        if delivered == NOTIFICATIONS || Instant::now() > deadline {
            break delivered;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let sms_sent: usize = emu
        .state()
        .agentless_sends()
        .iter()
        .filter(|((address, _), _)| address.starts_with("+1415555"))
        .map(|(_, n)| n)
        .sum();
    Ok(json!({
        "messages": {"sent": sent, "process": process, "suppress": suppress, "as_labelled": as_labelled},
        "notifications": {
            "accepted": accepted,
            "replayed": replayed,
            "refused": refused,
            "delivered": delivered,
            "sms_sent": sms_sent,
        },
    }))
}

/// The arguments as a shell would need them (quoted where they hold a space).
fn shell_words(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                (*a).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
