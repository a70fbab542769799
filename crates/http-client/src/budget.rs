//! The API rate budget: how fast requests may leave, shared by every task of a process and,
//! through Redis, by every process working against one org.
//!
//! Both backends are GCRA (the generic cell rate algorithm) with a burst of one: requests leave
//! evenly spaced, one every `60 s / (requests_per_minute * HEADROOM)`. Genesys counts requests per
//! token in fixed 60-second windows; evenly spaced requests at a rate just under the limit can
//! never put more than the limit in any window, whatever the window's phase, so a clean run sees
//! no self-inflicted 429 while still using [`HEADROOM`] (98 %) of the budget. A larger burst
//! would let `burst - 1` extra requests into one window, which is exactly what a small limit
//! cannot absorb.
//!
//! - [`RateBudget::local`]: `governor`'s in-memory GCRA, shared by all clones of the client.
//! - [`RateBudget::redis`]: the same algorithm as one atomic Lua script over one Redis key, so any
//!   number of processes consult one budget. Time comes from the Redis server (`TIME`), so the
//!   processes' clocks do not need to agree. Each call *reserves* the next free slot and returns
//!   how long to wait for it, so waiters are served in order and never spin on Redis.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::redact_url;

/// Share of the configured requests per minute the client actually uses.
pub const HEADROOM: f64 = 0.98;

/// The spacing between two requests for a budget of `requests_per_minute`, with [`HEADROOM`].
pub fn emission_interval(requests_per_minute: u32) -> Duration {
    let per_minute = f64::from(requests_per_minute.max(1)) * HEADROOM;
    Duration::from_secs_f64(60.0 / per_minute)
}

/// GCRA as a reservation, atomically, in Redis.
///
/// KEYS[1]: the budget key, holding the theoretical arrival time (TAT) in microseconds of Redis
/// server time. ARGV[1]: the emission interval in microseconds. ARGV[2]: the burst (>= 1).
/// Returns the microseconds the caller must wait before sending. The key expires once idle.
const GCRA_SCRIPT: &str = r"
if redis.replicate_commands then pcall(redis.replicate_commands) end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local slot = tat - (burst - 1) * interval
if slot < now then slot = now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return slot - now
";

/// The rate budget a client draws from. Cheap to clone; clones share the budget.
#[derive(Clone)]
pub enum RateBudget {
    /// In this process only.
    Local(Arc<DefaultDirectRateLimiter>),
    /// Across processes, in Redis.
    Redis(Arc<RedisGcra>),
}

/// State of [`RateBudget::Redis`].
pub struct RedisGcra {
    connection: ConnectionManager,
    script: redis::Script,
    key: String,
    interval_micros: u64,
    url_for_display: String,
}

/// Where a rate budget shared by several processes lives: every process sharing one account's
/// budget (one Genesys org, one CXone tenant) uses the same Redis and key.
#[derive(Clone)]
pub struct RedisBudget {
    /// `redis://[:password@]host:port[/db]`. Treated as secret when printed.
    pub url: String,
    /// The Redis key holding the budget's state. Use a `{hash tag}` if related keys of your
    /// own should share its Redis Cluster slot; the budget itself only ever touches this key.
    pub key: String,
}

impl std::fmt::Debug for RedisBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBudget")
            .field("url", &redact_url(&self.url))
            .field("key", &self.key)
            .finish()
    }
}

impl RateBudget {
    /// The budget a client's configuration asks for: shared through `redis` when set (connected
    /// now, so a missing Redis fails here), else in-process.
    pub async fn configured(
        redis: Option<&RedisBudget>,
        requests_per_minute: u32,
    ) -> Result<Self, redis::RedisError> {
        match redis {
            Some(r) => RateBudget::redis(&r.url, &r.key, requests_per_minute).await,
            None => Ok(RateBudget::local(requests_per_minute)),
        }
    }

    /// An in-process budget of `requests_per_minute`.
    pub fn local(requests_per_minute: u32) -> Self {
        let quota = Quota::with_period(emission_interval(requests_per_minute))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        RateBudget::Local(Arc::new(RateLimiter::direct(quota)))
    }

    /// A budget of `requests_per_minute` shared through the Redis key `key` by every process
    /// that uses the same URL and key. Connects now, so a missing Redis fails here rather than
    /// on the first request.
    pub async fn redis(
        url: &str,
        key: &str,
        requests_per_minute: u32,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2);
        let connection = client.get_connection_manager_with_config(config).await?;
        let interval_micros =
            u64::try_from(emission_interval(requests_per_minute).as_micros()).unwrap_or(u64::MAX);
        Ok(RateBudget::Redis(Arc::new(RedisGcra {
            connection,
            script: redis::Script::new(GCRA_SCRIPT),
            key: key.to_owned(),
            interval_micros,
            url_for_display: redact_url(url),
        })))
    }

    /// Waits until one request may be sent. Returns how long it waited.
    pub async fn acquire(&self) -> Result<Duration, redis::RedisError> {
        let started = Instant::now();
        match self {
            RateBudget::Local(limiter) => limiter.until_ready().await,
            RateBudget::Redis(gcra) => {
                let wait = gcra.reserve().await?;
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
        }
        Ok(started.elapsed())
    }
}

impl RedisGcra {
    /// Reserves the next slot; returns how long until it.
    async fn reserve(&self) -> Result<Duration, redis::RedisError> {
        let mut connection = self.connection.clone();
        let wait_micros: i64 = self
            .script
            .key(&self.key)
            .arg(self.interval_micros)
            .arg(1u32)
            .invoke_async(&mut connection)
            .await?;
        Ok(Duration::from_micros(
            u64::try_from(wait_micros).unwrap_or(0),
        ))
    }
}

impl fmt::Debug for RateBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateBudget::Local(_) => f.write_str("RateBudget::Local"),
            RateBudget::Redis(gcra) => f
                .debug_struct("RateBudget::Redis")
                .field("url", &gcra.url_for_display)
                .field("key", &gcra.key)
                .field("interval_micros", &gcra.interval_micros)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_keeps_headroom() {
        assert_eq!(emission_interval(300).as_millis(), 204);
        assert_eq!(emission_interval(6000).as_micros(), 10_204);
        // Requests in any 60 s window stay within the limit: floor(60 / interval) + 1 <= limit.
        for rpm in [60u32, 100, 300, 1000, 3000, 6000] {
            let per_window = (60.0 / emission_interval(rpm).as_secs_f64()).floor() as u32 + 1;
            assert!(per_window <= rpm, "{rpm}: {per_window}");
            assert!(
                f64::from(per_window) >= 0.9 * f64::from(rpm),
                "{rpm}: {per_window}"
            );
        }
    }

    #[tokio::test]
    async fn local_budget_has_a_burst_of_one() {
        // 60/min: one request per ~1.02 s. The first passes at once, the next one must wait.
        let budget = RateBudget::local(60);
        budget.acquire().await.unwrap();
        let RateBudget::Local(limiter) = &budget else {
            panic!("expected a local budget");
        };
        assert!(limiter.check().is_err());
    }
}
