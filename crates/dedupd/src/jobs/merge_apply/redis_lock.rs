//! Per-contact merge locks in Redis, for `merge apply` runs on several machines (`--redis`).
//!
//! A cluster's contacts are locked all at once by one Lua script (`SET … NX PX` on every key, or
//! on none), with a random owner token and a lease. The lease is renewed before each merge
//! request, so it only lapses when the holder died; a dead holder's lock frees itself after the
//! lease. Release deletes only keys still holding the owner's token.

use std::time::Duration;

use redis::aio::ConnectionManager;

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

/// A Redis connection that takes and releases contact locks for one run.
#[derive(Clone)]
pub struct RedisLocks {
    conn: ConnectionManager,
    prefix: String,
    owner: String,
    lease: Duration,
}

impl std::fmt::Debug for RedisLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLocks")
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
    ) -> Result<RedisLocks, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new(client).await?;
        let owner = format!(
            "{}-{}-{:016x}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros(),
            fastrand::u64(..)
        );
        Ok(RedisLocks {
            conn,
            prefix: prefix.to_owned(),
            owner,
            lease,
        })
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

    /// Locks every id, or none: `Ok(false)` when another run holds one of them.
    pub async fn try_lock(&self, ids: &[String]) -> Result<bool, redis::RedisError> {
        let mut conn = self.conn.clone();
        let got: i64 = redis::Script::new(ACQUIRE)
            .key(self.keys(ids))
            .arg(&self.owner)
            .arg(self.lease_ms())
            .invoke_async(&mut conn)
            .await?;
        Ok(got == 1)
    }

    /// Renews the lease on every id; `Ok(false)` if one of them is no longer held (the lease
    /// lapsed and another run may have taken it).
    pub async fn renew(&self, ids: &[String]) -> Result<bool, redis::RedisError> {
        let keys = self.keys(ids);
        let want = keys.len() as i64;
        let mut conn = self.conn.clone();
        let held: i64 = redis::Script::new(RENEW_OR_RELEASE)
            .key(keys)
            .arg(&self.owner)
            .arg(self.lease_ms())
            .invoke_async(&mut conn)
            .await?;
        Ok(held == want)
    }

    /// Releases every id this run still holds.
    pub async fn unlock(&self, ids: &[String]) -> Result<(), redis::RedisError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::Script::new(RENEW_OR_RELEASE)
            .key(self.keys(ids))
            .arg(&self.owner)
            .arg(0)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }
}
