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

/// The `channel` label: the channel if it is a known one, else `other`.
pub fn channel_label(channel: &str) -> &'static str {
    const KNOWN: &[&str] = &[
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
    ];
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(channel))
        .copied()
        .unwrap_or("other")
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
