//! The files `ingest` writes. Each is written to a temporary name and renamed into place, so a
//! crashed run never leaves a half-written file that looks complete.

use std::io::Write;
use std::path::Path;

use dedupd_core::{Change, ChangeKind, Contact};
use dedupd_store::{ContactState, EmbeddedStore};
use serde::Serialize;

use super::Reject;
use crate::shared::fs::AtomicFile;

/// `changes.ndjson`: one line per new, changed or stale contact.
pub(crate) struct ChangesWriter {
    file: AtomicFile,
}

#[derive(Serialize)]
struct ChangeLine<'a> {
    change: ChangeKind,
    external_id: &'a str,
    fields: &'a [&'static str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    stale_fields: &'a [&'static str],
    contact: dedupd_core::contact::ContactView<'a>,
}

impl ChangesWriter {
    pub(crate) fn create(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            file: AtomicFile::create(&dir.join("changes.ndjson"))?,
        })
    }

    /// One line: `change` of `c` (the contact as it is now).
    pub(crate) fn write(&mut self, change: &Change, c: &Contact) -> anyhow::Result<()> {
        let line = ChangeLine {
            change: change.kind(),
            external_id: &c.external_id,
            fields: &change.fields(c),
            stale_fields: &change.stale_fields(),
            contact: c.view(),
        };
        let w = self.file.writer();
        serde_json::to_writer(&mut *w, &line)?;
        w.write_all(b"\n")?;
        Ok(())
    }

    pub(crate) fn finish(self) -> anyhow::Result<()> {
        self.file.commit()
    }
}

pub(crate) fn write_rejects(dir: &Path, rejects: &[Reject]) -> anyhow::Result<()> {
    let mut f = AtomicFile::create(&dir.join("rejects.ndjson"))?;
    for r in rejects {
        serde_json::to_writer(&mut *f.writer(), r)?;
        f.writer().write_all(b"\n")?;
    }
    f.commit()
}

/// What [`write_contacts`] wrote and counted.
#[derive(Debug, Default)]
pub(crate) struct Written {
    pub(crate) contacts: u64,
    pub(crate) do_not_call: u64,
    pub(crate) new: u64,
    pub(crate) changed: u64,
    pub(crate) stale: u64,
    pub(crate) do_not_call_new: u64,
    /// Changes committed by runs before `run` that never wrote their outputs.
    pub(crate) carried_over: u64,
}

/// Writes `contacts.ndjson`, `contacts.csv` and `changes.ndjson` from the whole state, in
/// `externalId` order, in one pass. A change is listed when no run since `completed` (the last
/// run that wrote its outputs) has reported it; `run` is the current run.
pub(crate) fn write_contacts(
    store: &EmbeddedStore,
    dir: &Path,
    columns: &[String],
    completed: u64,
    run: u64,
) -> anyhow::Result<Written> {
    let mut nd = AtomicFile::create(&dir.join("contacts.ndjson"))?;
    let mut csv_file = AtomicFile::create(&dir.join("contacts.csv"))?;
    let mut changes = ChangesWriter::create(dir)?;
    let mut w = Written::default();
    {
        let mut csv = csv::WriterBuilder::new().from_writer(csv_file.writer());
        let mut header = vec!["id".to_owned()];
        header.extend(columns.iter().cloned());
        csv.write_record(&header)?;
        let mut row: Vec<String> = Vec::with_capacity(header.len());
        let mut err: Option<anyhow::Error> = None;
        store.for_each(&mut |s| {
            let c = &s.contact;
            w.contacts += 1;
            w.do_not_call += u64::from(c.do_not_call());
            let res = (|| -> anyhow::Result<()> {
                serde_json::to_writer(&mut *nd.writer(), &c.view())?;
                nd.writer().write_all(b"\n")?;
                row.clear();
                row.push(c.external_id.clone());
                row.extend(columns.iter().map(|col| c.column(col)));
                csv.write_record(&row)?;
                if let Some(rc) = s.pending_change(completed) {
                    match rc.change.kind() {
                        ChangeKind::New => w.new += 1,
                        ChangeKind::Changed => w.changed += 1,
                        ChangeKind::Stale => w.stale += 1,
                    }
                    w.do_not_call_new += u64::from(rc.change.do_not_call_new(c));
                    w.carried_over += u64::from(rc.run < run);
                    changes.write(&rc.change, c)?;
                }
                Ok(())
            })();
            if let Err(e) = res {
                err.get_or_insert(e);
            }
            Ok(())
        })?;
        if let Some(e) = err {
            return Err(e.context("cannot write contacts"));
        }
        csv.flush()?;
    }
    nd.commit()?;
    csv_file.commit()?;
    changes.finish()?;
    Ok(w)
}
