//! `dedupd-bench sync --contacts N`: `dedupd sync` of N contacts (see
//! `dedupd_testdata::list`) through the in-process emulator at its rate limit, against the
//! theoretical minimum time that limit allows.

use anyhow::Context;
use dedupd_store::{EmbeddedStore, StoredContact};

pub(crate) fn run(
    contacts: u64,
    rate: u32,
    batch_size: usize,
    concurrency: usize,
    progress: bool,
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
