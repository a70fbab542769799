//! The review page: one self-contained HTML page (inline CSS and script, nothing fetched from
//! elsewhere) that shows a merge plan's clusters, the least confident first, with paging,
//! filters, search and keyboard navigation, and records a decision per cluster (approve, reject,
//! split, another survivor, another merged value).
//!
//! The same page is `plan.html` (written by `merge plan`, opened as a file: decisions stay in
//! the browser until exported as `decisions.json`) and what `merge review` serves (each decision
//! is saved at once through `POST api/decisions`).

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::shared::fs::AtomicFile;
use crate::shared::plan_file::{Cluster, Decisions};

const TEMPLATE: &str = include_str!("page.html");
const DATA_SLOT: &str = "/*DATA*/";

/// What the page says about the plan beside its clusters.
#[derive(Debug, Clone, Serialize)]
pub struct PageMeta<'a> {
    /// What the plan was made from.
    pub input: &'a str,
    /// When the plan was made (RFC 3339, UTC).
    pub generated_at: String,
    /// Clusters in the plan.
    pub total: usize,
    /// Clusters on this page.
    pub shown: usize,
    /// Served by `merge review` (decisions saved through its API) rather than opened as a file.
    pub server: bool,
}

impl<'a> PageMeta<'a> {
    /// The page's facts: `shown` of `total` clusters of the plan made from `input` at
    /// `generated_at`.
    pub fn new(
        input: &'a str,
        generated_at: DateTime<Utc>,
        total: usize,
        shown: usize,
        server: bool,
    ) -> Self {
        PageMeta {
            input,
            generated_at: generated_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            total,
            shown,
            server,
        }
    }
}

#[derive(Serialize)]
struct PageData<'a> {
    meta: &'a PageMeta<'a>,
    clusters: Vec<&'a Cluster>,
    decisions: &'a std::collections::BTreeMap<String, crate::shared::plan_file::Decision>,
}

/// The clusters in review order: the least confident first, ties by cluster id.
pub fn review_order(clusters: &[Cluster]) -> Vec<&Cluster> {
    let mut order: Vec<&Cluster> = clusters.iter().collect();
    order.sort_by(|a, b| {
        a.confidence
            .total_cmp(&b.confidence)
            .then_with(|| a.cluster_id.cmp(&b.cluster_id))
    });
    order
}

/// Writes the page for `clusters` (shown in review order) to `out`.
pub fn write_page(
    out: &mut impl Write,
    meta: &PageMeta<'_>,
    clusters: &[Cluster],
    decisions: &Decisions,
) -> Result<()> {
    let (head, tail) = TEMPLATE
        .split_once(DATA_SLOT)
        .ok_or_else(|| anyhow::anyhow!("the review page template has no data slot"))?;
    out.write_all(head.as_bytes())?;
    let data = PageData {
        meta,
        clusters: review_order(clusters),
        decisions: &decisions.decisions,
    };
    // Inside <script>, `<` only ever appears within JSON strings, where `\u003c` is the same
    // character: no value can close the script element.
    let json = serde_json::to_string(&data)?.replace('<', "\\u003c");
    out.write_all(json.as_bytes())?;
    out.write_all(tail.as_bytes())?;
    Ok(())
}

/// The page as a string (what `merge review` serves).
pub fn page(meta: &PageMeta<'_>, clusters: &[Cluster], decisions: &Decisions) -> Result<String> {
    let mut buf = Vec::new();
    write_page(&mut buf, meta, clusters, decisions)?;
    Ok(String::from_utf8(buf)?)
}

/// Writes the page to a file, atomically.
pub fn write_file(
    path: &Path,
    meta: &PageMeta<'_>,
    clusters: &[Cluster],
    decisions: &Decisions,
) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    write_page(file.writer(), meta, clusters, decisions)?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::plan_file::{Fields, Member, cluster_id};

    #[test]
    fn values_cannot_close_the_script_and_clusters_come_least_confident_first() {
        let member = |id: &str, first: &str| Member {
            record_id: id.into(),
            source: None,
            updated_at: None,
            fields: Fields {
                first_name: Some(first.into()),
                ..Fields::default()
            },
        };
        let cluster = |ids: [&str; 2], confidence: f64| Cluster {
            cluster_id: cluster_id(ids),
            confidence,
            survivor: ids[0].into(),
            members: vec![member(ids[0], "</script><b>x"), member(ids[1], "Ann")],
            resolved: Fields::default(),
            extra_values: Default::default(),
            generic_values: Default::default(),
            doubtful: Vec::new(),
            pairs: Vec::new(),
        };
        let clusters = vec![cluster(["a", "b"], 0.99), cluster(["c", "d"], 0.6)];
        let meta = PageMeta::new("in.csv", Utc::now(), 2, 2, false);
        let html = page(&meta, &clusters, &Decisions::default()).unwrap();
        assert_eq!(html.matches("</script>").count(), 2, "only the page's own");
        let start = html.find(r#"type="application/json">"#).unwrap() + 24;
        let end = start + html[start..].find("</script>").unwrap();
        let data: serde_json::Value = serde_json::from_str(&html[start..end]).unwrap();
        assert_eq!(data["clusters"][0]["cluster_id"], cluster_id(["c", "d"]));
        assert_eq!(
            data["clusters"][1]["members"][0]["fields"]["first_name"],
            "</script><b>x"
        );
        assert_eq!(data["meta"]["total"], 2);
    }
}
