//! `dedupd eval`: scores a clustering against the truth (pair and cluster precision, recall,
//! F1) and prints it as JSON.

use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `dedupd eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The predicted clusters (`clusters.csv`).
    #[arg(long)]
    pub clusters: PathBuf,
    /// The true clusters.
    #[arg(long)]
    pub truth: PathBuf,
}

/// Prints the scores of `clusters` against `truth`. Refuses two files that share no record id
/// (one of them is the wrong file: scoring them would print zeros that look like a result), and
/// warns when fewer than half of the predicted records are in the truth.
pub fn main(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let predicted = dedupd_feed::read::read_labels(&args.clusters)?;
    let truth = dedupd_feed::read::read_labels(&args.truth)?;
    let e = dedupd_core::matching::eval::evaluate(&predicted, &truth);
    let (clusters, truth_path) = (args.clusters.display(), args.truth.display());
    if e.records == 0 {
        anyhow::bail!(
            "{clusters} ({} records) and {truth_path} ({} records) share no record id: is one \
             of them the wrong file? Both are CSV whose first column is the record id (for \
             `merge plan`'s clusters.csv, the export's record_id)",
            predicted.len(),
            truth.len()
        );
    }
    if e.records * 2 < predicted.len() as u64 {
        eprintln!(
            "warning: only {} of the {} records of {clusters} are in {truth_path}; the others are \
             not scored",
            e.records,
            predicted.len()
        );
    }
    println!("{}", serde_json::to_string_pretty(&e)?);
    Ok(ExitCode::SUCCESS)
}
