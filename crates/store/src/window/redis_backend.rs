//! The dedup window in Redis, shared by every gateway instance.
//!
//! One key per fingerprint, `<prefix>{<hex fingerprint>}`: the braces are a Redis Cluster hash
//! tag, so every key a script touches is in one slot, and the prefix keeps the window apart from
//! anything else in the database. The key is a hash: `e` (the first entry, JSON), `n` (the
//! duplicate count), `c` (the first conversation's id, once known). A claim is one `EVALSHA` of
//! [`CLAIM_LUA`]: one round trip, atomic on the server. The TTL (the longest window from
//! the first message's channel) is set only when the key is created, so duplicates never extend
//! the window.
//!
//! The connection is a lazy [`ConnectionManager`]: the gateway starts while Redis is down,
//! every call is bounded by the configured timeout, and the manager reconnects by itself.

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::{
    Claim, DedupWindow, FirstSeen, NearHit, NearItem, NearProbe, WindowError, WindowKey,
    WindowRules, best_near, to_hex,
};

/// The claim. `KEYS[1]` the key; `ARGV[1]` entry JSON, `ARGV[2]` how long to keep a new entry
/// (ms), `ARGV[3]` conversation id or empty, `ARGV[4]` now (Unix ms), `ARGV[5]` this message's
/// channel (lowercased), `ARGV[6]` the window (ms) after a first message on a channel no rule
/// names, then pairs `channel, window ms` for the channels the rules name.
/// Returns `{1, '', 0, ''}` (first) or `{0, entry, count, conversation or ''}`.
///
/// A stored entry is a duplicate's first while `now < t + window(its channel, this channel)`;
/// past that (or when the key expired) this message replaces it. Entries written before the
/// fields `h` (channel) and `t` (first seen, ms) existed count as inside their window.
const CLAIM_LUA: &str = r"
local e = redis.call('HGET', KEYS[1], 'e')
if e then
  local w = tonumber(ARGV[6])
  local ch = redis.call('HGET', KEYS[1], 'h')
  if ch then
    for i = 7, #ARGV, 2 do
      if ARGV[i] == ch then w = tonumber(ARGV[i + 1]) break end
    end
  end
  local t = tonumber(redis.call('HGET', KEYS[1], 't'))
  if (not t) or tonumber(ARGV[4]) < t + w then
    local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
    local c = redis.call('HGET', KEYS[1], 'c')
    if not c then c = '' end
    return {0, e, n, c}
  end
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'e', ARGV[1], 'h', ARGV[5], 't', ARGV[4])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'c', ARGV[3]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, '', 0, ''}
";

/// Near-duplicates: return a customer's remembered messages, then remember this one.
/// `KEYS[1]` the customer's list; `ARGV[1]` the item JSON, `ARGV[2]` how many to keep,
/// `ARGV[3]` the list's expiry (ms).
const NEAR_LUA: &str = r"
local items = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return items
";

/// Set the conversation of an existing key only (never creates a key without a TTL).
const SET_CONVERSATION_LUA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'c', ARGV[1])
  return 1
end
return 0
";

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisWindowConfig {
    /// `redis://host:port/db` (credentials in the URL are never logged by this crate).
    pub url: String,
    /// Key prefix (default `dedupd:window:`).
    pub prefix: String,
    /// Bound on connecting and on each answer; past it a call is [`WindowError::Unavailable`].
    pub timeout: Duration,
}

impl RedisWindowConfig {
    /// The defaults for `url`: prefix `dedupd:window:`, 1 s timeout (a claim normally answers
    /// in well under a millisecond; the bound only matters when Redis is gone).
    pub fn new(url: impl Into<String>) -> Self {
        RedisWindowConfig {
            url: url.into(),
            prefix: "dedupd:window:".to_owned(),
            timeout: Duration::from_secs(1),
        }
    }
}

/// The Redis dedup window. Cheap to clone (one multiplexed connection).
#[derive(Clone)]
pub struct RedisWindow {
    conn: ConnectionManager,
    /// The URL without its password, for errors.
    addr: String,
    prefix: String,
    claim: Script,
    near: Script,
    set_conversation: Script,
}

/// True when Redis refused who we are: `AUTH` failed (a wrong password, or a password sent to
/// a server that has none), `NOAUTH` (a password is required), `WRONGPASS`, `NOPERM`.
fn is_refusal(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::AuthenticationFailed
            | redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm)
    ) || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
}

/// A failure talking to the Redis at `at` (a URL without its password).
fn unavailable(at: &str) -> impl Fn(redis::RedisError) -> WindowError + '_ {
    move |e| {
        let at = at.to_owned();
        if is_refusal(&e) {
            WindowError::Refused {
                at,
                source: Box::new(e),
            }
        } else {
            WindowError::Unavailable {
                at,
                source: Box::new(e),
            }
        }
    }
}

