//! Signed webhooks, the third kind of sink for the published events: each endpoint is
//! disabled after repeated failures and probed again after a cool-down, as mature webhook
//! services do (svix): one probe delivery once the cool-down has passed; a success enables the
//! endpoint again, a failure keeps it disabled for a cool-down twice as long (capped).
//!
//! ```toml
//! [[events.out.webhook]]
//! name = "crm"
//! url = "https://crm.example.com/hooks/dedupd"
//! secret_env = "CRM_WEBHOOK_SECRET"   # HMAC-SHA256 key, from the environment, never logged
//! max_failures = 10                   # consecutive failures, then the endpoint is disabled
//! cooldown_secs = 60                  # disabled this long, then one probe delivery
//! max_cooldown_secs = 3600            # each failed probe doubles the cool-down up to this
//! ```
//!
//! A request: `POST <url>`, `Content-Type: application/json`, the event as the body,
//! `Dedupd-Event-Id: <id>`, `Dedupd-Timestamp: <unix seconds>` and
//! `Dedupd-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`. Any 2xx is a delivery.
//!
//! The state of each endpoint is in the logs (one line when it is disabled, probed, enabled
//! again) and in the metrics: [`WEBHOOK_DISABLED`] (1 while disabled) and
//! [`WEBHOOK_DELIVERIES`] by outcome. Time is passed in ([`Hook::deliver`]'s `now`), so tests
//! move a clock instead of waiting.

use std::time::{Duration, Instant};

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::config::ConfigError;

/// Gauge: 1 while a webhook is disabled, 0 while it is enabled (label `webhook`).
pub const WEBHOOK_DISABLED: &str = "dedupd_events_webhook_disabled";
/// Counter: webhook requests by `webhook` and `outcome` (`delivered`, `failed`, `probe_ok`,
/// `probe_failed`); events passed over while disabled are `skipped`.
pub const WEBHOOK_DELIVERIES: &str = "dedupd_events_webhook_deliveries_total";

/// `[[events.out.webhook]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The endpoint's name (logs, metrics).
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// The environment variable holding the HMAC key.
    pub secret_env: String,
    /// Consecutive failures after which the endpoint is disabled (default 10).
    #[serde(default)]
    pub max_failures: Option<u32>,
    /// Seconds one request may take (default 10).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Seconds a disabled endpoint waits before its probe delivery (default 60).
    #[serde(default)]
    pub cooldown_secs: Option<u64>,
    /// The longest cool-down, which failed probes double up to (default 3600).
    #[serde(default)]
    pub max_cooldown_secs: Option<u64>,
}

/// A validated webhook. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct Webhook {
    name: String,
    url: String,
    secret: SecretString,
    max_failures: u32,
    timeout: Duration,
    cooldown: Duration,
    max_cooldown: Duration,
}

impl WebhookConfig {
    /// Validates the webhook at `key` (`events.out.webhook[0]`); `env` reads the secret.
    pub fn validate(
        &self,
        key: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Webhook, ConfigError> {
        let k = |name: &str| format!("{key}.{name}");
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(ConfigError {
                key: k("url"),
                reason: "not an http:// or https:// URL".into(),
            });
        }
        let secret = env(&self.secret_env)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ConfigError {
                key: k("secret_env"),
                reason: format!("the variable {} is not set", self.secret_env),
            })?;
        let cooldown = Duration::from_secs(self.cooldown_secs.unwrap_or(60));
        let max_cooldown = Duration::from_secs(self.max_cooldown_secs.unwrap_or(3600));
        if max_cooldown < cooldown {
            return Err(ConfigError {
                key: k("max_cooldown_secs"),
                reason: "must not be shorter than cooldown_secs".into(),
            });
        }
        Ok(Webhook {
            name: self.name.clone(),
            url: self.url.clone(),
            secret: SecretString::from(secret),
            max_failures: self.max_failures.unwrap_or(10).max(1),
            timeout: Duration::from_secs(self.timeout_secs.unwrap_or(10).max(1)),
            cooldown,
            max_cooldown,
        })
    }
}

