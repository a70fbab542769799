//! Per-contact locks in Redis, for runs on several machines.
//!
//! A set of contacts is locked all at once by one Lua script (`SET … PX` on every key, or on
//! none), with a random owner token and a lease. The holder renews the lease before each step
//! that must still be exclusive, so it only lapses when the holder died; a dead holder's lock
//! frees itself after the lease. Release deletes only keys still holding the owner's token.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::ContactLocks;
use crate::{StoreError, redact_url};

/// KEYS: one per contact. ARGV[1]: owner token, ARGV[2]: lease in ms. Returns 1 if every key
/// was free (and is now held), 0 otherwise (nothing taken).
const ACQUIRE: &str = r"
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v and v ~= ARGV[1] then return 0 end
end
for i, k in ipairs(KEYS) do
  redis.call('SET', k, ARGV[1], 'PX', tonumber(ARGV[2]))
end
return 1
";

/// KEYS: the contacts. ARGV[1]: owner token, ARGV[2]: lease in ms (0 = release). Returns how
/// many keys the owner still held.
const RENEW_OR_RELEASE: &str = r"
local n = 0
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then
    n = n + 1
    if tonumber(ARGV[2]) > 0 then
      redis.call('PEXPIRE', k, tonumber(ARGV[2]))
    else
      redis.call('DEL', k)
    end
  end
end
return n
";

/// One holder's contact locks in Redis (one owner token). Cheap to clone (one multiplexed
/// connection).
#[derive(Clone)]
pub struct RedisLocks {
    conn: ConnectionManager,
    addr: String,
    prefix: String,
    owner: String,
    lease: Duration,
}

/// The Redis keys of a set of contacts this holder locked. Dropping it without
/// [`ContactLocks::release`] leaves the keys to expire with their lease.
#[derive(Debug, Clone)]
pub struct RedisLocksHeld {
    keys: Vec<String>,
}