fn corrupt(at: String) -> impl FnOnce(serde_json::Error) -> WindowError {
    move |e| WindowError::Corrupt {
        at,
        reason: e.to_string(),
    }
}

impl RedisWindow {
    /// A window on `config.url`. Does not connect yet (the first call does, and every call
    /// after a failure retries), so it must be called inside a Tokio runtime but never waits.
    pub fn new(config: &RedisWindowConfig) -> Result<RedisWindow, WindowError> {
        let addr = crate::redact_url(&config.url);
        let client = redis::Client::open(config.url.as_str()).map_err(unavailable(&addr))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(unavailable(&addr))?;
        Ok(RedisWindow {
            conn,
            addr,
            prefix: config.prefix.clone(),
            claim: Script::new(CLAIM_LUA),
            near: Script::new(NEAR_LUA),
            set_conversation: Script::new(SET_CONVERSATION_LUA),
        })
    }

    /// The Redis URL without its password.
    pub fn address(&self) -> &str {
        &self.addr
    }

    /// The Redis key of a fingerprint.
    pub fn key(&self, key: &WindowKey) -> String {
        format!("{}{{{}}}", self.prefix, to_hex(key))
    }

    /// The Redis key of a customer's near-duplicate list (`customer` is already a hash).
    pub fn near_key(&self, customer: &WindowKey) -> String {
        format!("{}near:{{{}}}", self.prefix, to_hex(customer))
    }

    /// `PING`: true when Redis answers now.
    pub async fn ping(&self) -> bool {
        self.check().await.is_ok()
    }

    /// `PING`, with the reason when it fails: [`WindowError::Refused`] when Redis refuses the
    /// credentials (it will not recover by itself), else [`WindowError::Unavailable`].
    pub async fn check(&self) -> Result<(), WindowError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(unavailable(&self.addr))
    }

    /// Deletes every key under this window's prefix (tests and operators; `SCAN`, not `KEYS`).
    pub async fn clear(&self) -> Result<u64, WindowError> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}*", self.prefix);
        let mut keys: Vec<String> = Vec::new();
        {
            let mut iter = conn
                .scan_match::<_, String>(&pattern)
                .await
                .map_err(unavailable(&self.addr))?;
            while let Some(k) = futures_next(&mut iter).await {
                keys.push(k);
            }
        }
        let mut n = 0;
        for k in keys {
            n += conn
                .del::<_, u64>(&k)
                .await
                .map_err(unavailable(&self.addr))?;
        }
        Ok(n)
    }
}

async fn futures_next(iter: &mut redis::AsyncIter<'_, String>) -> Option<String> {
    loop {
        match iter.next_item().await {
            Some(Ok(k)) => return Some(k),
            Some(Err(_)) => continue,
            None => return None,
        }
    }
}

/// A window in whole milliseconds, at least 1 (Redis refuses a zero expiry).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Decodes the entry stored under the Redis key `at`.
fn decode_entry(json: &str, at: String) -> Result<FirstSeen, WindowError> {
    serde_json::from_str(json).map_err(corrupt(at))
}

