//! `[notifications]` configuration: backend, key retention, content guard, relay limits,
//! providers and which provider serves which channel.
//!
//! ```toml
//! [notifications]
//! outbox = ".dedupd/outbox"          # embedded backend (default); or
//! # postgres = "postgres://dedupd@db/dedupd"   (or --postgres / DEDUPD_POSTGRES_URL)
//! retention_hours = 24               # keys are replayed for at least this long (>= 24)
//! guard = "report"                   # off | report | suppress
//! guard_window_minutes = 1440
//!
//! [notifications.channels]
//! sms = "genesys"
//! email = "mailer"
//!
//! [notifications.providers.genesys]
//! type = "genesys_agentless"
//! from = { sms = "+13175550100", whatsapp = "+13175550100" }
//!
//! [notifications.providers.mailer]
//! type = "http"
//! url = "https://mail.example.com/v1/send"
//! token_env = "MAILER_TOKEN"         # sent as a bearer token; never logged
//!
//! [notifications.relay]
//! max_attempts = 8
//! max_age_hours = 24
//! provider_pause_after_secs = 300    # a provider without a success this long is paused
//! provider_probe_secs = 60           # …and probed once per this while paused
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use dedupd_core::notification::Channel;
use dedupd_store::outbox::{AcceptOptions, GuardMode};
use serde::Deserialize;

use crate::NotifyError;

/// The `[notifications]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The embedded outbox's directory (default: `outbox` in the state directory).
    #[serde(default)]
    pub outbox: Option<PathBuf>,
    /// A PostgreSQL URL: the outbox lives there instead (several relays can share it).
    #[serde(default)]
    pub postgres: Option<String>,
    /// How long keys are kept and replayed, in hours (at least 24).
    #[serde(default = "default_24")]
    pub retention_hours: u32,
    /// The content guard.
    #[serde(default)]
    pub guard: GuardMode,
    /// The content guard's window, in minutes.
    #[serde(default = "default_guard_window")]
    pub guard_window_minutes: u32,
    /// The provider of each channel (by provider name).
    #[serde(default)]
    pub channels: BTreeMap<Channel, String>,
    /// The providers, by name.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Whether a request may name its provider (`provider` field).
    #[serde(default = "default_true")]
    pub allow_provider_override: bool,
    /// The relay.
    #[serde(default)]
    pub relay: RelayConfig,
}

fn default_24() -> u32 {
    24
}
fn default_guard_window() -> u32 {
    24 * 60
}
fn default_true() -> bool {
    true
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            outbox: None,
            postgres: None,
            retention_hours: default_24(),
            guard: GuardMode::default(),
            guard_window_minutes: default_guard_window(),
            channels: BTreeMap::new(),
            providers: BTreeMap::new(),
            allow_provider_override: true,
            relay: RelayConfig::default(),
        }
    }
}

/// One provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProviderConfig {
    /// Genesys Cloud agentless messages (sms, whatsapp). Credentials come from the
    /// environment (`GENESYS_CLIENT_ID`, `GENESYS_CLIENT_SECRET`, `GENESYS_BASE_URL` or
    /// `GENESYS_REGION`). Does not dedupe: ambiguous sends are reconciled, never resent blindly.
    GenesysAgentless {
        /// The sender per channel (for SMS a provisioned number).
        from: BTreeMap<Channel, String>,
    },
    /// NICE CXone Digital (DFO) outbound messages, one DFO channel per notification channel.
    /// Credentials come from the environment (`CXONE_CLIENT_ID`, `CXONE_CLIENT_SECRET`,
    /// `CXONE_ACCESS_KEY_ID`, `CXONE_ACCESS_KEY_SECRET`, `CXONE_TENANT_ID` or `CXONE_ISSUER`
    /// for a stand-in). CXone takes no idempotency key: an ambiguous send is read back by its
    /// thread before anything is sent again.
    CxoneDfo {
        /// The DFO channel id per notification channel (`sms = "chat_…"`).
        channels: BTreeMap<Channel, String>,
    },
    /// A generic HTTP gateway: `POST url` with the notification as JSON and the same
    /// `Idempotency-Key` on every attempt.
    Http {
        /// Where to post.
        url: String,
        /// The environment variable holding a bearer token (optional).
        #[serde(default)]
        token_env: Option<String>,
        /// Whether the gateway dedupes on `Idempotency-Key` (default true). When false, an
        /// ambiguous attempt ends `unknown` (this provider has no read-back).
        #[serde(default = "default_true")]
        dedupes_on_key: bool,
    },
}

impl ProviderConfig {
    /// The channels this provider can serve.
    pub fn supports(&self, channel: Channel) -> bool {
        match self {
            ProviderConfig::GenesysAgentless { from } => {
                matches!(channel, Channel::Sms | Channel::Whatsapp) && from.contains_key(&channel)
            }
            ProviderConfig::CxoneDfo { channels } => {
                channel != Channel::Voice && channels.contains_key(&channel)
            }
            ProviderConfig::Http { .. } => true,
        }
    }
}

