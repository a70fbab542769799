//! The relay: claims due notifications from the outbox, sends them, records the outcome.
//!
//! Per claimed notification:
//! 1. The previous attempt may have gone out (the claim found it `sending`: a relay died or
//!    lost its lease; or `unknown`: a send's outcome was uncertain). A provider that dedupes on
//!    the key is simply sent to again with the same key; one that can be read back is read back
//!    first: found → `delivered`; not found → as if nothing went out; read-back failed →
//!    `unknown`, checked again later (at most twice `max_attempts` read-backs); one that can do
//!    neither → `unknown` for good.
//! 2. `not_after` passed → `expired` (`unknown` if an attempt may have gone out).
//! 3. The attempts (sends) or the age cap are used up → `failed` when nothing can have gone
//!    out, `unknown` when a send may have.
//! 4. The provider is paused (see [`ProviderHealth`]) → held until its next probe, without an
//!    attempt.
//! 5. Send: delivered → `delivered`; refused (4xx) → `failed` with a value-free summary of the
//!    provider's answer; not sent but may pass (429, connection refused) → `pending` again
//!    after a backoff (full jitter, the provider's `Retry-After` when longer); uncertain
//!    (timeout, 5xx after sending) → `unknown`, then per the provider's [`Ambiguity`] policy
//!    (derived from its capabilities).
//!    An earlier uncertain send is never forgotten: a later certain failure keeps the
//!    notification `unknown`, so `failed` always means "nothing went out" and a producer may
//!    send again.
//!
//! `attempts` counts sends; read-backs and holds are not attempts.
//!
//! Logs carry keys, ids, provider names and statuses, never recipients or text.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dedupd_core::notification::{NotificationRequest, Status};
use dedupd_http::{Readiness, ReadyCheck};
use dedupd_http_client::RetryPolicy;
use dedupd_store::outbox::{Claimed, Outbox, OutboxStore, Outcome, Work};
use futures_util::future::join_all;

use crate::clock::Clock;
use crate::config::RelayConfig;
use crate::provider::{Ambiguity, Readback, SendResult, Senders};
use crate::telemetry;

/// How far before the first claim a read-back looks (clock skew between us and the platform).
const READBACK_SKEW: chrono::Duration = chrono::Duration::minutes(2);

/// The metric: 1 while a provider is paused, 0 otherwise (label `provider`).
pub const PROVIDER_PAUSED_METRIC: &str = telemetry::PROVIDER_PAUSED;

/// The relay. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Relay {
    outbox: Outbox,
    providers: Arc<Senders>,
    cfg: RelayConfig,
    clock: Clock,
    health: ProviderHealth,
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundStats {
    /// Notifications claimed.
    pub claimed: usize,
    /// Outcomes recorded (a lost lease records nothing).
    pub recorded: usize,
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn secs(s: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX))
}

/// Per provider, whether the relay may contact it: a provider that has had no success for
/// `provider_pause_after_secs` while it was being tried is **paused**: the relay holds its
/// notifications back (no attempt is used, nothing is dropped or resent) and contacts it once
/// per `provider_probe_secs` with one of them (the probe); the first success resumes it. Other
/// providers are not affected. A pause is logged once (error), shown by the
/// [`PROVIDER_PAUSED_METRIC`] gauge and by readiness (`degraded`, see the [`ReadyCheck`]
/// implementation).
///
/// A success is any answer that shows the provider works: a delivery, a refusal (4xx), a
/// read-back that answered. A failure is anything else: no connection, a timeout, a 5xx, a 429.
#[derive(Debug, Clone)]
pub struct ProviderHealth {
    inner: Arc<Mutex<BTreeMap<String, Breaker>>>,
    pause_after: chrono::Duration,
    probe_every: chrono::Duration,
}

#[derive(Debug, Default)]
struct Breaker {
    /// The first failure since the last success.
    failing_since: Option<DateTime<Utc>>,
    /// While paused: when the next probe may go.
    probe_at: Option<DateTime<Utc>>,
    /// A value-free summary of the last failure.
    last_error: Option<String>,
}

/// Why a notification is held back.
struct Hold {
    until: DateTime<Utc>,
    reason: String,
}