impl DedupWindow for RedisWindow {
    async fn claim(
        &self,
        key: &WindowKey,
        entry: &FirstSeen,
        rules: &WindowRules,
    ) -> Result<Claim, WindowError> {
        let mut stored = entry.clone();
        let conversation = stored.conversation_id.take().unwrap_or_default();
        let json = serde_json::to_string(&stored).map_err(corrupt(self.key(key)))?;
        let channel = entry.channel.trim().to_ascii_lowercase();
        let mut invocation = self.claim.key(self.key(key));
        invocation
            .arg(json)
            .arg(millis(rules.longest_from(&channel)))
            .arg(conversation)
            .arg(entry.first_seen_at.timestamp_millis());
        if rules.is_uniform() {
            invocation.arg(channel).arg(millis(rules.default_window()));
        } else {
            let (named, other) = rules.seen_from(&channel);
            invocation.arg(&channel).arg(millis(other));
            for (c, w) in named {
                invocation.arg(c).arg(millis(w));
            }
        }
        let mut conn = self.conn.clone();
        let (is_first, first, duplicates, conv): (i64, String, u64, String) = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable(&self.addr))?;
        if is_first == 1 {
            return Ok(Claim::First);
        }
        let mut first = decode_entry(&first, self.key(key))?;
        if !conv.is_empty() {
            first.conversation_id = Some(conv);
        }
        Ok(Claim::Duplicate { first, duplicates })
    }

    async fn near(
        &self,
        probe: &NearProbe<'_>,
        rules: &WindowRules,
    ) -> Result<Option<NearHit>, WindowError> {
        let item = serde_json::to_string(&NearItem::of(probe))
            .map_err(corrupt(self.near_key(probe.customer)))?;
        let mut conn = self.conn.clone();
        let items: Vec<String> = self
            .near
            .key(self.near_key(probe.customer))
            .arg(item)
            .arg(probe.keep.max(1))
            .arg(millis(rules.longest()))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable(&self.addr))?;
        // An item another version wrote differently is skipped, not an error: this is a flag.
        let items: Vec<NearItem> = items
            .iter()
            .filter_map(|i| serde_json::from_str(i).ok())
            .collect();
        Ok(best_near(&items, probe, rules))
    }

    async fn get(
        &self,
        key: &WindowKey,
        _now: DateTime<Utc>,
    ) -> Result<Option<(FirstSeen, u64)>, WindowError> {
        let mut conn = self.conn.clone();
        let (e, n, c): (Option<String>, Option<u64>, Option<String>) = redis::cmd("HMGET")
            .arg(self.key(key))
            .arg("e")
            .arg("n")
            .arg("c")
            .query_async(&mut conn)
            .await
            .map_err(unavailable(&self.addr))?;
        let Some(e) = e else { return Ok(None) };
        let mut first = decode_entry(&e, self.key(key))?;
        if let Some(c) = c.filter(|c| !c.is_empty()) {
            first.conversation_id = Some(c);
        }
        Ok(Some((first, n.unwrap_or(0))))
    }

    async fn set_conversation(
        &self,
        key: &WindowKey,
        conversation_id: &str,
        _now: DateTime<Utc>,
    ) -> Result<bool, WindowError> {
        let mut conn = self.conn.clone();
        let set: i64 = self
            .set_conversation
            .key(self.key(key))
            .arg(conversation_id)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable(&self.addr))?;
        Ok(set == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::{Window, suite};

    /// `REDIS_URL` (default local). Without Redis the test is skipped with a note, except under
    /// `CI=true`, where a missing Redis is a failure.
    async fn redis_or_skip(test: &str) -> Option<RedisWindow> {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let mut config = RedisWindowConfig::new(url);
        config.prefix = format!(
            "dedupd-test:{test}:{}:{}:",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        config.timeout = Duration::from_secs(2);
        let window = RedisWindow::new(&config).unwrap();
        if window.ping().await {
            return Some(window);
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Redis is required under CI=true (REDIS_URL)"
        );
        eprintln!("skipping {test}: no Redis at REDIS_URL");
        None
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_passes_the_suite() {
        let Some(window) = redis_or_skip("suite").await else {
            return;
        };
        suite::run(Window::Redis(window.clone())).await;
        assert!(
            window.clear().await.unwrap() > 0,
            "the suite wrote keys under its prefix"
        );
    }

    #[tokio::test]
    async fn keys_are_hash_tagged_under_the_prefix() {
        let Some(window) = redis_or_skip("keys").await else {
            return;
        };
        let k = [0xab; 32];
        let name = window.key(&k);
        assert!(name.starts_with("dedupd-test:keys:"));
        assert!(name.ends_with(&format!("{{{}}}", "ab".repeat(32))));
        window.clear().await.unwrap();
    }

    /// A wrong password is a refusal, not an outage: `AUTH` with a password the server does
    /// not have (the local Redis may have none: `AUTH` then fails the same way).
    #[tokio::test]
    async fn a_wrong_password_is_refused_not_unavailable() {
        if redis_or_skip("refused").await.is_none() {
            return;
        }
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let Some(rest) = url.strip_prefix("redis://") else {
            panic!("REDIS_URL is not redis://…: {url}");
        };
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let mut config = RedisWindowConfig::new(format!("redis://:dedupd-wrong-pass@{host}"));
        config.prefix = "dedupd-test:refused:".into();
        config.timeout = Duration::from_secs(2);
        let window = RedisWindow::new(&config).unwrap();
        let err = window.check().await.unwrap_err();
        assert!(matches!(err, WindowError::Refused { .. }), "{err:?}");
        assert!(!err.to_string().contains("dedupd-wrong-pass"), "{err}");
        let entry = FirstSeen {
            message_id: None,
            conversation_id: None,
            channel: "sms".into(),
            first_seen_at: Utc::now(),
        };
        let err = window
            .claim(
                &[1; 32],
                &entry,
                &WindowRules::uniform(Duration::from_secs(1)),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, WindowError::Refused { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_unavailable_not_a_hang() {
        let mut config = RedisWindowConfig::new("redis://127.0.0.1:1");
        config.timeout = Duration::from_millis(200);
        let window = RedisWindow::new(&config).unwrap();
        let entry = FirstSeen {
            message_id: None,
            conversation_id: None,
            channel: "sms".into(),
            first_seen_at: Utc::now(),
        };
        let err = window
            .claim(
                &[1; 32],
                &entry,
                &WindowRules::uniform(Duration::from_secs(1)),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, WindowError::Unavailable { .. }), "{err:?}");
    }
}
