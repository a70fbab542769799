//! `dedupd-bench merge-apply --clusters N`: `merge apply` of N clusters (see
//! `dedupd_testdata::clusters`) through the in-process emulator at a rate budget, against the
//! most clusters per minute that budget allows.
//!
//! Each cluster costs one bulk fetch (pre-flight) plus one merge per chunk of
//! `--max-ids-per-merge` ids, so at `R` requests per minute the ceiling is
//! `R / (1 + merges per cluster)` clusters per minute. Seeding uses a second OAuth client with
//! its own budget, so it does not count.
//!
//! `--platform cxone` runs the same job (`dedupd::jobs::merge_apply::run`, generic over the
//! directory seam) on the CXone emulator, its cards seeded through the admin seed (no API
//! cost). There a merge takes one source card, and each costs more than one request (the
//! survivor's `dedupd_absorbed` mark, the merge, the resolved values), and the pre-flight
//! reads one card per request: the figure to compare is the share of the budget used.

use std::time::Instant;

use anyhow::Context;
use dedupd_emulator::{EmulatorConfig, RunningEmulator};
use dedupd_genesys::{
    ClientConfig, Endpoint, ExternalContact, GenesysClient, PhoneNumber, SecretString,
};

use dedupd::jobs::merge_apply::{self as apply, Options};
use dedupd::shared::plan_file::{
    Cluster, Fields, Member, PLAN_VERSION, Plan, PlanFile, cluster_id,
};
use dedupd_merge::planned_requests;
use dedupd_testdata::clusters::{self as synthetic, Seed};

/// Contacts per bulk add while seeding.
const SEED_BATCH: usize = 50;

/// Settings of one benchmark run.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Clusters to merge.
    pub(crate) clusters: usize,
    /// Largest cluster: sizes cycle through 2..=max_size.
    pub(crate) max_size: usize,
    /// The emulator's per-token limit and the client's budget, requests per minute.
    pub(crate) rate: u32,
    /// Clusters worked on at once.
    pub(crate) concurrency: usize,
    /// Contact ids per merge request.
    pub(crate) max_ids_per_merge: usize,
    /// Progress bar.
    pub(crate) progress: bool,
    /// Whose emulator.
    pub(crate) platform: dedupd::shared::platform::PlatformKind,
}

/// The stand-in the run merges on.
enum Stand {
    Genesys(RunningEmulator, Endpoint),
    Cxone(dedupd_emulator::cxone::RunningCxoneEmulator),
}

impl Stand {
    fn stats(&self) -> dedupd_emulator::Stats {
        match self {
            Stand::Genesys(e, _) => e.state().stats(),
            Stand::Cxone(e) => e.state().stats(),
        }
    }

    async fn shutdown(self) {
        match self {
            Stand::Genesys(e, _) => e.shutdown().await,
            Stand::Cxone(e) => e.shutdown().await,
        }
    }
}

/// CXone: the clusters' cards seeded through the emulator's admin seed (ids `B<cluster>-<m>`).
async fn seed_cxone(s: &Settings, sizes: &[usize]) -> anyhow::Result<(Stand, Vec<Vec<String>>)> {
    use dedupd_emulator::cxone::{
        CxoneEmulatorConfig, CxoneSeed, RunningCxoneEmulator, SeedCustomer,
    };
    let emu = RunningCxoneEmulator::start(CxoneEmulatorConfig {
        rate_limit_per_minute: s.rate,
        ..CxoneEmulatorConfig::default()
    })
    .await?;
    let mut customers = Vec::new();
    let mut ids = Vec::new();
    for seed in synthetic::seeds(sizes) {
        let id = format!("B{:06}-{}", seed.cluster, seed.member);
        if ids.len() <= seed.cluster {
            ids.resize(seed.cluster + 1, Vec::new());
        }
        ids[seed.cluster].push(id.clone());
        customers.push(SeedCustomer {
            id: Some(id),
            first_name: Some(seed.first_name.clone()),
            surname: Some(seed.last_name.clone()),
            emails: vec![seed.email.clone()],
            phones: vec![seed.phone.clone()],
            ..SeedCustomer::default()
        });
    }
    emu.state().seed(&CxoneSeed {
        customers,
        ..CxoneSeed::default()
    })?;
    Ok((Stand::Cxone(emu), ids))
}

