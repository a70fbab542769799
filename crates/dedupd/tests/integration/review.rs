//! `dedupd merge review` in a real browser (headless Chromium driven by ChromeDriver over W3C
//! WebDriver): a steward approves, rejects, splits, changes a survivor and a merged value, and
//! `merge apply` then leaves the emulator's contacts exactly as decided. Once through the
//! server (each decision saved into decisions.json at once), once with the page opened as a
//! file and its decisions exported as a download.
//!
//! Screenshots (top of the page, a doubtful cluster open, a search) are written to
//! `$CARGO_TARGET_TMPDIR/review-screenshots/`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use dedupd::shared::plan_file::{Decisions, FieldComparison, PairExplanation, Plan, PlanFile};
use dedupd::shared::review::{PageMeta, write_file};
use dedupd_emulator::RunningEmulator;
use serde_json::{Value, json};

use super::merge_apply::{
    ID, SECRET, assert_merged_once, assert_untouched, contact, emulator_config, ndjson, seed,
    setup_client, write_plan,
};

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns `Some` (at most ~30 s of 50 ms steps): a wait on a condition.
async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..600 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The few W3C WebDriver commands the test needs, over HTTP.
struct Driver {
    http: reqwest::Client,
    base: String,
    _chromedriver: Killed,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Driver {
    /// Starts ChromeDriver and a headless Chromium session that downloads into `downloads`.
    /// `None` when Chromium is not installed and CI is not set (CI installs it).
    async fn start(downloads: &Path) -> Option<Driver> {
        let chrome = std::env::var("CHROME_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let driver =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        if !Path::new(&chrome).exists() || !Path::new(&driver).exists() {
            assert!(
                std::env::var("CI").is_err(),
                "CI=true but {chrome} or {driver} is missing (apt-get install chromium chromium-driver)"
            );
            eprintln!("skipped: {chrome} or {driver} is not installed");
            return None;
        }
        let port = free_port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let http = reqwest::Client::new();
        let server = format!("http://127.0.0.1:{port}");
        let status = format!("{server}/status");
        until("chromedriver", async || {
            let r = http.get(&status).send().await.ok()?;
            let v: Value = r.json().await.ok()?;
            v["value"]["ready"].as_bool().filter(|r| *r)
        })
        .await;
        let profile = downloads.with_file_name("chrome-profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--window-size=1400,1000",
                         format!("--user-data-dir={}", profile.display())],
                "prefs": {"download.default_directory": downloads.display().to_string(),
                          "download.prompt_for_download": false}
            }
        }}});
        let r: Value = http
            .post(format!("{server}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"));
        Some(Driver {
            base: format!("{server}/session/{id}"),
            http,
            _chromedriver: Killed(child),
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if !body.is_null() {
            req = req.json(&body);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(
            v["value"].get("error").is_none(),
            "WebDriver {path}: {}",
            v["value"]
        );
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    /// Clicks the element; found again if the page redrew it in between (a stale reference).
    async fn click(&self, css: &str) {
        for _ in 0..20 {
            let e = self.find(css).await;
            let r: Value = self
                .http
                .post(format!("{}/element/{e}/click", self.base))
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            match r["value"]["error"].as_str() {
                None => return,
                Some("stale element reference") => continue,
                Some(_) => panic!("WebDriver click {css}: {}", r["value"]),
            }
        }
        panic!("{css} kept going stale");
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            json!({"text": text}),
        )
        .await;
    }

    /// Presses one key on whatever has the focus (the page's keyboard shortcuts).
    async fn press(&self, key: &str) {
        let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]});
        self.call(reqwest::Method::POST, "/actions", actions).await;
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    async fn screenshot(&self, path: &Path) {
        let v = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }

    async fn quit(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("review-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sel(cluster: &str, rest: &str) -> String {
    format!(r#".c[data-cid="{cluster}"] {rest}"#)
}

/// The plan of the scenario: four clusters of sizes 2, 2, 3, 3 with confidences 0.99, 0.6,
/// 0.8 and 0.9 (so the page orders them 1, 2, 3, 0), each member with its own e-mail and
/// phone; cluster 1 explains its link.
fn plan_for(dir: &Path, clusters: &[Vec<String>]) -> Plan {
    write_plan(dir, clusters);
    let mut plan = Plan::load(dir).unwrap();
    for (c, conf) in plan.clusters.iter_mut().zip([0.99, 0.6, 0.8, 0.9]) {
        c.confidence = conf;
    }
    plan.clusters[1].pairs = vec![PairExplanation {
        a: clusters[1][0].clone(),
        b: clusters[1][1].clone(),
        probability: 0.6,
        weight: 0.6,
        fields: vec![
            FieldComparison {
                field: "last_name".into(),
                level: "exact".into(),
                weight: 7.5,
            },
            FieldComparison {
                field: "email".into(),
                level: "different".into(),
                weight: -6.9,
            },
        ],
    }];
    plan.save(dir).unwrap();
    plan
}

/// Drives the page at `url` through the steward's decisions on `plan`.
async fn decide(wd: &Driver, url: &str, plan: &Plan, shots: Option<&Path>) {
    let id = |c: usize| plan.clusters[c].cluster_id.clone();
    let member = |c: usize, m: usize| plan.clusters[c].members[m].record_id.clone();
    wd.goto(url).await;
    let total = wd
        .script("return document.getElementById('reviewed').textContent")
        .await;
    assert_eq!(total, "Reviewed 0 of 4");
    if let Some(dir) = shots {
        wd.screenshot(&dir.join("1-top.png")).await;
    }
    // Cluster 0 (0.99): bulk approve at 0.95 approves it alone.
    wd.click("#bulk").await;
    // Cluster 1 (0.6, the most doubtful): opened, looked at, rejected.
    wd.click(&sel(&id(1), ".sum")).await;
    if let Some(dir) = shots {
        wd.screenshot(&dir.join("2-doubtful-cluster.png")).await;
    }
    let why = wd
        .script("return document.querySelector('.why').textContent")
        .await;
    assert!(
        why.as_str()
            .unwrap()
            .contains("The last names are the same"),
        "{why}"
    );
    wd.click(&sel(&id(1), "button[data-act=reject]")).await;
    // Cluster 2: its third member moved out, the rest split off and merged.
    wd.click(&sel(&id(2), ".sum")).await;
    wd.click(&sel(
        &id(2),
        &format!(
            r#"select.group[data-id="{}"] option[value=out]"#,
            member(2, 2)
        ),
    ))
    .await;
    wd.click(&sel(&id(2), "button[data-act=split]")).await;
    // Cluster 3: another survivor, the third member's phone as the merged phone, approved
    // with the keyboard.
    wd.click(&sel(&id(3), ".sum")).await;
    wd.click(&sel(
        &id(3),
        &format!(r#"input.survivor[value="{}"]"#, member(3, 1)),
    ))
    .await;
    let phone = plan.clusters[3].members[2].fields.phone.clone().unwrap();
    wd.click(&sel(
        &id(3),
        &format!(r#"select.override[data-field=phone] option[value="{phone}"]"#),
    ))
    .await;
    wd.click(&sel(&id(3), ".actions .note")).await;
    wd.press("a").await;
    // Search by e-mail: the match is highlighted.
    let email = plan.clusters[3].members[0].fields.email.clone().unwrap();
    wd.type_into("#q", &email).await;
    let marked = wd
        .script("return Array.from(document.querySelectorAll('mark')).map(m => m.textContent)")
        .await;
    assert!(
        marked
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == email.as_str()),
        "{marked}"
    );
    if let Some(dir) = shots {
        wd.screenshot(&dir.join("3-search.png")).await;
    }
    let total = wd
        .script("return document.getElementById('reviewed').textContent")
        .await;
    assert_eq!(total, "Reviewed 4 of 4");
}

/// Applies the plan in `dir` (decisions.json beside it) and checks the emulator holds exactly
/// the decisions.
fn apply_and_check(emu: &RunningEmulator, dir: &Path, plan: &Plan, clusters: &[Vec<String>]) {
    let status = Command::new(env!("CARGO_BIN_EXE_dedupd"))
        .args(["--quiet", "merge", "apply", "--plan"])
        .arg(dir)
        .arg("--state")
        .arg(dir.join("state"))
        .arg("--out")
        .arg(dir.join("out"))
        .env("GENESYS_BASE_URL", emu.base_url())
        .env("GENESYS_CLIENT_ID", ID)
        .env("GENESYS_CLIENT_SECRET", SECRET)
        .status()
        .unwrap();
    assert!(status.success(), "merge apply: {status}");
    // Approved by the bulk approval: merged.
    assert_merged_once(emu, &clusters[0], 1);
    // Rejected: untouched.
    for id in &clusters[1] {
        assert_untouched(emu, id);
    }
    // Split: the first two merged, the third left as it was.
    assert_merged_once(emu, &clusters[2][..2], 1);
    assert_untouched(emu, &clusters[2][2]);
    // Another survivor and another phone: merged with that phone first.
    let head = assert_merged_once(emu, &clusters[3], 1);
    let phone = plan.clusters[3].members[2].fields.phone.clone().unwrap();
    assert_eq!(contact(emu, &head)["cellPhone"]["e164"], phone.as_str());

    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.join("out/apply_report.json")).unwrap()).unwrap();
    assert!(report["approval"].as_str().unwrap().starts_with("reviewed"));
    assert_eq!(
        (
            &report["to_merge"],
            &report["rejected"],
            &report["split_off_members"]
        ),
        (&json!(3), &json!(1), &json!(1))
    );
    assert_eq!(
        report["rejected_clusters"][0],
        plan.clusters[1].cluster_id.as_str()
    );
    let lines = ndjson(&dir.join("out/apply_clusters.ndjson"));
    assert_eq!(lines.iter().filter(|l| l["outcome"] == "merged").count(), 3);
    assert!(
        lines.iter().any(|l| l["outcome"] == "rejected"
            && l["cluster_id"] == plan.clusters[1].cluster_id.as_str())
    );
    // The journal names the decision each merge carried out.
    let journal = std::fs::read_dir(dir.join("state/merge/journal"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    assert_eq!(
        journal.matches(r#""basis":"approved""#).count(),
        2,
        "{journal}"
    );
    assert_eq!(
        journal.matches(r#""basis":"split""#).count(),
        1,
        "{journal}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steward_decides_in_the_browser_and_apply_merges_exactly_that() {
    let tmp = tempfile::tempdir().unwrap();
    let downloads = tmp.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let Some(wd) = Driver::start(&downloads).await else {
        return;
    };
    let shots = screenshots();

    // Through the server: every decision saved into decisions.json at once.
    let emu = RunningEmulator::start(emulator_config()).await.unwrap();
    let clusters = seed(&setup_client(&emu).await, &[2, 2, 3, 3]).await;
    let dir = tmp.path().join("served");
    let plan = plan_for(&dir, &clusters);
    let mut server = Command::new(env!("CARGO_BIN_EXE_dedupd"))
        .args(["merge", "review", "--plan"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let server = Killed(server);
    let url = url.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    decide(&wd, &url, &plan, Some(&shots)).await;
    let saved = until("four saved decisions", async || {
        let d: Decisions =
            serde_json::from_slice(&std::fs::read(dir.join("decisions.json")).ok()?).ok()?;
        (d.decisions.len() == 4).then_some(d)
    })
    .await;
    assert!(saved.decisions.values().any(|d| d.members.len() == 3
        && matches!(d.action, dedupd::shared::plan_file::Action::Split { .. })));
    // A decision the plan cannot carry out is refused with the envelope, naming the key.
    let bad = reqwest::Client::new()
        .post(format!("{url}api/decisions"))
        .json(&json!({"decisions": {plan.clusters[0].cluster_id.clone(): {
            "members": plan.clusters[0].sorted_ids(), "action": "approve", "survivor": "nobody"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(
        body["error"]["field"],
        format!("decisions.{}.survivor", plan.clusters[0].cluster_id)
    );
    drop(server);
    apply_and_check(&emu, &dir, &plan, &clusters);

    // The page opened as a file: decisions kept in the browser, exported as a download.
    let emu = RunningEmulator::start(emulator_config()).await.unwrap();
    let clusters = seed(&setup_client(&emu).await, &[2, 2, 3, 3]).await;
    let dir = tmp.path().join("file");
    let plan = plan_for(&dir, &clusters);
    let meta = PageMeta::new(&plan.input, plan.generated_at, 4, 4, false);
    write_file(
        &dir.join("plan.html"),
        &meta,
        &plan.clusters,
        &Decisions::default(),
    )
    .unwrap();
    decide(
        &wd,
        &format!("file://{}", dir.join("plan.html").display()),
        &plan,
        None,
    )
    .await;
    wd.click("#export").await;
    let exported = downloads.join("decisions.json");
    until("the exported decisions", async || {
        let d: Decisions = serde_json::from_slice(&std::fs::read(&exported).ok()?).ok()?;
        (d.decisions.len() == 4).then_some(())
    })
    .await;
    std::fs::copy(&exported, dir.join("decisions.json")).unwrap();
    wd.quit().await;
    apply_and_check(&emu, &dir, &plan, &clusters);
}

/// `dedupd emulator --seed-external-contacts FILE`: the export's records become External
/// Contacts (record_id = contact id); refused rows are named by line and reason, the rest kept.
#[test]
fn the_emulator_seeds_external_contacts_from_an_export_and_names_what_it_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("contacts.csv");
    std::fs::write(
        &file,
        "record_id,first_name,last_name,email,phone\n\
         A1,Ann,Lee,ann@x.com,+14155552671\n\
         ,Bob,Roe,bob@x.com,\n\
         A3,Cy,Poe,not-an-email,+14155550000\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dedupd"))
        .args(["emulator", "--port", "0", "--seed-external-contacts"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let child = Killed(child);
    let mut said = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let started = line.contains("emulator on http://");
        said.push(line);
        if started {
            break;
        }
    }
    drop(child);
    let said = said.join("\n");
    assert!(said.contains("line 3: record_id"), "{said}");
    assert!(said.contains("line 4 (record A3): email"), "{said}");
    assert!(said.contains("Seeded 2 External Contacts"), "{said}");
    assert!(
        !said.contains("not-an-email"),
        "no values in the messages: {said}"
    );
}