/// The relay's limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Sends at most, then `failed` when none can have gone out, else `unknown` (after a
    /// read-back where the provider allows one, which settles it). Read-backs are not sends;
    /// there are at most twice as many.
    pub max_attempts: u32,
    /// Give up this long after acceptance, in hours.
    pub max_age_hours: u32,
    /// Scale of the first backoff, in milliseconds (full jitter: a random delay up to
    /// `base · 2^(attempt-1)`, capped).
    pub base_delay_ms: u64,
    /// Cap of one backoff, in milliseconds (a provider's `Retry-After` may exceed it).
    pub max_delay_ms: u64,
    /// How long a claim holds a notification, in seconds; must exceed `request_timeout_secs`
    /// so an expired lease means the holder's request is over.
    pub lease_secs: u64,
    /// Timeout of one provider request, in seconds.
    pub request_timeout_secs: u64,
    /// Wait before reading back an ambiguous send, in seconds (the platform's records settle).
    pub reconcile_after_secs: u64,
    /// Notifications claimed per round.
    pub batch: usize,
    /// Sleep between rounds when nothing is due, in milliseconds.
    pub poll_ms: u64,
    /// A provider that has had no success for this long while being tried is paused: its
    /// notifications are held (no attempt used, nothing dropped), in seconds.
    pub provider_pause_after_secs: u64,
    /// While a provider is paused, one of its notifications probes it this often, in seconds;
    /// the first success resumes it.
    pub provider_probe_secs: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            max_age_hours: 24,
            base_delay_ms: 500,
            max_delay_ms: 60_000,
            lease_secs: 60,
            request_timeout_secs: 20,
            reconcile_after_secs: 5,
            batch: 32,
            poll_ms: 200,
            provider_pause_after_secs: 300,
            provider_probe_secs: 60,
        }
    }
}

impl RelayConfig {
    /// The lease as a duration.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    /// The timeout of one provider request as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

impl NotifyConfig {
    /// Checks the section: retention at least 24 h, every channel mapped to a configured
    /// provider that supports it, lease longer than the request timeout.
    pub fn validate(&self) -> Result<(), NotifyError> {
        let bad = |m: String| Err(NotifyError::Config(m));
        if self.retention_hours < 24 {
            return bad(format!(
                "notifications.retention_hours is {}; keys must be kept at least 24 hours",
                self.retention_hours
            ));
        }
        for (channel, name) in &self.channels {
            match self.providers.get(name) {
                None => {
                    return bad(format!(
                        "notifications.channels.{channel} names provider `{name}`, which is not configured"
                    ));
                }
                Some(p) if !p.supports(*channel) => {
                    return bad(format!(
                        "provider `{name}` cannot send {channel} (genesys_agentless sends sms and whatsapp, with a `from` for each)"
                    ));
                }
                Some(_) => {}
            }
        }
        if self.relay.lease_secs <= self.relay.request_timeout_secs {
            return bad("notifications.relay.lease_secs must exceed request_timeout_secs".into());
        }
        if self.relay.max_attempts == 0 || self.relay.batch == 0 {
            return bad("notifications.relay.max_attempts and batch must be at least 1".into());
        }
        if self.relay.provider_pause_after_secs == 0 || self.relay.provider_probe_secs == 0 {
            return bad(
                "notifications.relay.provider_pause_after_secs and provider_probe_secs must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }

    /// What accepting a request uses.
    pub fn accept_options(&self) -> AcceptOptions {
        AcceptOptions {
            retention: chrono::Duration::hours(i64::from(self.retention_hours)),
            guard: self.guard,
            guard_window: chrono::Duration::minutes(i64::from(self.guard_window_minutes)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let cfg: NotifyConfig = toml_like(
            r#"{"guard":"suppress","channels":{"sms":"g","email":"m"},
                "providers":{"g":{"type":"genesys_agentless","from":{"sms":"+13175550100"}},
                             "m":{"type":"http","url":"http://x"}}}"#,
        );
        cfg.validate().unwrap();
        assert_eq!(cfg.accept_options().guard, GuardMode::Suppress);

        let mut wrong = cfg.clone();
        wrong.channels.insert(Channel::Email, "g".into());
        assert!(
            wrong
                .validate()
                .unwrap_err()
                .to_string()
                .contains("cannot send email")
        );
        let mut short = cfg.clone();
        short.retention_hours = 1;
        assert!(short.validate().is_err());
        let mut missing = cfg.clone();
        missing.channels.insert(Channel::Voice, "nope".into());
        assert!(missing.validate().is_err());
        let mut never_pause = cfg;
        never_pause.relay.provider_pause_after_secs = 0;
        assert!(
            never_pause
                .validate()
                .unwrap_err()
                .to_string()
                .contains("provider_pause_after_secs")
        );
    }

    fn toml_like(json: &str) -> NotifyConfig {
        serde_json::from_str(json).unwrap()
    }
}
