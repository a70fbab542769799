//! The gateway's metric names (constants, never ad-hoc strings) and label helpers. Labels are
//! low-cardinality: channels outside a known list are `other`; no addresses, texts or ids.

/// Counter: decisions by `channel`, `decision` (`PROCESS`/`SUPPRESS`) and `reason`
/// (`first`, `near_duplicate`, `duplicate`, `degraded`).
pub const DECISIONS: &str = "dedupd_gateway_decisions_total";
/// Histogram (seconds): one window claim, by `backend`.
pub const BACKEND_SECONDS: &str = "dedupd_gateway_backend_seconds";
/// Counter: window calls that failed, by `backend`.
pub const BACKEND_ERRORS: &str = "dedupd_gateway_backend_errors_total";
/// Gauge: entries held by the embedded window.
pub const WINDOW_ENTRIES: &str = "dedupd_gateway_window_entries";
/// Gauge (seconds): how far back the embedded window really reaches (less than the configured
/// window when the entry cap evicts early).
pub const WINDOW_EFFECTIVE_SECONDS: &str = "dedupd_gateway_window_effective_seconds";
/// Counter: forwards to the platform by `result` (`sent`, `failed`, `outcome_unknown`,
/// `dropped`).
pub const FORWARDS: &str = "dedupd_gateway_forwards_total";
/// Counter: duplicate-recording attribute updates by `result` (`set`, `failed`,
/// `no_conversation`, `dropped`).
pub const DUPLICATE_ATTRIBUTES: &str = "dedupd_gateway_duplicate_attributes_total";

/// Describes every gateway metric and registers the series that exist without traffic at zero
/// (the per-decision counters are registered by [`crate::Gateway::register_metrics`]). Call once
/// the recorder is installed.
pub fn describe() {
    metrics::describe_counter!(
        DECISIONS,
        "Messages decided, by channel, decision (PROCESS, SUPPRESS) and reason."
    );
    metrics::describe_histogram!(
        BACKEND_SECONDS,
        metrics::Unit::Seconds,
        "Latency of one dedup window claim, by backend."
    );
    metrics::describe_counter!(
        BACKEND_ERRORS,
        "Dedup window calls that failed, by backend."
    );
    metrics::describe_gauge!(WINDOW_ENTRIES, "Entries held by the embedded dedup window.");
    metrics::describe_gauge!(
        WINDOW_EFFECTIVE_SECONDS,
        metrics::Unit::Seconds,
        "How far back the embedded window really reaches (less than configured when the cap evicts)."
    );
    metrics::describe_counter!(FORWARDS, "Forwards to the platform, by result.");
    metrics::describe_counter!(
        DUPLICATE_ATTRIBUTES,
        "Duplicate-recording attribute updates on the first conversation, by result."
    );
    for result in ["sent", "failed", "outcome_unknown", "dropped"] {
        metrics::counter!(FORWARDS, "result" => result).increment(0);
    }
    for result in ["set", "failed", "no_conversation", "dropped"] {
        metrics::counter!(DUPLICATE_ATTRIBUTES, "result" => result).increment(0);
    }
    metrics::gauge!(WINDOW_ENTRIES).increment(0.0);
    metrics::gauge!(WINDOW_EFFECTIVE_SECONDS).increment(0.0);
}

/// The channels that get their own `channel` label; any other is `other` (the last label).
const CHANNELS: &[&str] = &[
    "sms",
    "chat",
    "email",
    "whatsapp",
    "messenger",
    "facebook",
    "instagram",
    "twitter",
    "line",
    "telegram",
    "apple",
    "webchat",
    "web",
    "open",
    "voice",
    "other",
];

/// Why a message got its decision: the `reason` label, and the `decision` it implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// PROCESS: the first of its window.
    First,
    /// PROCESS: first, but very similar to a recent message of the customer.
    NearDuplicate,
    /// SUPPRESS: a duplicate within the window.
    Duplicate,
    /// PROCESS: the backend was down and the degraded policy decided.
    Degraded,
}

impl Reason {
    const ALL: [Reason; 4] = [
        Reason::First,
        Reason::NearDuplicate,
        Reason::Duplicate,
        Reason::Degraded,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::First => "first",
            Reason::NearDuplicate => "near_duplicate",
            Reason::Duplicate => "duplicate",
            Reason::Degraded => "degraded",
        }
    }

    fn decision(self) -> &'static str {
        match self {
            Reason::Duplicate => "SUPPRESS",
            _ => "PROCESS",
        }
    }
}

fn channel_index(channel: &str) -> usize {
    CHANNELS[..CHANNELS.len() - 1]
        .iter()
        .position(|k| k.eq_ignore_ascii_case(channel))
        .unwrap_or(CHANNELS.len() - 1)
}

/// The `channel` label: the channel if it is a known one, else `other`.
pub fn channel_label(channel: &str) -> &'static str {
    CHANNELS[channel_index(channel)]
}

/// The per-request metric handles, registered once: a labelled `metrics::counter!` looks its
/// series up in the registry on every call (about 1 µs a request under load, measured), a
/// handle is one atomic add.
pub(crate) struct Handles {
    /// By channel, then reason.
    decisions: Vec<metrics::Counter>,
    backend_seconds: metrics::Histogram,
}

impl Handles {
    /// Registers every (channel, reason) series and the backend histogram with the installed
    /// recorder. Call after the recorder is installed (the gateway does, on its first message).
    pub(crate) fn register(backend: &'static str) -> Handles {
        let mut decisions = Vec::with_capacity(CHANNELS.len() * Reason::ALL.len());
        for channel in CHANNELS {
            for reason in Reason::ALL {
                decisions.push(metrics::counter!(
                    DECISIONS,
                    "channel" => *channel,
                    "decision" => reason.decision(),
                    "reason" => reason.as_str(),
                ));
            }
        }
        metrics::counter!(BACKEND_ERRORS, "backend" => backend).increment(0);
        Handles {
            decisions,
            backend_seconds: metrics::histogram!(BACKEND_SECONDS, "backend" => backend),
        }
    }

    /// Counts one decision.
    pub(crate) fn decided(&self, channel: &str, reason: Reason) {
        let i = channel_index(channel) * Reason::ALL.len() + reason as usize;
        if let Some(counter) = self.decisions.get(i) {
            counter.increment(1);
        }
    }

    /// Records one backend call's latency.
    pub(crate) fn backend_latency(&self, seconds: f64) {
        self.backend_seconds.record(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_channels_share_one_label() {
        assert_eq!(channel_label("SMS"), "sms");
        assert_eq!(channel_label("carrier-pigeon"), "other");
    }
}
