//! `scrollToken` paging of DFO searches: an opaque token that names the last item served (its
//! sort key and creation order) and the search it belongs to, so the next page starts right
//! after it however the data changed in between (items whose sort key changed may move).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::error::{CxError, CxResult};
use super::extract::Q;
use crate::util::stable_hash;

/// Where a page ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) key: String,
    pub(crate) seq: u64,
}

/// The token for `cursor` within the search identified by `search` (its filters and order).
pub(crate) fn encode(search: &str, cursor: &Cursor) -> String {
    let fp = stable_hash(&[search.as_bytes()]);
    URL_SAFE_NO_PAD.encode(format!("v1|{fp:016x}|{}|{}", cursor.seq, cursor.key))
}

/// The cursor in `token`, or `None` when it is malformed or belongs to another search.
pub(crate) fn decode(search: &str, token: &str) -> Option<Cursor> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token.trim()).ok()?).ok()?;
    let mut parts = raw.splitn(4, '|');
    if parts.next()? != "v1" {
        return None;
    }
    let fp = u64::from_str_radix(parts.next()?, 16).ok()?;
    if fp != stable_hash(&[search.as_bytes()]) {
        return None;
    }
    let seq = parts.next()?.parse().ok()?;
    let key = parts.next()?.to_owned();
    Some(Cursor { key, seq })
}

/// The cursor of the request's `scrollToken`, if any; one of another search (or garbage) is
/// a 400 naming `scrollToken`.
pub(crate) fn after(q: &Q, search: &str) -> CxResult<Option<Cursor>> {
    match q.get("scrollToken").filter(|t| !t.is_empty()) {
        Some(t) => decode(search, t).map(Some).ok_or_else(|| {
            CxError::dfo_invalid("scrollToken", "scrollToken is invalid for this search.")
        }),
        None => Ok(None),
    }
}

/// Adds `scrollToken` to a search answer when a next page may exist.
pub(crate) fn attach(out: &mut Value, search: &str, next: Option<Cursor>) {
    if let Some(c) = next {
        out["scrollToken"] = Value::String(encode(search, &c));
    }
}

/// One page of `items` (already sorted by `(key, seq)`, ascending or descending as `desc`
/// says), starting after `after`. Returns the page and the cursor of its last item when the
/// page is full (a next page may exist).
pub(crate) fn page<T>(
    items: Vec<(String, u64, T)>,
    after: Option<&Cursor>,
    desc: bool,
    size: usize,
) -> (Vec<T>, Option<Cursor>) {
    let mut out = Vec::with_capacity(size.min(items.len()));
    let mut last = None;
    for (key, seq, item) in items {
        if let Some(c) = after {
            let past = if desc {
                (key.as_str(), seq) < (c.key.as_str(), c.seq)
            } else {
                (key.as_str(), seq) > (c.key.as_str(), c.seq)
            };
            if !past {
                continue;
            }
        }
        if out.len() == size {
            break;
        }
        last = Some(Cursor {
            key: key.clone(),
            seq,
        });
        out.push(item);
    }
    let next = if out.len() == size { last } else { None };
    (out, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_bound_to_their_search() {
        let c = Cursor {
            key: "a|b".into(),
            seq: 7,
        };
        let t = encode("q=x", &c);
        assert_eq!(decode("q=x", &t), Some(c));
        assert_eq!(decode("q=y", &t), None);
        assert_eq!(decode("q=x", "garbage!"), None);
    }

    #[test]
    fn pages_follow_each_other_without_gaps() {
        let items: Vec<(String, u64, u64)> = (1..=7).map(|i| (format!("{i:04}"), i, i)).collect();
        let (p1, c1) = page(items.clone(), None, false, 3);
        assert_eq!(p1, vec![1, 2, 3]);
        let (p2, c2) = page(items.clone(), c1.as_ref(), false, 3);
        assert_eq!(p2, vec![4, 5, 6]);
        let (p3, c3) = page(items.clone(), c2.as_ref(), false, 3);
        assert_eq!(p3, vec![7]);
        assert!(c3.is_none(), "a short page ends the scroll");
        let mut rev = items;
        rev.reverse();
        let (d1, dc) = page(rev.clone(), None, true, 4);
        assert_eq!(d1, vec![7, 6, 5, 4]);
        let (d2, _) = page(rev, dc.as_ref(), true, 4);
        assert_eq!(d2, vec![3, 2, 1]);
    }
}