/// Runs the benchmark and prints a Markdown table row.
pub(crate) fn run(s: &Settings) -> anyhow::Result<()> {
    if s.max_size < 2 {
        anyhow::bail!("--max-size must be at least 2");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench(s))
}

async fn bench(s: &Settings) -> anyhow::Result<()> {
    let sizes = synthetic::sizes(s.clusters, s.max_size);
    let seeded = std::time::Instant::now();
    let (stand, ids) = match s.platform {
        dedupd::shared::platform::PlatformKind::Genesys => seed_genesys(s, &sizes).await?,
        dedupd::shared::platform::PlatformKind::Cxone => seed_cxone(s, &sizes).await?,
    };
    let seed_seconds = seeded.elapsed().as_secs_f64();
    apply_on(s, stand, ids, seed_seconds).await
}

/// Genesys: the clusters' contacts created through the API by a second client.
async fn seed_genesys(s: &Settings, sizes: &[usize]) -> anyhow::Result<(Stand, Vec<Vec<String>>)> {
    let (id, secret, setup_id) = ("bench", "bench-secret", "bench-setup");
    // `id` is the client the run merges with (see `apply_on`), `setup_id` the seeding one.
    let emu = RunningEmulator::start(EmulatorConfig {
        rate_limit_per_minute: s.rate,
        clients: vec![(id.into(), secret.into()), (setup_id.into(), secret.into())],
        ..EmulatorConfig::default()
    })
    .await?;
    let endpoint = Endpoint::base_url(&emu.base_url())?;
    // The setup client has its own token, hence its own per-token window: seeding is not
    // limited by the budget under test, only paced by its own (high) budget.
    let mut setup_cfg = ClientConfig::new(endpoint.clone(), setup_id, SecretString::from(secret));
    setup_cfg.requests_per_minute = s.rate.max(60_000);
    let setup = GenesysClient::new(setup_cfg).await?;
    let mut ids: Vec<Vec<Option<String>>> = sizes.iter().map(|n| vec![None; *n]).collect();
    let all = synthetic::seeds(sizes);
    for chunk in all.chunks(SEED_BATCH) {
        let contacts: Vec<ExternalContact> = chunk
            .iter()
            .map(|seed| ExternalContact {
                first_name: Some(seed.first_name.clone()),
                last_name: Some(seed.last_name.clone()),
                work_email: Some(seed.email.clone()),
                cell_phone: Some(PhoneNumber::e164(seed.phone.clone())),
                ..ExternalContact::default()
            })
            .collect();
        // Results come back in any order: match them by their (unique) e-mail.
        let res = setup.external_contacts().bulk_add(&contacts).await?;
        for r in res.results {
            let entity = r
                .entity
                .context("a seeded contact came back without its entity")?;
            let address = entity.work_email.clone().unwrap_or_default();
            let Seed {
                cluster: c,
                member: m,
                ..
            } = chunk
                .iter()
                .find(|seed| seed.email == address)
                .context("a seeded contact came back with another e-mail")?;
            ids[*c][*m] = entity.id;
        }
    }
    let ids: Vec<Vec<String>> = ids
        .into_iter()
        .map(|members| members.into_iter().collect::<Option<Vec<_>>>())
        .collect::<Option<_>>()
        .context("seeding failed: some contacts were not created")?;
    Ok((Stand::Genesys(emu, endpoint), ids))
}

