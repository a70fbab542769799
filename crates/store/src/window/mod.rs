//! The dedup window of the message gateway: "have I seen this fingerprint in the last N
//! seconds?", answered and recorded in one atomic step.
//!
//! [`DedupWindow::claim`] is a check-and-set with a TTL: it inserts the entry when the key is
//! absent (or expired) and answers [`Claim::First`]; otherwise it leaves the first entry alone,
//! counts one more duplicate and answers [`Claim::Duplicate`] with the first entry. Two callers
//! racing on one key can never both get `First`.
//!
//! Backends, selected through the [`Window`] enum (no `dyn`):
//!
//! - [`EmbeddedWindow`]: in memory, sharded, TTL-bounded and capped in entries (the oldest go
//!   first, and [`EmbeddedWindow::effective_window`] reports how far back the window really
//!   reaches), snapshotted to a file and reloaded on start.
//! - [`RedisWindow`]: one round trip per claim (a Lua script), keys hash-tagged for Redis
//!   Cluster under their own prefix, shared by every gateway instance.
//!
//! Both pass the same behavioural suite, `suite` (feature `testing`).
//!
//! How long a first message suppresses later ones depends on the pair of channels
//! ([`WindowRules`]). Near-duplicates ([`DedupWindow::near`]) are a second, optional step: per
//! customer, the sketches of recent first messages.

mod embedded;
mod redis_backend;
mod rules;
#[cfg(any(test, feature = "testing"))]
pub mod suite;

use chrono::{DateTime, Utc};
use dedupd_core::message::TextSketch;
use serde::{Deserialize, Serialize};
use std::future::Future;
use thiserror::Error;

pub use embedded::EmbeddedWindow;
pub use redis_backend::{RedisWindow, RedisWindowConfig};
pub use rules::{ANY_CHANNEL, MAX_WINDOW, RuleError, WindowRules};

/// A window key: a message fingerprint (SHA-256).
pub type WindowKey = [u8; 32];

/// What the window remembers about the first message of a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstSeen {
    /// The first message's id on its channel, when the sender gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The conversation the first message belongs to: given by the sender, or learned later
    /// from the platform ([`DedupWindow::set_conversation`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// The first message's channel (`sms`, `email`, …).
    pub channel: String,
    /// When the first message was seen (UTC). Also the window's clock: a claim carrying this
    /// entry happens "now" at this instant.
    pub first_seen_at: DateTime<Utc>,
}

/// A first message, asking whether its customer sent something almost the same in the window
/// ([`DedupWindow::near`]).
#[derive(Debug, Clone, Copy)]
pub struct NearProbe<'a> {
    /// A hash of the canonical customer id (the window never stores the id itself).
    pub customer: &'a WindowKey,
    /// The message's fingerprint (an earlier message with the same one is not "near").
    pub fingerprint: &'a WindowKey,
    /// The sketch of its normalized text.
    pub sketch: &'a TextSketch,
    /// The message; `first_seen_at` is "now".
    pub entry: &'a FirstSeen,
    /// Least similarity that counts ([`TextSketch::similarity`]).
    pub threshold: f64,
    /// Most recent messages remembered per customer.
    pub keep: usize,
}

/// The answer of [`DedupWindow::near`]: the most similar recent message.
#[derive(Debug, Clone, PartialEq)]
pub struct NearHit {
    /// That message.
    pub first: FirstSeen,
    /// Its fingerprint.
    pub fingerprint: WindowKey,
    /// Estimated similarity of the two texts, in `[threshold, 1]`.
    pub similarity: f64,
}

/// One remembered message of a customer, as the near-duplicate lists hold it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NearItem {
    /// Fingerprint, hex.
    #[serde(rename = "f")]
    pub(crate) fingerprint: String,
    /// Sketch, hex ([`TextSketch::to_hex`]).
    #[serde(rename = "s")]
    pub(crate) sketch: String,
    /// The message.
    #[serde(rename = "e")]
    pub(crate) first: FirstSeen,
}

impl NearItem {
    pub(crate) fn of(probe: &NearProbe<'_>) -> NearItem {
        NearItem {
            fingerprint: to_hex(probe.fingerprint),
            sketch: probe.sketch.to_hex(),
            first: probe.entry.clone(),
        }
    }
}

/// The most similar of `items` to the probe that is inside its channel pair's window, is not
/// the same message, and reaches the threshold.
pub(crate) fn best_near<'i>(
    items: impl IntoIterator<Item = &'i NearItem>,
    probe: &NearProbe<'_>,
    rules: &WindowRules,
) -> Option<NearHit> {
    let now = probe.entry.first_seen_at;
    let own = to_hex(probe.fingerprint);
    let mut best: Option<NearHit> = None;
    for item in items {
        if item.fingerprint == own || item.first.first_seen_at > now {
            continue;
        }
        let window = rules.between(&item.first.channel, &probe.entry.channel);
        let inside = chrono::Duration::from_std(window)
            .ok()
            .and_then(|w| item.first.first_seen_at.checked_add_signed(w))
            .is_none_or(|until| now < until);
        if !inside {
            continue;
        }
        let (Some(sketch), Some(fingerprint)) = (
            TextSketch::from_hex(&item.sketch),
            from_hex(&item.fingerprint),
        ) else {
            continue;
        };
        let similarity = probe.sketch.similarity(&sketch);
        if similarity >= probe.threshold && best.as_ref().is_none_or(|b| similarity > b.similarity)
        {
            best = Some(NearHit {
                first: item.first.clone(),
                fingerprint,
                similarity,
            });
        }
    }
    best
}

