//! `dedupd-bench sync --contacts N [--platform genesys|cxone]`: `dedupd sync` of N contacts
//! (see `dedupd_testdata::list`) through the in-process emulator of the platform at its rate
//! limit. The job is the same for both platforms (`dedupd::jobs::sync::run`, generic over the
//! list seam); only the stand-in and the target list differ.
//!
//! Genesys: one add-contacts request per batch, so the least time the budget allows is one
//! interval of 60/rate seconds per batch. CXone: a batch is several requests (remove-prospects,
//! the DNC write, the upload, its job polls, the list's counts), so the figure to compare is
//! the share of the budget the run used (API calls per minute / rate).

use anyhow::Context;
use dedupd::shared::platform::PlatformKind;
use dedupd_store::{EmbeddedStore, StoredContact};

pub(crate) fn run(
    contacts: u64,
    rate: u32,
    batch_size: usize,
    concurrency: usize,
    progress: bool,
    platform: PlatformKind,
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let config = dedupd::shared::feeds::Config::parse(
        dedupd_testdata::list::LIST_CONFIG,
        &tmp.path().join("bench.toml"),
    )?;
    {
        let store = EmbeddedStore::open(&tmp.path().join("state"))?;
        let mut w = store.writer(20_000);
        for contact in dedupd_testdata::list::contacts(contacts)? {
            w.put(StoredContact::new(contact?))?;
        }
        w.finish()?;
    } // the store closes here: sync opens it itself

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if platform == PlatformKind::Cxone {
        return rt.block_on(cxone(
            config,
            tmp.path(),
            rate,
            batch_size,
            concurrency,
            progress,
        ));
    }
    rt.block_on(async {
        let (id, secret, setup) = ("bench", "bench-secret", "bench-setup");
        let emu = dedupd_emulator::RunningEmulator::start(dedupd_emulator::EmulatorConfig {
            rate_limit_per_minute: rate,
            clients: vec![(id.into(), secret.into()), (setup.into(), secret.into())],
            ..Default::default()
        })
        .await?;
        let endpoint = dedupd_genesys::Endpoint::base_url(&emu.base_url())?;
        let setup_client = dedupd_genesys::GenesysClient::new(dedupd_genesys::ClientConfig::new(
            endpoint.clone(),
            setup,
            dedupd_genesys::SecretString::from(secret),
        ))
        .await?;
        let list = setup_client
            .outbound()
            .create_contact_list(&dedupd_genesys::ContactList::new("bench", config.csv_columns.clone()))
            .await?;
        let list_id = list.id.context("no list id")?;
        let mut client = dedupd_genesys::ClientConfig::new(endpoint, id, dedupd_genesys::SecretString::from(secret));
        client.requests_per_minute = rate;
        let opts = dedupd::jobs::sync::Options {
            config,
            state_dir: tmp.path().join("state"),
            out_dir: tmp.path().join("out"),
            target: dedupd::jobs::sync::Target::List(list_id.clone()),
            platform: dedupd::shared::platform::Platform::Genesys(Box::new(client)),
            batch_size,
            concurrency,
            dry_run: false,
            progress,
        };
        let report = dedupd::jobs::sync::run(&opts).await?;
        let stats = emu.state().stats();
        let on_list = emu.state().contact_list_contacts(&list_id).map_or(0, |v| v.len());
        // Evenly paced at the limit, each add-contacts request after the first API call (the
        // list check) needs one interval of 60/rate seconds: that is the least time the budget
        // allows for the send phase.
        let requests = report.calls.api_calls;
        let minimum = report.batches as f64 * 60.0 / f64::from(rate);
        println!(
            "| contacts | batch | rate/min | API calls | 429s | on the list | wall s | send s | theoretical min s | budget used |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        println!(
            "| {} | {batch_size} | {rate} | {requests} | {} | {on_list} | {:.1} | {:.1} | {minimum:.1} | {:.1} % |",
            report.accepted,
            stats.too_many_requests_sent,
            report.elapsed_seconds,
            report.send_seconds,
            if report.send_seconds > 0.0 { 100.0 * minimum / report.send_seconds } else { 0.0 },
        );
        emu.shutdown().await;
        anyhow::Ok(())
    })
}

/// The same sync into a CXone calling list created by the job, do-not-call numbers into a DNC
/// group.
async fn cxone(
    config: dedupd::shared::feeds::Config,
    dir: &std::path::Path,
    rate: u32,
    batch_size: usize,
    concurrency: usize,
    progress: bool,
) -> anyhow::Result<()> {
    use dedupd_emulator::cxone::{
        CxoneEmulatorConfig, CxoneSeed, RunningCxoneEmulator, SeedDncGroup,
    };
    let emu = RunningCxoneEmulator::start(CxoneEmulatorConfig {
        rate_limit_per_minute: rate,
        ..CxoneEmulatorConfig::default()
    })
    .await?;
    let group = emu
        .state()
        .seed(&CxoneSeed {
            dnc_groups: vec![SeedDncGroup {
                dnc_group_name: "bench".into(),
                ..SeedDncGroup::default()
            }],
            ..CxoneSeed::default()
        })?
        .dnc_groups[0];
    let mut c = dedupd_cxone::CxoneConfig::stand_in(
        &emu.base_url(),
        "dedupd-demo",
        "dedupd-demo-secret".to_owned(),
        "dedupd-demo-key",
        "dedupd-demo-key-secret".to_owned(),
    )?;
    c.requests_per_minute = rate;
    let platform =
        dedupd::shared::platform::Platform::Cxone(Box::new(dedupd::shared::platform::CxoneSetup {
            config: c,
            skill_id: Some(4242),
            dnc_group_id: Some(group.to_string()),
        }));
    let opts = dedupd::jobs::sync::Options {
        config,
        state_dir: dir.join("state"),
        out_dir: dir.join("out"),
        target: dedupd::jobs::sync::Target::Create("bench".into()),
        platform,
        batch_size,
        concurrency,
        dry_run: false,
        progress,
    };
    let report = dedupd::jobs::sync::run(&opts).await?;
    let stats = emu.state().stats();
    let on_list: usize = emu
        .state()
        .calling_lists()
        .iter()
        .filter(|l| l["listName"] == "bench")
        .map(|l| l["records"].as_array().map_or(0, Vec::len))
        .sum();
    let requests = report.calls.api_calls;
    let used =
        requests as f64 * 60.0 / f64::from(rate) / report.send_seconds.max(f64::MIN_POSITIVE);
    println!(
        "| platform | contacts | batch | rate/min | API calls | calls/batch | 429s | on the list | DNC | wall s | send s | budget used |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| cxone | {} | {} | {rate} | {requests} | {:.1} | {} | {on_list} | {} | {:.1} | {:.1} | {:.1} % |",
        report.accepted,
        batch_size.min(dedupd_cxone::seams::list::MAX_BATCH),
        requests as f64 / report.batches.max(1) as f64,
        stats.too_many_requests_sent,
        report.do_not_call,
        report.elapsed_seconds,
        report.send_seconds,
        100.0 * used,
    );
    emu.shutdown().await;
    Ok(())
}
