//! `plan.html`: the plan as a page a person reviews in a browser before `merge apply`.
//! Self-contained (inline CSS and a few lines of script, no server, nothing fetched), clusters
//! sorted by doubt (least confident first), the members' fields side by side with the merged
//! result, and why each pair matched.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use anyhow::Result;

use super::Report;
use crate::shared::fs::AtomicFile;
use crate::shared::plan_file::{Cluster, FIELD_NAMES, Plan};

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}table{border-collapse:collapse;margin:.4em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3}tr.merged td{background:#eef7ee;font-weight:600}
td.diff{background:#fff3cd}td.none{color:#aaa}.survivor{color:#0a6}
details{border:1px solid #ddd;border-radius:4px;margin:.5em 0;padding:.3em .6em}
summary{cursor:pointer}.low{color:#b00}.mid{color:#b60}.high{color:#070}
.why{font-size:12px;color:#555;margin:.2em 0}.pos{color:#070}.neg{color:#b00}
#q{padding:4px;width:24em}";

const SCRIPT: &str = "function f(){var q=document.getElementById('q').value.toLowerCase();
document.querySelectorAll('details.c').forEach(function(d){
d.style.display=d.textContent.toLowerCase().indexOf(q)<0?'none':''});}";

fn confidence_class(c: f64) -> &'static str {
    if c < 0.8 {
        "low"
    } else if c < 0.95 {
        "mid"
    } else {
        "high"
    }
}

fn cluster_html(out: &mut String, c: &Cluster) {
    let _ = write!(
        out,
        "<details class=c{}><summary><b>{}</b> · {} records · confidence <span class={}>{:.3}</span> · survivor {}</summary>",
        if c.confidence < 0.8 { " open" } else { "" },
        esc(&c.cluster_id),
        c.members.len(),
        confidence_class(c.confidence),
        c.confidence,
        esc(&c.survivor)
    );
    out.push_str("<table><tr><th>record</th><th>source</th><th>updated</th>");
    for f in FIELD_NAMES {
        let _ = write!(out, "<th>{f}</th>");
    }
    out.push_str("</tr>");
    for m in &c.members {
        let star = if m.record_id == c.survivor {
            " <span class=survivor title=survivor>★</span>"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr><td>{}{star}</td><td>{}</td><td>{}</td>",
            esc(&m.record_id),
            esc(m.source.as_deref().unwrap_or("")),
            m.updated_at
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        );
        for f in FIELD_NAMES {
            match m.fields.get(f) {
                None => out.push_str("<td class=none>—</td>"),
                Some(v) => {
                    let differs = c.resolved.get(f).is_some_and(|r| r != v);
                    let _ = write!(
                        out,
                        "<td{}>{}</td>",
                        if differs { " class=diff" } else { "" },
                        esc(v)
                    );
                }
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("<tr class=merged><td colspan=3>merged result</td>");
    for f in FIELD_NAMES {
        let _ = write!(out, "<td>{}</td>", esc(c.resolved.get(f).unwrap_or("")));
    }
    out.push_str("</tr></table>");
    if !c.extra_values.is_empty() {
        out.push_str("<div class=why>kept as extra values: ");
        let parts: Vec<String> = c
            .extra_values
            .iter()
            .map(|(k, vs)| format!("{} {}", esc(k), esc(&vs.join(", "))))
            .collect();
        out.push_str(&parts.join("; "));
        out.push_str("</div>");
    }
    if !c.generic_values.is_empty() {
        out.push_str("<div class=why>generic, not carried: ");
        let parts: Vec<String> = c
            .generic_values
            .iter()
            .map(|(k, vs)| format!("{} {}", esc(k), esc(&vs.join(", "))))
            .collect();
        out.push_str(&parts.join("; "));
        out.push_str("</div>");
    }
    for p in &c.pairs {
        let _ = write!(
            out,
            "<div class=why>{} ↔ {}: p={:.3}, {:+.1} bits — ",
            esc(&p.a),
            esc(&p.b),
            p.probability,
            p.weight
        );
        let parts: Vec<String> = p
            .fields
            .iter()
            .filter(|f| f.level != "missing")
            .map(|f| {
                format!(
                    "{} {} <span class={}>{:+.1}</span>",
                    esc(&f.field),
                    esc(&f.level),
                    if f.weight >= 0.0 { "pos" } else { "neg" },
                    f.weight
                )
            })
            .collect();
        out.push_str(&parts.join(", "));
        out.push_str("</div>");
    }
    out.push_str("</details>\n");
}

/// Writes the page. At most `limit` clusters are shown (the most doubtful); the page says so
/// when it leaves some out (all of them are in `plan.json`).
pub(crate) fn write(path: &Path, plan: &Plan, report: &Report, limit: usize) -> Result<()> {
    let mut order: Vec<&Cluster> = plan.clusters.iter().collect();
    order.sort_by(|a, b| {
        a.confidence
            .total_cmp(&b.confidence)
            .then(a.cluster_id.cmp(&b.cluster_id))
    });
    let mut file = AtomicFile::create(path)?;
    let w = file.writer();
    let mut head = String::new();
    let _ = write!(
        head,
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>dedupd merge plan</title><style>{STYLE}</style><script>{SCRIPT}</script></head><body>\
<h1>Merge plan</h1><p>{} records from <code>{}</code>, generated {} · <b>{}</b> clusters of duplicates ({} records) · threshold {} · {} candidate pairs.</p>\
<p>Clusters are sorted by doubt: the least confident first. ★ marks the survivor, whose own values win; yellow cells lose to the merged value and are kept as extra values. Review, then run <code>dedupd merge apply --plan DIR</code>.</p>\
<p><input id=q placeholder='filter: name, e-mail, id…' oninput=f()></p>",
        report.records,
        esc(&plan.input),
        plan.generated_at.format("%Y-%m-%d %H:%M UTC"),
        plan.clusters.len(),
        report.clustered_records,
        report.threshold,
        report.candidate_pairs
    );
    if order.len() > limit {
        let _ = write!(
            head,
            "<p><b>Showing the {limit} most doubtful of {} clusters</b>; plan.json has them all.</p>",
            order.len()
        );
    }
    w.write_all(head.as_bytes())?;
    let mut buf = String::new();
    for c in order.iter().take(limit) {
        buf.clear();
        cluster_html(&mut buf, c);
        w.write_all(buf.as_bytes())?;
    }
    w.write_all(b"</body></html>\n")?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<b>\"O'Neil\" & co</b>"),
            "&lt;b&gt;&quot;O&#39;Neil&quot; &amp; co&lt;/b&gt;"
        );
    }
}