/// The answer of [`DedupWindow::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key was free: the entry is now the first of its window.
    First,
    /// The key was taken.
    Duplicate {
        /// The first entry (with its conversation id when one is known).
        first: FirstSeen,
        /// Duplicates of it so far, this one included (1 for the first duplicate).
        duplicates: u64,
    },
}

/// Errors of a window backend.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WindowError {
    /// The backend could not be reached or did not answer in time (Redis down, timeout).
    #[error("dedup window backend at {at} unavailable: {source}")]
    Unavailable {
        /// The backend's address ([`Window::address`]; a URL without its password).
        at: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The backend refused our credentials (a wrong or missing Redis password, an ACL user
    /// without the rights): a configuration error that retrying will not fix.
    #[error(
        "dedup window backend at {at} refused the credentials (check the password or ACL user in the URL): {source}"
    )]
    Refused {
        /// The backend's address (a URL without its password).
        at: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored entry could not be decoded (or encoded).
    #[error("dedup window entry {at} is corrupt: {reason}")]
    Corrupt {
        /// The entry: a Redis key, or the snapshot file (and line).
        at: String,
        /// Why.
        reason: String,
    },
    /// A snapshot could not be written or read.
    #[error("dedup window snapshot {path}: {source}")]
    Snapshot {
        /// The snapshot file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A dedup window backend. Every method is one atomic operation.
pub trait DedupWindow: Send + Sync {
    /// Claims `key` for `entry` (whose `first_seen_at` is "now"). When the key holds a first
    /// entry whose window for this pair of channels ([`WindowRules::between`]) has not passed,
    /// counts a duplicate and returns that entry. Otherwise `entry` becomes the first: it is
    /// stored (replacing any older one) and kept for [`WindowRules::longest_from`] its channel.
    fn claim(
        &self,
        key: &WindowKey,
        entry: &FirstSeen,
        rules: &WindowRules,
    ) -> impl Future<Output = Result<Claim, WindowError>> + Send;

    /// Near-duplicates, the slower path after a [`Claim::First`]: returns the customer's most
    /// similar recent message inside its channel pair's window (see [`NearProbe`]), and
    /// remembers this one. Only sketches (hashes) are stored, never text.
    fn near(
        &self,
        probe: &NearProbe<'_>,
        rules: &WindowRules,
    ) -> impl Future<Output = Result<Option<NearHit>, WindowError>> + Send;

    /// The live first entry under `key` and its duplicate count, if any.
    fn get(
        &self,
        key: &WindowKey,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<(FirstSeen, u64)>, WindowError>> + Send;

    /// Records the conversation the first message of `key` created. Keeps the TTL; does
    /// nothing (and returns false) when the key is absent or expired.
    fn set_conversation(
        &self,
        key: &WindowKey,
        conversation_id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, WindowError>> + Send;
}

/// The configured backend.
#[derive(Clone)]
pub enum Window {
    /// In process.
    Embedded(std::sync::Arc<EmbeddedWindow>),
    /// Shared through Redis.
    Redis(RedisWindow),
}

impl Window {
    /// `embedded` or `redis`, for logs and metric labels.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Window::Embedded(_) => "embedded",
            Window::Redis(_) => "redis",
        }
    }

    /// Where the window lives, for errors: `in-process`, or the Redis URL without its password.
    pub fn address(&self) -> String {
        match self {
            Window::Embedded(_) => "in-process".to_owned(),
            Window::Redis(w) => w.address().to_owned(),
        }
    }
}

impl DedupWindow for Window {
    async fn claim(
        &self,
        key: &WindowKey,
        entry: &FirstSeen,
        rules: &WindowRules,
    ) -> Result<Claim, WindowError> {
        match self {
            Window::Embedded(w) => w.claim(key, entry, rules).await,
            Window::Redis(w) => w.claim(key, entry, rules).await,
        }
    }

    async fn near(
        &self,
        probe: &NearProbe<'_>,
        rules: &WindowRules,
    ) -> Result<Option<NearHit>, WindowError> {
        match self {
            Window::Embedded(w) => w.near(probe, rules).await,
            Window::Redis(w) => w.near(probe, rules).await,
        }
    }

    async fn get(
        &self,
        key: &WindowKey,
        now: DateTime<Utc>,
    ) -> Result<Option<(FirstSeen, u64)>, WindowError> {
        match self {
            Window::Embedded(w) => w.get(key, now).await,
            Window::Redis(w) => w.get(key, now).await,
        }
    }

    async fn set_conversation(
        &self,
        key: &WindowKey,
        conversation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, WindowError> {
        match self {
            Window::Embedded(w) => w.set_conversation(key, conversation_id, now).await,
            Window::Redis(w) => w.set_conversation(key, conversation_id, now).await,
        }
    }
}

pub(crate) fn to_hex(key: &WindowKey) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in key {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

pub(crate) fn from_hex(s: &str) -> Option<WindowKey> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut key = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        key[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let mut k = [0u8; 32];
        k[0] = 0xab;
        k[31] = 0x01;
        assert_eq!(from_hex(&to_hex(&k)), Some(k));
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex(&"g".repeat(64)), None);
    }
}
