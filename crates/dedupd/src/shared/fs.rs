//! The one way dedupd writes an output file: to a temporary name beside it, flushed and
//! `fsync`ed, then renamed into place (and the directory synced), so a crash never leaves a
//! half-written file that looks complete, nor a rename that a power cut undoes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

/// A file written under a temporary name and renamed on [`AtomicFile::commit`]; dropped
/// without a commit, it leaves the destination untouched.
#[derive(Debug)]
pub struct AtomicFile {
    tmp: PathBuf,
    dest: PathBuf,
    out: BufWriter<File>,
}

impl AtomicFile {
    /// Starts writing `dest` (through `dest.tmp`).
    pub fn create(dest: &Path) -> anyhow::Result<Self> {
        let mut tmp = dest.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let f = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(Self {
            tmp,
            dest: dest.to_owned(),
            out: BufWriter::with_capacity(1 << 20, f),
        })
    }

    /// Where to write the content.
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        &mut self.out
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(self) -> anyhow::Result<()> {
        let Self { tmp, dest, out } = self;
        let file = out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.sync_all()
            .with_context(|| format!("cannot sync {}", tmp.display()))?;
        drop(file);
        std::fs::rename(&tmp, &dest).with_context(|| format!("cannot write {}", dest.display()))?;
        sync_parent(&dest)
    }
}

/// Syncs the directory holding `path`, so a rename into it survives a power cut.
fn sync_parent(path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

/// Writes `v` as pretty JSON (and a newline) to `path`, atomically.
pub fn write_json<T: Serialize>(path: &Path, v: &T) -> anyhow::Result<()> {
    let mut f = AtomicFile::create(path)?;
    serde_json::to_writer_pretty(f.writer(), v)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.writer().write_all(b"\n")?;
    f.commit()
}

/// Writes `bytes` to `path`, atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.writer()
        .write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_replaces_the_file_and_a_drop_leaves_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        write_json(&path, &serde_json::json!({"a": 1})).unwrap();
        let mut f = AtomicFile::create(&path).unwrap();
        f.writer().write_all(b"half").unwrap();
        drop(f);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\n  \"a\": 1\n}\n"
        );
        write_bytes(&path, b"x").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
    }
}
