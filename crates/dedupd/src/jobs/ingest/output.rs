//! The files `ingest` writes. Each is written to a temporary name and renamed into place, so a
//! crashed run never leaves a half-written file that looks complete.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use dedupd_core::{Change, ChangeKind, Contact, Field};
use dedupd_store::{ContactState, EmbeddedStore, EmbeddedWriter, StoredContact};
use serde::Serialize;

use super::Reject;
use crate::shared::fs::AtomicFile;

/// `changes.ndjson`: one line per new, changed or stale contact.
pub(crate) struct ChangesWriter {
    file: AtomicFile,
    /// The line being built.
    line: Vec<u8>,
}

/// A line of `changes.ndjson` but its last member, `contact` (the contact's JSON view), which
/// is spliced in already serialized.
#[derive(Serialize)]
struct ChangeHead<'a> {
    change: ChangeKind,
    external_id: &'a str,
    fields: &'a [&'static str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    stale_fields: &'a [&'static str],
}

impl ChangesWriter {
    pub(crate) fn create(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            file: AtomicFile::create(&dir.join("changes.ndjson"))?,
            line: Vec::with_capacity(1024),
        })
    }

    /// One line: `change` of `c` (the contact as it is now), whose JSON view is `view`
    /// (`serde_json` of [`Contact::view`]).
    fn write_with_view(&mut self, change: &Change, c: &Contact, view: &[u8]) -> anyhow::Result<()> {
        let head = ChangeHead {
            change: change.kind(),
            external_id: &c.external_id,
            fields: &change.fields(c),
            stale_fields: &change.stale_fields(),
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, &head)?;
        // `{…}` → `{…,"contact":VIEW}`: the view is the struct's last member.
        self.line.pop();
        self.line.extend_from_slice(b",\"contact\":");
        self.line.extend_from_slice(view);
        self.line.extend_from_slice(b"}\n");
        self.file.writer().write_all(&self.line)?;
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

/// A contact of this run once compared with the state: as it is now, with the change still to
/// report, and whether the state must be rewritten for it.
pub(crate) struct Settled {
    pub(crate) stored: StoredContact,
    pub(crate) write: bool,
}

/// A `contacts.csv` column, resolved once from its configured name.
#[derive(Clone, Copy)]
enum Column {
    DoNotCall,
    UpdatedAt,
    Field(Field),
    /// Not a contact field: always empty (as `Contact::column` answers).
    Empty,
}

impl Column {
    fn of(name: &str) -> Self {
        match name {
            "do_not_call" => Column::DoNotCall,
            "updated_at" => Column::UpdatedAt,
            other => Field::from_name(other).map_or(Column::Empty, Column::Field),
        }
    }
}

/// The three contact files, written one contact at a time in `externalId` order.
struct ContactFiles<'a> {
    nd: AtomicFile,
    changes: ChangesWriter,
    csv: csv::Writer<&'a mut std::io::BufWriter<std::fs::File>>,
    columns: Vec<Column>,
    /// The contact's JSON view, serialized once for `contacts.ndjson` and `changes.ndjson`.
    view: Vec<u8>,
    completed: u64,
    run: u64,
    w: Written,
}

impl ContactFiles<'_> {
    /// Writes `s` (the contact as the state holds it after this run) to every file.
    fn write(&mut self, s: &StoredContact) -> anyhow::Result<()> {
        let c = &s.contact;
        self.w.contacts += 1;
        self.w.do_not_call += u64::from(c.do_not_call());
        let view = c.view();
        self.view.clear();
        serde_json::to_writer(&mut self.view, &view)?;
        let nd = self.nd.writer();
        nd.write_all(&self.view)?;
        nd.write_all(b"\n")?;
        self.csv.write_field(&c.external_id)?;
        for col in &self.columns {
            match col {
                Column::DoNotCall => {
                    self.csv
                        .write_field(if c.do_not_call() { "true" } else { "false" })?
                }
                Column::UpdatedAt => self.csv.write_field(&view.updated_at)?,
                Column::Field(f) => self.csv.write_field(c.get(*f).unwrap_or_default())?,
                Column::Empty => self.csv.write_field("")?,
            }
        }
        self.csv.write_record(std::iter::empty::<&[u8]>())?;
        if let Some(rc) = s.pending_change(self.completed) {
            match rc.change.kind() {
                ChangeKind::New => self.w.new += 1,
                ChangeKind::Changed => self.w.changed += 1,
                ChangeKind::Stale => self.w.stale += 1,
            }
            self.w.do_not_call_new += u64::from(rc.change.do_not_call_new(c));
            self.w.carried_over += u64::from(rc.run < self.run);
            self.changes.write_with_view(&rc.change, c, &self.view)?;
        }
        Ok(())
    }
}