/// Plans the seeded clusters and runs `merge apply` on the stand-in.
async fn apply_on(
    s: &Settings,
    stand: Stand,
    ids: Vec<Vec<String>>,
    seed_seconds: f64,
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let clusters: Vec<Cluster> = ids
        .into_iter()
        .enumerate()
        .map(|(c, members)| {
            let members: Vec<Member> = members
                .into_iter()
                .enumerate()
                .map(|(m, id)| Member {
                    record_id: id,
                    source: Some("bench".into()),
                    updated_at: None,
                    fields: Fields {
                        first_name: Some(synthetic::first_name(c)),
                        email: Some(synthetic::email(c, m)),
                        ..Fields::default()
                    },
                })
                .collect();
            Cluster {
                cluster_id: cluster_id(members.iter().map(|m| m.record_id.as_str())),
                confidence: 0.9,
                survivor: members[0].record_id.clone(),
                resolved: members[0].fields.clone(),
                members,
                extra_values: Default::default(),
                generic_values: Default::default(),
                doubtful: Vec::new(),
                pairs: Vec::new(),
            }
        })
        .collect();
    let merges: usize = clusters
        .iter()
        .map(|c| planned_requests(&c.sorted_ids(), s.max_ids_per_merge).len())
        .sum();
    Plan {
        version: PLAN_VERSION,
        generated_at: chrono::Utc::now(),
        input: "bench".into(),
        clusters,
    }
    .save(tmp.path())?;

    let platform = match &stand {
        Stand::Genesys(_, endpoint) => {
            let mut client = ClientConfig::new(
                endpoint.clone(),
                "bench",
                SecretString::from("bench-secret"),
            );
            client.requests_per_minute = s.rate;
            dedupd::shared::platform::Platform::Genesys(Box::new(client))
        }
        Stand::Cxone(emu) => {
            let mut c = dedupd_cxone::CxoneConfig::stand_in(
                &emu.base_url(),
                "dedupd-demo",
                "dedupd-demo-secret".to_owned(),
                "dedupd-demo-key",
                "dedupd-demo-key-secret".to_owned(),
            )?;
            c.requests_per_minute = s.rate;
            dedupd::shared::platform::Platform::Cxone(Box::new(
                dedupd::shared::platform::CxoneSetup {
                    config: c,
                    skill_id: None,
                    dnc_group_id: None,
                },
            ))
        }
    };
    let mut opts = Options::new(
        tmp.path().to_owned(),
        tmp.path().join("state"),
        tmp.path().join("out"),
        platform,
    );
    opts.approve = dedupd::jobs::merge_apply::Approve::All;
    opts.concurrency = s.concurrency;
    // CXone takes one source per merge: its capability sets the cap.
    opts.max_ids_per_merge = matches!(stand, Stand::Genesys(..)).then_some(s.max_ids_per_merge);
    opts.progress = s.progress;
    let started = Instant::now();
    let report = apply::run(&opts).await?;
    let seconds = started.elapsed().as_secs_f64();
    let stats = stand.stats();
    let per_minute = report.merged as f64 * 60.0 / seconds;
    let used = report.calls.api_calls as f64 * 60.0 / seconds / f64::from(s.rate);
    // Genesys: one pre-flight fetch per cluster plus its merges, evenly paced at the budget.
    // CXone: no fixed count per cluster (see the module docs): the budget used says it.
    let (ceiling, of_ceiling) = match &stand {
        Stand::Genesys(..) => {
            let needed = s.clusters + merges;
            let ceiling = s.clusters as f64 * f64::from(s.rate) / needed as f64;
            (
                format!("{ceiling:.1}"),
                format!("{:.1} %", 100.0 * per_minute / ceiling),
            )
        }
        Stand::Cxone(_) => ("—".to_owned(), "—".to_owned()),
    };
    let name = match &stand {
        Stand::Genesys(..) => "genesys",
        Stand::Cxone(_) => "cxone",
    };
    println!(
        "| platform | clusters | contacts | merges | rate/min | API calls | 429s | merged | wall s | clusters/min | ceiling/min | of ceiling | budget used | seed s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {name} | {} | {} | {} | {} | {} | {} | {} | {seconds:.1} | {per_minute:.1} | {ceiling} | {of_ceiling} | {:.1} % | {seed_seconds:.1} |",
        report.clusters,
        report.contacts,
        report.merge_requests,
        s.rate,
        report.calls.api_calls,
        stats.too_many_requests_sent,
        report.merged,
        100.0 * used,
    );
    stand.shutdown().await;
    if report.merged != report.clusters {
        anyhow::bail!(
            "only {} of {} clusters were merged: {report:?}",
            report.merged,
            report.clusters
        );
    }
    Ok(())
}