impl std::fmt::Debug for RedisLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLocks")
            .field("addr", &self.addr)
            .field("prefix", &self.prefix)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl RedisLocks {
    /// Connects. `prefix` starts every key (`<prefix><contact id>`); `lease` is how long a lock
    /// outlives a holder that stopped renewing it.
    pub async fn connect(
        url: &str,
        prefix: &str,
        lease: Duration,
    ) -> Result<RedisLocks, StoreError> {
        let addr = redact_url(url);
        let open = |e: redis::RedisError| StoreError::Open {
            path: addr.clone(),
            source: Box::new(e),
        };
        let client = redis::Client::open(url).map_err(open)?;
        let conn = ConnectionManager::new(client).await.map_err(open)?;
        let owner = format!(
            "{}-{}-{:016x}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros(),
            fastrand::u64(..)
        );
        Ok(RedisLocks {
            conn,
            addr,
            prefix: prefix.to_owned(),
            owner,
            lease,
        })
    }

    /// The Redis URL without its password.
    pub fn address(&self) -> &str {
        &self.addr
    }

    fn keys(&self, ids: &[String]) -> Vec<String> {
        let mut keys: Vec<String> = ids
            .iter()
            .map(|id| format!("{}{id}", self.prefix))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn err(&self, op: &'static str) -> impl FnOnce(redis::RedisError) -> StoreError + '_ {
        move |e| StoreError::backend(op, self.addr.as_str(), e)
    }

    /// Runs [`RENEW_OR_RELEASE`] on `keys` with `lease_ms` (0: release); how many were held.
    async fn renew_or_release(
        &self,
        op: &'static str,
        keys: &[String],
        lease_ms: u64,
    ) -> Result<usize, StoreError> {
        let mut conn = self.conn.clone();
        let held: i64 = redis::Script::new(RENEW_OR_RELEASE)
            .key(keys)
            .arg(&self.owner)
            .arg(lease_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(self.err(op))?;
        Ok(usize::try_from(held).unwrap_or(0))
    }
}

impl ContactLocks for RedisLocks {
    type Held = RedisLocksHeld;

    async fn try_lock(&self, ids: &[String]) -> Result<Option<RedisLocksHeld>, StoreError> {
        let keys = self.keys(ids);
        let mut conn = self.conn.clone();
        let got: i64 = redis::Script::new(ACQUIRE)
            .key(&keys)
            .arg(&self.owner)
            .arg(self.lease_ms())
            .invoke_async(&mut conn)
            .await
            .map_err(self.err("lock"))?;
        Ok((got == 1).then_some(RedisLocksHeld { keys }))
    }

    async fn renew(&self, held: &RedisLocksHeld) -> Result<bool, StoreError> {
        let n = self
            .renew_or_release("renew", &held.keys, self.lease_ms())
            .await?;
        Ok(n == held.keys.len())
    }

    async fn release(&self, held: RedisLocksHeld) -> Result<(), StoreError> {
        self.renew_or_release("release", &held.keys, 0).await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::locks::suite;

    /// Two holders on `REDIS_URL` under a fresh key prefix. Without Redis the test is skipped
    /// with a note, except under `CI=true`, where a missing Redis is a failure.
    async fn holders(test: &str) -> Option<(RedisLocks, RedisLocks, ConnectionManager, String)> {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("dedupd-test:locks:{test}:{:016x}:", fastrand::u64(..));
        let lease = Duration::from_secs(60);
        let connected = async {
            let a = RedisLocks::connect(&url, &prefix, lease).await?;
            let b = RedisLocks::connect(&url, &prefix, lease).await?;
            Ok::<_, StoreError>((a, b))
        };
        match tokio::time::timeout(Duration::from_secs(5), connected).await {
            Ok(Ok((a, b))) => {
                let raw = a.conn.clone();
                Some((a, b, raw, prefix))
            }
            failed => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "Redis is required under CI=true (REDIS_URL): {failed:?}"
                );
                eprintln!("skipping {test}: no Redis at REDIS_URL");
                None
            }
        }
    }

    async fn clear(conn: &mut ConnectionManager, prefix: &str) {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(conn)
            .await
            .unwrap();
        for k in keys {
            let _: i64 = redis::cmd("DEL").arg(k).query_async(conn).await.unwrap();
        }
    }

    #[tokio::test]
    async fn redis_locks_pass_the_suite() {
        let Some((a, b, mut raw, prefix)) = holders("suite").await else {
            return;
        };
        suite::run(&a, &b).await;
        clear(&mut raw, &prefix).await;
    }

    #[tokio::test]
    async fn a_lapsed_lease_is_reported_and_release_spares_other_owners() {
        let Some((a, b, mut raw, prefix)) = holders("lapse").await else {
            return;
        };
        let ids = vec!["x".to_owned(), "y".to_owned()];
        let held = a.try_lock(&ids).await.unwrap().expect("free");
        // The lease lapses (as if `a` had stalled): its keys vanish, `b` takes them.
        let _: i64 = redis::cmd("DEL")
            .arg(format!("{prefix}x"))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(!a.renew(&held).await.unwrap(), "one key is no longer held");
        let taken = b.try_lock(&ids[..1]).await.unwrap().expect("x is free");
        // `a` releasing its stale hold leaves `b`'s key alone.
        a.release(held).await.unwrap();
        assert!(a.try_lock(&ids[..1]).await.unwrap().is_none(), "b holds x");
        b.release(taken).await.unwrap();
        clear(&mut raw, &prefix).await;
    }

    #[tokio::test]
    async fn a_bad_redis_url_names_its_address_without_the_password() {
        // Not a database number: refused before any connection is tried.
        let err = RedisLocks::connect(
            "redis://user:secret@127.0.0.1:1/not-a-db",
            "p:",
            Duration::from_secs(1),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("127.0.0.1:1"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }
}
