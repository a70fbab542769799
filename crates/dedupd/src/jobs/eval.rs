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

/// Prints the scores of `clusters` against `truth`.
pub fn main(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let predicted = dedupd_feed::read::read_labels(&args.clusters)?;
    let truth = dedupd_feed::read::read_labels(&args.truth)?;
    let e = dedupd_core::matching::eval::evaluate(&predicted, &truth);
    println!("{}", serde_json::to_string_pretty(&e)?);
    Ok(ExitCode::SUCCESS)
}
