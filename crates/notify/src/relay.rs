//! The relay: claims due notifications from the outbox, sends them, records the outcome.
//!
//! Per claimed notification:
//! 1. `not_after` passed → `expired` (after a read-back if an attempt may have gone out).
//! 2. The previous attempt may have gone out (the claim found it `sending`: a relay died or
//!    lost its lease; or `unknown`) and the provider does not dedupe → read back first:
//!    found → `delivered`; not found → send; read-back failed → `unknown`, check again later.
//! 3. The attempt or age cap is reached → `failed` (`unknown` if the last outcome was
//!    ambiguous and could not be settled).
//! 4. Send: delivered → `delivered`; transient → `pending` again after a backoff (full jitter,
//!    the provider's `Retry-After` when longer); permanent → `failed` with the provider's
//!    reason; ambiguous → per the provider's [`Ambiguity`] policy.
//!
//! Logs carry keys, ids and statuses, never recipients or text.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dedupd_core::notification::{NotificationRequest, Status};
use dedupd_genesys::RetryPolicy;
use dedupd_store::outbox::{Claimed, Outbox, Outcome};
use futures_util::future::join_all;

use crate::clock::Clock;
use crate::config::RelayConfig;
use crate::provider::{Ambiguity, Provider, Readback, SendResult};

/// How far before the first claim a read-back looks (clock skew between us and the platform).
const READBACK_SKEW: chrono::Duration = chrono::Duration::minutes(2);

/// The relay. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Relay {
    outbox: Outbox,
    providers: Arc<BTreeMap<String, Provider>>,
    cfg: RelayConfig,
    clock: Clock,
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

impl Relay {
    /// A relay over `outbox` with `providers` by name.
    pub fn new(
        outbox: Outbox,
        providers: BTreeMap<String, Provider>,
        cfg: RelayConfig,
        clock: Clock,
    ) -> Self {
        Self {
            outbox,
            providers: Arc::new(providers),
            cfg,
            clock,
        }
    }

    fn backoff(&self, attempts: u32, retry_after: Option<Duration>) -> chrono::Duration {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(self.cfg.base_delay_ms),
            max_delay: Duration::from_millis(self.cfg.max_delay_ms),
            ..RetryPolicy::default()
        };
        // Full jitter; a longer Retry-After from the provider wins.
        let jitter = policy.backoff(attempts, fastrand::f64());
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
        loop {
            let pause = match self.round().await {
                Ok(s) if s.claimed > 0 => Duration::ZERO,
                Ok(_) => idle,
                Err(e) => {
                    tracing::warn!(error = %e, "Relay round failed; retrying");
                    idle.max(Duration::from_secs(1))
                }
            };
            let now = self.clock.now();
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
        let outcome = self.decide(&c).await;
        let now = self.clock.now();
        tracing::debug!(key = %n.key, id = %n.id, outcome = ?outcome_name(&outcome), "Relay outcome");
        let recorded = self.outbox.finish(&n.key, &lease, outcome, now).await?;
        if !recorded {
            tracing::warn!(key = %n.key, id = %n.id, "Lease lost before the outcome was recorded");
        }
        Ok(recorded)
    }

    async fn decide(&self, c: &Claimed) -> Outcome {
        let n = &c.notification;
        let now = self.clock.now();
        let req: NotificationRequest = match serde_json::from_value(n.request.clone()) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Failed {
                    error: format!("stored request cannot be read: {e}"),
                };
            }
        };
        let Some(provider) = self.providers.get(&n.provider) else {
            return Outcome::Failed {
                error: format!("provider `{}` is not configured", n.provider),
            };
        };
        let maybe_sent = matches!(c.previous, Status::Sending | Status::Unknown);
        let policy = provider.ambiguity();
        let out_of_attempts = n.attempts > self.cfg.max_attempts
            || now - n.created_at > chrono::Duration::hours(i64::from(self.cfg.max_age_hours));

        if maybe_sent && policy != Ambiguity::RetrySameKey {
            let since = n.first_attempt_at.unwrap_or(n.created_at) - READBACK_SKEW;
            match provider.find(&req, since, now).await {
                Readback::Found(id) => {
                    return Outcome::Delivered {
                        provider_message_id: Some(id),
                    };
                }
                Readback::NotFound => {}
                Readback::Failed(e) => {
                    let give_up = out_of_attempts || policy == Ambiguity::Report;
                    return Outcome::Unknown {
                        recheck_at: (!give_up).then(|| now + self.backoff(n.attempts, None)),
                        error: format!(
                            "an earlier attempt may have gone out; read-back failed: {e}"
                        ),
                    };
                }
            }
        }
        if req.not_after.is_some_and(|t| now > t) {
            return Outcome::Expired;
        }
        if out_of_attempts {
            return Outcome::Failed {
                error: format!(
                    "gave up after {} attempts; last error: {}",
                    n.attempts.saturating_sub(1),
                    n.last_error.as_deref().unwrap_or("none")
                ),
            };
        }
        match provider.send(&n.id, &req).await {
            SendResult::Delivered { id } => Outcome::Delivered {
                provider_message_id: id,
            },
            SendResult::Transient {
                reason,
                retry_after,
            } => Outcome::Retry {
                at: now + self.backoff(n.attempts, retry_after),
                error: reason,
            },
            SendResult::Permanent { reason } => Outcome::Failed { error: reason },
            SendResult::Ambiguous { reason } => match policy {
                Ambiguity::RetrySameKey => Outcome::Retry {
                    at: now + self.backoff(n.attempts, None),
                    error: format!("ambiguous, resending with the same key: {reason}"),
                },
                Ambiguity::Reconcile => Outcome::Unknown {
                    recheck_at: Some(
                        now + chrono::Duration::seconds(
                            i64::try_from(self.cfg.reconcile_after_secs).unwrap_or(5),
                        ),
                    ),
                    error: format!("ambiguous, reconciling: {reason}"),
                },
                Ambiguity::Report => Outcome::Unknown {
                    recheck_at: None,
                    error: format!("ambiguous and the provider cannot be read back: {reason}"),
                },
            },
        }
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