impl ProviderHealth {
    fn new(cfg: &RelayConfig, names: impl Iterator<Item = String>) -> Self {
        let mut map = BTreeMap::new();
        for name in names {
            telemetry::register_provider(&name);
            map.insert(name, Breaker::default());
        }
        Self {
            inner: Arc::new(Mutex::new(map)),
            pause_after: secs(cfg.provider_pause_after_secs),
            probe_every: secs(cfg.provider_probe_secs),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Breaker>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The providers paused now, by name.
    pub fn paused(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, b)| b.probe_at.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// `None`: contact `name` (it is not paused, or this is its probe). `Some`: hold back.
    fn gate(&self, name: &str, now: DateTime<Utc>) -> Option<Hold> {
        let mut map = self.lock();
        let b = map.entry(name.to_owned()).or_default();
        let probe_at = b.probe_at?;
        if now >= probe_at {
            // This one is the probe; the others wait for the next.
            b.probe_at = Some(now + self.probe_every);
            tracing::info!(provider = name, "Probing a paused provider");
            return None;
        }
        Some(Hold {
            until: probe_at,
            reason: format!(
                "held: provider `{name}` is paused after {} s without a success (last error: {})",
                self.pause_after.num_seconds(),
                b.last_error.as_deref().unwrap_or("none")
            ),
        })
    }

    fn success(&self, name: &str) {
        let mut map = self.lock();
        let b = map.entry(name.to_owned()).or_default();
        if b.probe_at.is_some() {
            tracing::warn!(provider = name, "Provider answers again; resumed");
            metrics::gauge!(PROVIDER_PAUSED_METRIC, "provider" => name.to_owned()).set(0.0);
        }
        *b = Breaker::default();
    }

    fn failure(&self, name: &str, error: &str, now: DateTime<Utc>) {
        let mut map = self.lock();
        let b = map.entry(name.to_owned()).or_default();
        let since = *b.failing_since.get_or_insert(now);
        b.last_error = Some(error.to_owned());
        if b.probe_at.is_none() && now - since >= self.pause_after {
            b.probe_at = Some(now + self.probe_every);
            tracing::error!(
                provider = name,
                failing_since = %since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                last_error = error,
                probe_every_secs = self.probe_every.num_seconds(),
                "Provider paused: no success for {} s; its notifications are held (nothing is \
                 dropped) and it is probed once per interval",
                self.pause_after.num_seconds()
            );
            metrics::gauge!(PROVIDER_PAUSED_METRIC, "provider" => name.to_owned()).set(1.0);
        }
    }
}

/// `degraded` while a provider is paused (the API still accepts notifications; they are held).
impl ReadyCheck for ProviderHealth {
    fn check(&self) -> Pin<Box<dyn Future<Output = Readiness> + Send + '_>> {
        let paused = !self.paused().is_empty();
        Box::pin(async move {
            if paused {
                Readiness::Degraded
            } else {
                Readiness::Ready
            }
        })
    }
}

impl Relay {
    /// A relay over `outbox` with `providers` by name.
    pub fn new(outbox: Outbox, providers: Senders, cfg: RelayConfig, clock: Clock) -> Self {
        let health = ProviderHealth::new(&cfg, providers.keys().cloned());
        Self {
            outbox,
            providers: Arc::new(providers),
            cfg,
            clock,
            health,
        }
    }

    /// The providers' health (shared with this relay and its clones): for readiness.
    pub fn health(&self) -> ProviderHealth {
        self.health.clone()
    }

    /// The providers paused now, by name.
    pub fn paused_providers(&self) -> Vec<String> {
        self.health.paused()
    }

    fn backoff(&self, exponent: u32, retry_after: Option<Duration>) -> chrono::Duration {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(self.cfg.base_delay_ms),
            max_delay: Duration::from_millis(self.cfg.max_delay_ms),
            ..RetryPolicy::default()
        };
        // Full jitter; a longer Retry-After from the provider wins.
        let jitter = policy.backoff(exponent.max(1), fastrand::f64());
        to_chrono(retry_after.map_or(jitter, |ra| ra.max(jitter)))
    }

    /// Claims one batch and works it. Returns what it did.
    pub async fn round(&self) -> Result<RoundStats, dedupd_store::StoreError> {
        let now = self.clock.now();
        let claimed = self
            .outbox
            .claim(now, to_chrono(self.cfg.lease()), self.cfg.batch)
            .await?;
        let n = claimed.len();
        let results = join_all(claimed.into_iter().map(|c| self.work(c))).await;
        let mut recorded = 0;
        for r in results {
            if r? {
                recorded += 1;
            }
        }
        Ok(RoundStats {
            claimed: n,
            recorded,
        })
    }

