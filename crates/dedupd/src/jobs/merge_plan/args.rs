//! The command line of `dedupd merge plan`: its flags (the platform's flattened in), and the
//! command that runs the job and prints its summary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Flags of `dedupd merge plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The export (CSV or NDJSON; `-` for stdin). Overrides [input] path of the config.
    #[arg(long, short)]
    pub input: Option<PathBuf>,
    /// Merge config (TOML): [input] layout and [matching] settings.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Output directory (created if missing).
    #[arg(long, short, default_value = "merge-plan")]
    pub out: PathBuf,
    /// Most clusters on plan.html, the least confident first; the page says when it holds
    /// fewer than the plan (plan.json and `dedupd merge review` have them all).
    #[arg(long, default_value_t = 10_000)]
    pub html_limit: usize,
    /// Read the contacts from Genesys Cloud External Contacts (a cursor scan of every
    /// contact) instead of a file. Credentials as for `sync`: GENESYS_CLIENT_ID,
    /// GENESYS_CLIENT_SECRET (environment only), --base-url or --region.
    #[arg(long, conflicts_with_all = ["input", "from_cxone"])]
    pub from_genesys: bool,
    /// Read the contacts from NICE CXone customer cards (a scan of every card; identities
    /// become e-mails and phones) instead of a file. Credentials from CXONE_* variables
    /// (README), --base-url for a stand-in.
    #[arg(long, conflicts_with = "input")]
    pub from_cxone: bool,
    /// Also write the resolution index into this directory (created if missing; what it held
    /// is replaced), for `dedupd serve --resolve-index DIR` (`POST /v1/contacts/resolve`).
    #[arg(long, value_name = "DIR")]
    pub resolve_index: Option<PathBuf>,
    /// Also write the resolution index into PostgreSQL (DEDUPD_POSTGRES_URL; what it held is
    /// replaced), for `dedupd serve --resolve-postgres`.
    #[arg(long, conflicts_with = "resolve_index")]
    pub resolve_postgres: bool,
    /// With --resolve-postgres: the schema of its tables [default: the search path].
    #[arg(long, requires = "resolve_postgres", value_name = "NAME")]
    pub resolve_schema: Option<String>,
    /// Resolve the records of --input (new or changed since the index was built) against the
    /// index in --resolve-index or --resolve-postgres, one by one, record them there, and
    /// write the plan files for the customers that changed only: a new record that joins a
    /// known customer becomes a merge of that record into it; a known record with other values
    /// is taken out of its customer and resolved again (report.json lists the ones that
    /// moved). Nothing else is matched again.
    #[arg(long, conflicts_with_all = ["from_genesys", "from_cxone"])]
    pub incremental: bool,
    /// With --incremental: only the records updated at or after this time (RFC 3339, e.g.
    /// 2026-12-04T00:00:00Z) are resolved; a record without a time is left out.
    #[arg(long, requires = "incremental", value_name = "TIME")]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// With --from-genesys: only this division.
    #[arg(long, requires = "from_genesys")]
    pub division: Option<String>,
    #[command(flatten)]
    pub platform: Box<crate::shared::platform::PlatformArgs>,
}

/// Runs `dedupd merge plan` as the command line asked.
pub fn main(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let PlanArgs {
        input,
        config,
        out,
        html_limit,
        from_genesys,
        from_cxone,
        division,
        resolve_index,
        resolve_postgres,
        resolve_schema,
        incremental,
        since,
        mut platform,
    } = args;
    let resolve_index = match (resolve_index, resolve_postgres) {
        (Some(dir), _) => Some(super::IndexTarget::Dir(dir)),
        (None, true) => Some(super::IndexTarget::Postgres {
            url: crate::shared::postgres_url()
                .context("--resolve-postgres needs DEDUPD_POSTGRES_URL")?,
            schema: resolve_schema,
        }),
        (None, false) => None,
    };
    if from_cxone {
        platform.kind = crate::shared::platform::PlatformKind::Cxone;
    }

    let cfg = match &config {
        Some(p) => super::MergeConfig::load(p)?,
        None => super::MergeConfig::default(),
    };
    let source = if from_genesys || from_cxone {
        super::Source::Directory {
            platform: platform.platform(false, 0)?,
            scope: division,
        }
    } else {
        super::Source::File(input.or_else(|| cfg.input.path.clone()).context(
            "no input: give --input FILE, --from-genesys, --from-cxone, or [input] path in the --config file",
        )?)
    };
    let name = match &source {
        super::Source::File(p) => p.clone(),
        super::Source::Directory { platform, .. } => PathBuf::from(platform.directory_label()),
    };
    let mut opts = super::Options {
        input: name,
        config: cfg,
        out: out.clone(),
        html_limit,
        resolve_index,
    };
    if incremental {
        let Some(index) = opts.resolve_index.take() else {
            anyhow::bail!("--incremental needs --resolve-index DIR or --resolve-postgres");
        };
        let r = super::run_incremental(&opts, &index, since)?;
        eprintln!(
            "{} records, {} rejects, against {} known: {} joined a customer, {} new customers, {} already known, {} changed ({} moved to another customer); {} clusters to merge ({} records) in {:.2} s. Review {}, then run `dedupd merge apply --plan {}`.",
            r.records,
            r.rejects,
            r.known_before,
            r.joined,
            r.new_customers,
            r.already_known,
            r.changed,
            r.moved.len(),
            r.clusters,
            r.clustered_records,
            r.seconds.values().sum::<f64>(),
            out.join("plan.html").display(),
            out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let done = super::run_from(&source, &opts)?;
    let r = &done.report;
    crate::shared::output::summary(format_args!(
        "{} records, {} rejects: {} clusters of duplicates ({} records) from {} candidate pairs in {:.2} s. Review {}, then run `dedupd merge apply --plan {}`.",
        r.records,
        r.rejects,
        r.clusters,
        r.clustered_records,
        r.candidate_pairs,
        r.seconds.values().sum::<f64>(),
        out.join("plan.html").display(),
        out.display()
    ));
    crate::shared::output::report(r)?;
    Ok(ExitCode::SUCCESS)
}