/// The webhook signature: `v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut msg = format!("{timestamp}.").into_bytes();
    msg.extend_from_slice(body);
    let mac = dedupd_http::auth::hmac_sha256(secret.as_bytes(), &msg);
    let mut s = String::from("v1=");
    for b in mac {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Where an endpoint stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookState {
    /// Events are delivered; `failures` in a row so far.
    Enabled {
        /// Consecutive failures.
        failures: u32,
    },
    /// Events pass it by until `until`; the first event after that is its probe.
    Disabled {
        /// When the probe is due.
        until: Instant,
        /// The cool-down that set `until` (a failed probe doubles it).
        cooldown: Duration,
    },
}

/// What one event did at one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Delivered (2xx).
    Delivered,
    /// Not delivered and the endpoint is still enabled: the event is to be tried again.
    Failed(String),
    /// The endpoint is disabled and its probe is not due: the event passes it by.
    Skipped,
    /// Not delivered, and the endpoint is disabled now (this failure reached `max_failures`,
    /// or it was the probe): the event passes it by.
    Disabled(String),
    /// The probe was delivered: the endpoint is enabled again.
    Reenabled,
}

/// One endpoint and its state.
#[derive(Debug)]
pub struct Hook {
    hook: Webhook,
    state: HookState,
}

impl Hook {
    /// An enabled endpoint; its gauge is set to 0.
    pub fn new(hook: Webhook) -> Self {
        metrics::gauge!(WEBHOOK_DISABLED, "webhook" => hook.name.clone()).set(0.0);
        Self {
            hook,
            state: HookState::Enabled { failures: 0 },
        }
    }

    /// The endpoint's name.
    pub fn name(&self) -> &str {
        &self.hook.name
    }

    /// Where it stands.
    pub fn state(&self) -> HookState {
        self.state
    }

    /// Delivers `body` (the event `event_id`) at `now`: sent while enabled, or as the probe
    /// once a disabled endpoint's cool-down has passed; else passed by.
    pub async fn deliver(
        &mut self,
        http: &reqwest::Client,
        event_id: &str,
        body: &[u8],
        now: Instant,
    ) -> Delivery {
        if let HookState::Disabled { until, .. } = self.state
            && now < until
        {
            self.count("skipped");
            return Delivery::Skipped;
        }
        let sent = self.send(http, event_id, body).await;
        self.record(sent, now)
    }

