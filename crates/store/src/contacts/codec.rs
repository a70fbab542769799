//! The stored form of a contact: a small versioned binary layout.
//!
//! Why not JSON: state is read and rewritten for every contact of every run; this layout is
//! several times smaller and faster to decode, and a version byte lets it evolve.
//!
//! Layout v2 (all integers little-endian):
//! `0x02` ‖ hash (16 bytes) ‖ updated_at (i64 µs) ‖ dnc flag (u8) [‖ dnc_since (i64 µs)] ‖
//! change flag (u8) [‖ run (u64) ‖ change (4 bytes, [`Change::to_bytes`])] ‖
//! for each of the 6 fields: presence (u8) [‖ at (i64 µs) ‖ len (u32) ‖ UTF-8 bytes].
//!
//! Layout v1 is v2 without the change flag (and its part); it is still read, as "no change".

use chrono::{DateTime, Utc};
use dedupd_core::{Change, Contact, Stamped};

use super::{RunChange, StoredContact};
use crate::StoreError;

const VERSION: u8 = 2;
const VERSION_1: u8 = 1;

/// Encodes a stored contact (the key is stored separately).
pub fn encode(c: &StoredContact, out: &mut Vec<u8>) {
    out.clear();
    out.push(VERSION);
    out.extend_from_slice(&c.hash);
    out.extend_from_slice(&micros(c.contact.updated_at).to_le_bytes());
    match c.contact.do_not_call_since {
        Some(at) => {
            out.push(1);
            out.extend_from_slice(&micros(at).to_le_bytes());
        }
        None => out.push(0),
    }
    match c.change {
        Some(rc) => {
            out.push(1);
            out.extend_from_slice(&rc.run.to_le_bytes());
            out.extend_from_slice(&rc.change.to_bytes());
        }
        None => out.push(0),
    }
    for f in &c.contact.fields {
        match f {
            Some(s) => {
                out.push(1);
                out.extend_from_slice(&micros(s.at).to_le_bytes());
                // Field values come from one source cell; a value over 4 GiB cannot reach here.
                let len = u32::try_from(s.value.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&s.value.as_bytes()[..len as usize]);
            }
            None => out.push(0),
        }
    }
}

/// Decodes what [`encode`] wrote.
pub fn decode(key: &str, bytes: &[u8]) -> Result<StoredContact, StoreError> {
    let corrupt = |reason| StoreError::Corrupt {
        key: key.to_owned(),
        reason,
    };
    let mut r = Reader { b: bytes };
    let version = r.u8().ok_or_else(|| corrupt("empty"))?;
    if version != VERSION && version != VERSION_1 {
        return Err(corrupt("unknown layout version"));
    }
    let mut hash = [0u8; 16];
    hash.copy_from_slice(r.take(16).ok_or_else(|| corrupt("truncated hash"))?);
    let updated_at = r.time().ok_or_else(|| corrupt("bad updated_at"))?;
    let do_not_call_since = match r.u8() {
        Some(0) => None,
        Some(1) => Some(r.time().ok_or_else(|| corrupt("bad do_not_call time"))?),
        _ => return Err(corrupt("bad do_not_call flag")),
    };
    let flag = if version == VERSION_1 {
        Some(0)
    } else {
        r.u8()
    };
    let change = match flag {
        Some(0) => None,
        Some(1) => {
            let run = r.u64().ok_or_else(|| corrupt("truncated change"))?;
            let raw: [u8; 4] = r
                .take(4)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt("truncated change"))?;
            let change = Change::from_bytes(raw).ok_or_else(|| corrupt("bad change"))?;
            Some(RunChange { run, change })
        }
        _ => return Err(corrupt("bad change flag")),
    };
    let mut fields: [Option<Stamped>; 6] = Default::default();
    for slot in &mut fields {
        match r.u8() {
            Some(0) => {}
            Some(1) => {
                let at = r.time().ok_or_else(|| corrupt("bad field time"))?;
                let len = r.u32().ok_or_else(|| corrupt("truncated field"))? as usize;
                let raw = r.take(len).ok_or_else(|| corrupt("truncated field"))?;
                let value = std::str::from_utf8(raw).map_err(|_| corrupt("field is not UTF-8"))?;
                *slot = Some(Stamped {
                    value: value.to_owned(),
                    at,
                });
            }
            _ => return Err(corrupt("bad field flag")),
        }
    }
    if !r.b.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(StoredContact {
        contact: Contact {
            external_id: key.to_owned(),
            fields,
            do_not_call_since,
            updated_at,
        },
        hash,
        change,
    })
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (head, tail) = self.b.split_at(n);
        self.b = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
    fn time(&mut self) -> Option<DateTime<Utc>> {
        let v = self
            .take(8)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_le_bytes)?;
        DateTime::from_timestamp_micros(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts::suite::sample_contact;

    #[test]
    fn round_trips() {
        let plain = StoredContact::new(sample_contact("K1", 3, true));
        let marked = StoredContact::with_change(sample_contact("K1", 3, true), 7, Change::NEW);
        for c in [plain, marked] {
            let mut buf = Vec::new();
            encode(&c, &mut buf);
            assert_eq!(decode("K1", &buf).unwrap(), c);
            for cut in 0..buf.len() {
                assert!(
                    decode("K1", &buf[..cut]).is_err(),
                    "truncation at {cut} must be detected"
                );
            }
        }
    }

    #[test]
    fn reads_layout_v1_as_no_change() {
        let c = StoredContact::new(sample_contact("K1", 3, true));
        let mut v2 = Vec::new();
        encode(&c, &mut v2);
        // v1 = v2 without the change flag, which follows the do-not-call part.
        let flag_at = 1 + 16 + 8 + 1 + 8;
        assert_eq!(v2[flag_at], 0);
        let mut v1 = v2.clone();
        v1[0] = VERSION_1;
        v1.remove(flag_at);
        assert_eq!(decode("K1", &v1).unwrap(), c);
    }
}