    /// Runs rounds until `stop` resolves; sleeps `poll_ms` when nothing was due. Store errors
    /// are logged and retried after a pause.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let idle = Duration::from_millis(self.cfg.poll_ms);
        let mut purged_at = self.clock.now();
        telemetry::refresh_backlog(&self.outbox, purged_at).await;
        let mut backlog_at = purged_at;
        loop {
            let pause = match self.round().await {
                Ok(s) if s.claimed > 0 => Duration::ZERO,
                Ok(_) => idle,
                Err(e) => {
                    metrics::counter!(telemetry::RELAY_ERRORS).increment(1);
                    tracing::warn!(error = %e, "Relay round failed; retrying");
                    idle.max(Duration::from_secs(1))
                }
            };
            let now = self.clock.now();
            if now - backlog_at >= to_chrono(telemetry::BACKLOG_EVERY) {
                backlog_at = now;
                telemetry::refresh_backlog(&self.outbox, now).await;
            }
            if now - purged_at > chrono::Duration::minutes(10) {
                purged_at = now;
                match self.outbox.purge_expired(now).await {
                    Ok(n) if n > 0 => {
                        tracing::info!(purged = n, "Forgot expired notification keys")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "Purging expired keys failed"),
                }
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Works one claimed notification; returns whether its outcome was recorded.
    async fn work(&self, c: Claimed) -> Result<bool, dedupd_store::StoreError> {
        let n = &c.notification;
        let lease = n.lease.clone().unwrap_or_default();
        let (outcome, work) = self.decide(&c).await;
        let now = self.clock.now();
        tracing::debug!(key = %n.key, id = %n.id, outcome = ?outcome_name(&outcome), sent = work.sent, "Relay outcome");
        let name = outcome_name(&outcome);
        let recorded = self
            .outbox
            .finish(&n.key, &lease, outcome, work, now)
            .await?;
        if work.sent {
            metrics::counter!(telemetry::RELAY_ATTEMPTS, "provider" => n.provider.clone())
                .increment(1);
        }
        if work.read_back {
            metrics::counter!(telemetry::RELAY_READBACKS, "provider" => n.provider.clone())
                .increment(1);
        }
        let label = if recorded { name } else { "lease_lost" };
        metrics::counter!(telemetry::RELAY_OUTCOMES, "outcome" => label).increment(1);
        if !recorded {
            tracing::warn!(key = %n.key, id = %n.id, "Lease lost before the outcome was recorded");
        }
        Ok(recorded)
    }

    async fn decide(&self, c: &Claimed) -> (Outcome, Work) {
        let n = &c.notification;
        let now = self.clock.now();
        let mut work = Work::default();
        let mut maybe_sent = matches!(c.previous, Status::Sending | Status::Unknown);
        let last_error = n.last_error.as_deref().unwrap_or("none");
        let req: NotificationRequest = match serde_json::from_value(n.request.clone()) {
            Ok(r) => r,
            Err(e) => {
                // The error's words may quote the stored values: only where and what kind.
                let error = format!(
                    "the stored request cannot be read ({:?} error at line {}, column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                );
                return (settle(maybe_sent, error), work);
            }
        };
        let name = n.provider.as_str();
        let Some(provider) = self.providers.get(name) else {
            let error = format!("provider `{name}` is not configured");
            return (settle(maybe_sent, error), work);
        };
        let policy = provider.capabilities().ambiguity();
        let max = self.cfg.max_attempts;
        let too_old =
            now - n.created_at > chrono::Duration::hours(i64::from(self.cfg.max_age_hours));
        let max_readbacks = max.saturating_mul(2);

        if maybe_sent {
            match policy {
                // Sending again with the same key settles it.
                Ambiguity::RetrySameKey => {}
                Ambiguity::Report => {
                    return (
                        Outcome::Unknown {
                            recheck_at: None,
                            error: format!(
                                "an attempt may have gone out and this provider cannot be read \
                                 back; last error: {last_error}"
                            ),
                        },
                        work,
                    );
                }
                Ambiguity::Reconcile => {
                    if n.readbacks >= max_readbacks || too_old {
                        return (
                            Outcome::Unknown {
                                recheck_at: None,
                                error: format!(
                                    "gave up after {} attempts and {} read-backs; an attempt may \
                                     have gone out; last error: {last_error}",
                                    n.attempts, n.readbacks
                                ),
                            },
                            work,
                        );
                    }
                    if let Some(h) = self.health.gate(name, now) {
                        return (
                            Outcome::Unknown {
                                recheck_at: Some(h.until),
                                error: h.reason,
                            },
                            work,
                        );
                    }
                    let since = n.first_attempt_at.unwrap_or(n.created_at) - READBACK_SKEW;
                    work.read_back = true;
                    match provider.find(&n.id, &req, since, now).await {
                        Readback::Found(id) => {
                            self.health.success(name);
                            return (
                                Outcome::Delivered {
                                    provider_message_id: Some(id),
                                },
                                work,
                            );
                        }
                        Readback::NotFound => {
                            self.health.success(name);
                            maybe_sent = false;
                        }
                        Readback::Failed(e) => {
                            self.health.failure(name, &e, now);
                            let give_up = n.readbacks + 1 >= max_readbacks;
                            let exponent = n.attempts + n.readbacks + 1;
                            return (
                                Outcome::Unknown {
                                    recheck_at: (!give_up)
                                        .then(|| now + self.backoff(exponent, None)),
                                    error: format!(
                                        "an attempt may have gone out; read-back failed: {e}"
                                    ),
                                },
                                work,
                            );
                        }
                    }
                }
            }
        }
        if req.not_after.is_some_and(|t| now > t) {
            return if maybe_sent {
                (
                    Outcome::Unknown {
                        recheck_at: None,
                        error: format!(
                            "not_after passed; an earlier attempt may have gone out; last \
                             error: {last_error}"
                        ),
                    },
                    work,
                )
            } else {
                (Outcome::Expired, work)
            };
        }
        let gave_up = |attempts: u32, last: &str| {
            let age = if too_old {
                format!(" and {} hours", self.cfg.max_age_hours)
            } else {
                String::new()
            };
            if maybe_sent {
                Outcome::Unknown {
                    recheck_at: None,
                    error: format!(
                        "gave up after {attempts} attempts{age}; one may have gone out; last \
                         error: {last}"
                    ),
                }
            } else {
                Outcome::Failed {
                    error: format!("gave up after {attempts} attempts{age}; last error: {last}"),
                }
            }
        };
        if n.attempts >= max || too_old {
            return (gave_up(n.attempts, last_error), work);
        }
        if let Some(h) = self.health.gate(name, now) {
            let outcome = if maybe_sent {
                Outcome::Unknown {
                    recheck_at: Some(h.until),
                    error: h.reason,
                }
            } else {
                Outcome::Retry {
                    at: h.until,
                    error: h.reason,
                }
            };
            return (outcome, work);
        }

        work.sent = true;
        let attempts = n.attempts + 1;
        let exponent = attempts + n.readbacks;
        let outcome = match provider.send(&n.id, &req).await {
            SendResult::Delivered { id } => {
                self.health.success(name);
                Outcome::Delivered {
                    provider_message_id: id,
                }
            }
            SendResult::Permanent { reason } => {
                // The provider answered: it works.
                self.health.success(name);
                if maybe_sent {
                    Outcome::Unknown {
                        recheck_at: None,
                        error: format!("refused ({reason}); an earlier attempt may have gone out"),
                    }
                } else {
                    Outcome::Failed { error: reason }
                }
            }
            SendResult::Transient {
                reason,
                retry_after,
            } => {
                self.health.failure(name, &reason, now);
                if attempts >= max {
                    gave_up(attempts, &reason)
                } else if maybe_sent {
                    Outcome::Unknown {
                        recheck_at: Some(now + self.backoff(exponent, retry_after)),
                        error: format!("{reason}; an earlier attempt may have gone out"),
                    }
                } else {
                    Outcome::Retry {
                        at: now + self.backoff(exponent, retry_after),
                        error: reason,
                    }
                }
            }
            SendResult::Ambiguous { reason } => {
                self.health.failure(name, &reason, now);
                match policy {
                    Ambiguity::RetrySameKey if attempts >= max => Outcome::Unknown {
                        recheck_at: None,
                        error: format!(
                            "gave up after {attempts} attempts; the last may have gone out: \
                             {reason}"
                        ),
                    },
                    Ambiguity::RetrySameKey => Outcome::Unknown {
                        recheck_at: Some(now + self.backoff(exponent, None)),
                        error: format!(
                            "may have gone out; sending again with the same key: {reason}"
                        ),
                    },
                    // Read back even after the last attempt: that settles it.
                    Ambiguity::Reconcile => Outcome::Unknown {
                        recheck_at: Some(now + secs(self.cfg.reconcile_after_secs)),
                        error: format!("may have gone out; reading back: {reason}"),
                    },
                    Ambiguity::Report => Outcome::Unknown {
                        recheck_at: None,
                        error: format!(
                            "may have gone out and this provider cannot be read back: {reason}"
                        ),
                    },
                }
            }
        };
        (outcome, work)
    }
}

/// The end of a notification that cannot be worked: `failed` when nothing can have gone out,
/// `unknown` (for good) when an attempt may have.
fn settle(maybe_sent: bool, error: String) -> Outcome {
    if maybe_sent {
        Outcome::Unknown {
            recheck_at: None,
            error: format!("{error}; an earlier attempt may have gone out"),
        }
    } else {
        Outcome::Failed { error }
    }
}

fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Delivered { .. } => "delivered",
        Outcome::Retry { .. } => "retry",
        Outcome::Unknown { .. } => "unknown",
        Outcome::Failed { .. } => "failed",
        Outcome::Expired => "expired",
    }
}