/// Settles this run's contacts against the state and writes `contacts.ndjson`, `contacts.csv`
/// and `changes.ndjson` for the whole state, in `externalId` order, in one pass.
///
/// `run_contacts` comes sorted by `externalId`. The state is scanned once, from the snapshot
/// taken before this run writes anything: a stored contact the run does not touch is written
/// as stored; a run contact is handed to `settle` with what was stored under its key (if
/// anything), written as settled, then moved to `writer` when the state must change. So every
/// contact is decoded once and never copied, and the writer thread commits while the files are
/// written. A change is listed when no run since `completed` (the last run that wrote its
/// outputs) has reported it; `run` is the current run. The files are committed only after the
/// state is (`writer` finished), so they never show what the state does not hold.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_contacts(
    store: &EmbeddedStore,
    dir: &Path,
    columns: &[String],
    completed: u64,
    run: u64,
    run_contacts: impl Iterator<Item = Box<Contact>>,
    mut settle: impl FnMut(Box<Contact>, Option<StoredContact>) -> anyhow::Result<Settled>,
    mut writer: EmbeddedWriter,
) -> anyhow::Result<Written> {
    let mut nd = AtomicFile::create(&dir.join("contacts.ndjson"))?;
    let mut csv_file = AtomicFile::create(&dir.join("contacts.csv"))?;
    let changes = ChangesWriter::create(dir)?;
    let (changes, w) = {
        let mut csv = csv::WriterBuilder::new().from_writer(csv_file.writer());
        let mut header = vec!["id".to_owned()];
        header.extend(columns.iter().cloned());
        csv.write_record(&header)?;
        let mut files = ContactFiles {
            nd,
            changes,
            csv,
            columns: columns.iter().map(|c| Column::of(c)).collect(),
            view: Vec::with_capacity(512),
            completed,
            run,
            w: Written::default(),
        };
        let mut run_contacts = run_contacts.peekable();
        let mut one = |c: Box<Contact>,
                       before: Option<StoredContact>,
                       files: &mut ContactFiles<'_>|
         -> anyhow::Result<()> {
            let s = settle(c, before)?;
            files.write(&s.stored)?;
            if s.write {
                writer.put(s.stored)?;
            }
            Ok(())
        };
        let mut err: Option<anyhow::Error> = None;
        store.for_each(&mut |stored| {
            if err.is_some() {
                return Ok(());
            }
            let res = (|| -> anyhow::Result<()> {
                let key = stored.contact.external_id.as_str();
                while let Some(c) = run_contacts.next_if(|c| c.external_id.as_str() < key) {
                    one(c, None, &mut files)?;
                }
                match run_contacts.next_if(|c| c.external_id == key) {
                    Some(c) => one(c, Some(stored), &mut files),
                    None => files.write(&stored),
                }
            })();
            if let Err(e) = res {
                err = Some(e);
            }
            Ok(())
        })?;
        if let Some(e) = err {
            return Err(e.context("cannot write contacts"));
        }
        for c in run_contacts {
            one(c, None, &mut files).context("cannot write contacts")?;
        }
        files.csv.flush()?;
        drop(files.csv);
        nd = files.nd;
        (files.changes, files.w)
    };
    writer.finish()?;
    nd.commit()?;
    csv_file.commit()?;
    changes.finish()?;
    Ok(w)
}