    async fn send(
        &self,
        http: &reqwest::Client,
        event_id: &str,
        body: &[u8],
    ) -> Result<(), String> {
        let ts = Utc::now().timestamp();
        let sig = signature(self.hook.secret.expose_secret(), ts, body);
        let sent = http
            .post(&self.hook.url)
            .timeout(self.hook.timeout)
            .header("content-type", "application/json")
            .header("dedupd-event-id", event_id)
            .header("dedupd-timestamp", ts.to_string())
            .header("dedupd-signature", sig)
            .body(body.to_vec())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("status {}", r.status().as_u16())),
            Err(e) if e.is_timeout() => Err("timeout".into()),
            // reqwest's error text may carry the URL (and a token in it): never shown.
            Err(_) => Err("connection failed".into()),
        }
    }

    fn count(&self, outcome: &'static str) {
        metrics::counter!(WEBHOOK_DELIVERIES, "webhook" => self.hook.name.clone(), "outcome" => outcome)
            .increment(1);
    }

    fn disabled_gauge(&self, on: bool) {
        metrics::gauge!(WEBHOOK_DISABLED, "webhook" => self.hook.name.clone()).set(if on {
            1.0
        } else {
            0.0
        });
    }

    /// The state change of a request's result at `now`.
    fn record(&mut self, sent: Result<(), String>, now: Instant) -> Delivery {
        let name = self.hook.name.clone();
        match (self.state, sent) {
            (HookState::Enabled { .. }, Ok(())) => {
                self.state = HookState::Enabled { failures: 0 };
                self.count("delivered");
                Delivery::Delivered
            }
            (HookState::Enabled { failures }, Err(why)) => {
                self.count("failed");
                let failures = failures.saturating_add(1);
                if failures < self.hook.max_failures {
                    self.state = HookState::Enabled { failures };
                    return Delivery::Failed(why);
                }
                let cooldown = self.hook.cooldown;
                self.state = HookState::Disabled {
                    until: now + cooldown,
                    cooldown,
                };
                self.disabled_gauge(true);
                tracing::error!(webhook = %name, failures, %why, cooldown_secs = cooldown.as_secs(),
                    "Webhook disabled after repeated failures; events pass it by until a probe \
                     delivery after the cool-down succeeds.");
                Delivery::Disabled(why)
            }
            (HookState::Disabled { .. }, Ok(())) => {
                self.state = HookState::Enabled { failures: 0 };
                self.count("probe_ok");
                self.disabled_gauge(false);
                tracing::info!(webhook = %name, "Webhook probe delivered; the webhook is enabled again.");
                Delivery::Reenabled
            }
            (HookState::Disabled { cooldown, .. }, Err(why)) => {
                let cooldown = cooldown.saturating_mul(2).min(self.hook.max_cooldown);
                self.state = HookState::Disabled {
                    until: now + cooldown,
                    cooldown,
                };
                self.count("probe_failed");
                tracing::warn!(webhook = %name, %why, cooldown_secs = cooldown.as_secs(),
                    "Webhook probe failed; the webhook stays disabled for a longer cool-down.");
                Delivery::Disabled(why)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn hook(max_failures: u32, cooldown: u64, max_cooldown: u64) -> Hook {
        let cfg = WebhookConfig {
            name: "crm".into(),
            url: "http://127.0.0.1:9/hook".into(),
            secret_env: "S".into(),
            max_failures: Some(max_failures),
            timeout_secs: None,
            cooldown_secs: Some(cooldown),
            max_cooldown_secs: Some(max_cooldown),
        };
        Hook::new(cfg.validate("w", |_| Some("k".into())).unwrap())
    }

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let a = signature("s3cret", 1_700_000_000, b"{\"id\":\"x\"}");
        assert!(a.starts_with("v1=") && a.len() == 3 + 64, "{a}");
        assert_ne!(a, signature("s3cret", 1_700_000_001, b"{\"id\":\"x\"}"));
        assert_ne!(a, signature("s3cret", 1_700_000_000, b"{\"id\":\"y\"}"));
        assert_ne!(a, signature("other", 1_700_000_000, b"{\"id\":\"x\"}"));
        // RFC 4231 test case 2 through the same HMAC: key "Jefe".
        let mac = dedupd_http::auth::hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(mac[0], 0x5b);
    }

    #[test]
    fn failures_disable_probes_double_the_cooldown_up_to_the_cap_and_a_success_enables() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let mut h = hook(2, 10, 25);
        let fail = || Err::<(), _>("status 500".to_owned());
        assert_eq!(
            h.record(fail(), s(0)),
            Delivery::Failed("status 500".into())
        );
        assert_eq!(
            h.record(fail(), s(0)),
            Delivery::Disabled("status 500".into())
        );
        assert_eq!(
            h.state(),
            HookState::Disabled {
                until: s(10),
                cooldown: Duration::from_secs(10)
            }
        );
        // Failed probes: 20 s, then the cap (25 s), and it stays there.
        assert!(matches!(h.record(fail(), s(10)), Delivery::Disabled(_)));
        assert_eq!(
            h.state(),
            HookState::Disabled {
                until: s(30),
                cooldown: Duration::from_secs(20)
            }
        );
        h.record(fail(), s(30));
        h.record(fail(), s(55));
        assert_eq!(
            h.state(),
            HookState::Disabled {
                until: s(80),
                cooldown: Duration::from_secs(25)
            }
        );
        assert_eq!(h.record(Ok(()), s(80)), Delivery::Reenabled);
        assert_eq!(h.state(), HookState::Enabled { failures: 0 });
        // A success in between resets the count of failures.
        h.record(fail(), s(81));
        h.record(Ok(()), s(81));
        assert_eq!(
            h.record(fail(), s(82)),
            Delivery::Failed("status 500".into())
        );
    }

    #[test]
    fn the_config_names_its_errors_and_hides_the_secret() {
        let cfg = WebhookConfig {
            name: "crm".into(),
            url: "ftp://x".into(),
            secret_env: "S".into(),
            max_failures: None,
            timeout_secs: None,
            cooldown_secs: Some(100),
            max_cooldown_secs: Some(10),
        };
        let e = cfg.validate("w", |_| Some("k".into())).unwrap_err();
        assert_eq!(e.key, "w.url");
        let cfg = WebhookConfig {
            url: "http://x".into(),
            ..cfg
        };
        let e = cfg.validate("w", |_| Some("k".into())).unwrap_err();
        assert_eq!(e.key, "w.max_cooldown_secs");
        let cfg = WebhookConfig {
            max_cooldown_secs: None,
            ..cfg
        };
        assert_eq!(cfg.validate("w", |_| None).unwrap_err().key, "w.secret_env");
        let ok = cfg.validate("w", |_| Some("hunter2".into())).unwrap();
        assert!(!format!("{ok:?}").contains("hunter2"));
        assert_eq!(ok.cooldown, Duration::from_secs(100));
        assert_eq!(ok.max_cooldown, Duration::from_secs(3600));
    }
}
