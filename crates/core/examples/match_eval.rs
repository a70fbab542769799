//! Runs the matcher on a CSV with the sample's columns and scores it against a truth file:
//! `cargo run --release -p dedupd-core --example match_eval -- contacts.csv truth.csv`.
//! A development aid for the matcher; users run `dedupd merge plan` and `dedupd eval`.

use std::time::Instant;

use chrono::{DateTime, Utc};
use dedupd_core::matching::{COLUMNS, MatchConfig, Matcher, Record, eval};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (input, truth) = (&args[1], &args[2]);
    let t = Instant::now();
    let mut rdr = csv::Reader::from_path(input)?;
    let headers = rdr.headers()?.clone();
    let idx: Vec<Option<usize>> = COLUMNS
        .iter()
        .map(|c| headers.iter().position(|h| h == c.name()))
        .collect();
    let upd = headers.iter().position(|h| h == "updated_at");
    let mut records = Vec::new();
    for row in rdr.records() {
        let row = row?;
        let vals: [&str; 11] =
            std::array::from_fn(|i| idx[i].and_then(|j| row.get(j)).unwrap_or(""));
        let ts = upd
            .and_then(|j| row.get(j))
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&Utc));
        records.push(Record::from_raw(vals, ts).0);
    }
    eprintln!("read {} records in {:?}", records.len(), t.elapsed());
    let mut cfg = MatchConfig::default();
    if let Ok(v) = std::env::var("THRESHOLD") {
        cfg.cluster.threshold = v.parse()?;
    }
    if let Ok(v) = std::env::var("GUARD") {
        cfg.cluster.guard_bits = v.parse()?;
    }
    if let Ok(v) = std::env::var("CONFLICT") {
        cfg.conflict_weight = v.parse()?;
    }
    let m = Matcher::new(cfg);
    let t = Instant::now();
    let out = m.run(&records);
    eprintln!(
        "matched in {:?}: {} pairs, generic phones {} emails {}, capped {}, clusters {}, refusals guard {} size {}",
        t.elapsed(),
        out.candidates.pairs.len(),
        out.candidates.generic_phones,
        out.candidates.generic_emails,
        out.candidates.capped_blocks,
        out.clustering.clusters.len(),
        out.clustering.guard_refusals,
        out.clustering.size_refusals
    );
    eprintln!(
        "  pairs by key: {:?}",
        dedupd_core::matching::blocking::KEY_NAMES
            .iter()
            .zip(out.candidates.pairs_by_key)
            .collect::<Vec<_>>()
    );
    for c in dedupd_core::matching::COMPARISONS {
        let ws: Vec<String> = (1..c.levels().len())
            .map(|l| format!("{}={:.1}", c.levels()[l], out.model.weight(c, l)))
            .collect();
        eprintln!("  {:<10} {}", c.name(), ws.join(" "));
    }
    eprintln!(
        "  lambda {:.4} prior {:.3e} ({:.1} bits) iterations {}",
        out.model.lambda,
        out.model.prior,
        out.model.prior_weight(),
        out.model.iterations
    );
    let mut label: Vec<(String, String)> = records
        .iter()
        .map(|r| (r.id().to_owned(), r.id().to_owned()))
        .collect();
    for c in &out.clustering.clusters {
        let l = records[c.members[0] as usize].id().to_owned();
        for &m in &c.members {
            label[m as usize].1 = l.clone();
        }
    }
    let mut trdr = csv::Reader::from_path(truth)?;
    let truth: Vec<(String, String)> = trdr
        .records()
        .filter_map(Result::ok)
        .map(|r| (r[0].to_owned(), r[1].to_owned()))
        .collect();
    let e = eval::evaluate(&label, &truth);
    println!("{}", serde_json::to_string_pretty(&e)?);
    if std::env::var("DUMP").is_ok() {
        // False links and misses, for development.
        let tm: std::collections::HashMap<&str, &str> = truth
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        for (i, &(a, b)) in out.candidates.pairs.iter().enumerate() {
            let (ra, rb) = (&records[a as usize], &records[b as usize]);
            let same = tm.get(ra.id()) == tm.get(rb.id());
            let linked = label[a as usize].1 == label[b as usize].1;
            if same != linked {
                let p = out.model.pair_probability(
                    out.patterns[i],
                    &out.features[a as usize],
                    &out.features[b as usize],
                );
                let show = |r: &Record| {
                    COLUMNS
                        .iter()
                        .map(|c| r.get(*c).unwrap_or(""))
                        .collect::<Vec<_>>()
                        .join(",")
                };
                println!(
                    "{} p={:.3} {:?}\n   {}\n   {}",
                    if same { "MISS" } else { "FALSE" },
                    p,
                    dedupd_core::matching::explain(&out.model, out.patterns[i])
                        .iter()
                        .map(|e| format!("{}:{}", e.field, e.level))
                        .collect::<Vec<_>>(),
                    show(ra),
                    show(rb)
                );
            }
        }
    }
    Ok(())
}
