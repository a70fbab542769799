//! The gateway's decisions as events (`[events.out] gateway_decisions = true`): one
//! [`DecisionEvent`] per decided message, handed to a [`DecisionObserver`] that must not block
//! (`dedupd serve` queues it for the events publisher).
//!
//! An event never carries the message's text, a phone number or an e-mail address: the
//! message is named by its fingerprint and its channel's `message_id`, the customer by the
//! contact id when the contact index knows the sender, else only by the kind of address.
//!
//! The id is stable, so consumers dedupe on it: `<fingerprint>:<first seen, unix ms>:<n>`,
//! where `n` is the number of duplicates of the window's first message so far (0 for a
//! PROCESS), so every decision of one window has its own id and a re-publish of one decision
//! keeps it. A degraded PROCESS (the window was not asked) adds `:degraded:<nanoseconds>`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::api::{Decision, DecisionResponse, DuplicateOf};

/// The schema name of the decision events (versioned; documented in the README).
pub const DECISION_EVENT_SCHEMA: &str = "dedupd.gateway.decision/v1";

/// One decision of the gateway, as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionEvent {
    /// `dedupd.gateway.decision/v1`.
    pub schema: String,
    /// Stable and unique per decision (see the module).
    pub id: String,
    /// `PROCESS` or `SUPPRESS`.
    pub decision: Decision,
    /// The message fingerprint (SHA-256, hex).
    pub fingerprint: String,
    /// The contact id of the sender when the contact index knows it; `None` for an address it
    /// does not know (the address itself is never published).
    pub customer: Option<String>,
    /// `contact`, or the kind of an unknown sender's address (`phone`, `email`, `opaque`).
    pub customer_kind: String,
    /// The channel the message came on.
    pub channel: String,
    /// The message's id on its channel, if it had one.
    pub message_id: Option<String>,
    /// For a SUPPRESS: the window's first message (its ids, channel and time; no content).
    pub duplicate_of: Option<DuplicateOf>,
    /// Duplicates of the first message so far (this one included); 0 for PROCESS.
    pub duplicates: u64,
    /// The window applied, in seconds.
    pub window_seconds: u64,
    /// A PROCESS flagged as a near-duplicate of a recent message of the same customer.
    pub near_duplicate: bool,
    /// Decided without the window (its backend was unreachable).
    pub degraded: bool,
    /// When it was decided (UTC).
    pub at: DateTime<Utc>,
}

impl DecisionEvent {
    /// The event of `answer` for a message on `channel` with `message_id`, decided at `now`;
    /// `contact` is the sender's contact id when known, else `kind` names its address kind.
    pub fn of(
        answer: &DecisionResponse,
        channel: &str,
        message_id: Option<&str>,
        contact: Option<&str>,
        kind: &str,
        now: DateTime<Utc>,
    ) -> Self {
        let first = answer
            .duplicate_of
            .as_ref()
            .map_or(now, |d| d.first_seen_at);
        let mut id = format!(
            "{}:{}:{}",
            answer.fingerprint,
            first.timestamp_millis(),
            answer.duplicates
        );
        if answer.degraded {
            id.push_str(&format!(
                ":degraded:{}",
                now.timestamp_nanos_opt().unwrap_or_default()
            ));
        }
        Self {
            schema: DECISION_EVENT_SCHEMA.to_owned(),
            id,
            decision: answer.decision,
            fingerprint: answer.fingerprint.clone(),
            customer: contact.map(str::to_owned),
            customer_kind: if contact.is_some() {
                "contact".to_owned()
            } else {
                kind.to_owned()
            },
            channel: channel.to_owned(),
            message_id: message_id.map(str::to_owned),
            duplicate_of: answer.duplicate_of.clone(),
            duplicates: answer.duplicates,
            window_seconds: answer.window_seconds,
            near_duplicate: answer.near_duplicate_of.is_some(),
            degraded: answer.degraded,
            at: now,
        }
    }

    /// `gateway.process` or `gateway.suppress` (the AMQP routing key).
    pub fn routing_key(&self) -> &'static str {
        match self.decision {
            Decision::Process => "gateway.process",
            Decision::Suppress => "gateway.suppress",
        }
    }
}

/// Receives every decision; called on the request path, so it must not block or wait.
pub type DecisionObserver = std::sync::Arc<dyn Fn(&DecisionEvent) + Send + Sync>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn answer(
        decision: Decision,
        duplicates: u64,
        first: Option<DateTime<Utc>>,
    ) -> DecisionResponse {
        DecisionResponse {
            decision,
            fingerprint: "ab".repeat(32),
            customer: "phone:+14155552671".into(),
            duplicate_of: first.map(|t| DuplicateOf {
                message_id: Some("m1".into()),
                conversation_id: None,
                first_seen_at: t,
                channel: "sms".into(),
            }),
            duplicates,
            window_seconds: 300,
            near_duplicate_of: None,
            degraded: false,
        }
    }

    #[test]
    fn ids_are_stable_and_distinct_per_decision_and_carry_no_address() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let t1 = t0 + chrono::Duration::seconds(5);
        let first = DecisionEvent::of(
            &answer(Decision::Process, 0, None),
            "sms",
            Some("m1"),
            None,
            "phone",
            t0,
        );
        let dup1 = DecisionEvent::of(
            &answer(Decision::Suppress, 1, Some(t0)),
            "chat",
            Some("m2"),
            None,
            "phone",
            t1,
        );
        let dup2 = DecisionEvent::of(
            &answer(Decision::Suppress, 2, Some(t0)),
            "email",
            None,
            None,
            "phone",
            t1,
        );
        assert_eq!(first.id, format!("{}:1700000000000:0", "ab".repeat(32)));
        assert_ne!(first.id, dup1.id);
        assert_ne!(dup1.id, dup2.id);
        // The same decision built again (a re-publish) has the same id.
        let again = DecisionEvent::of(
            &answer(Decision::Suppress, 1, Some(t0)),
            "chat",
            Some("m2"),
            None,
            "phone",
            t1,
        );
        assert_eq!(again, dup1);
        let json = serde_json::to_string(&dup1).unwrap();
        assert!(!json.contains("4155552671"), "{json}");
        assert_eq!(dup1.customer, None);
        assert_eq!(dup1.customer_kind, "phone");
        assert_eq!(dup1.routing_key(), "gateway.suppress");
        let known = DecisionEvent::of(
            &answer(Decision::Process, 0, None),
            "sms",
            None,
            Some("C-17"),
            "phone",
            t0,
        );
        assert_eq!(
            (known.customer.as_deref(), known.customer_kind.as_str()),
            (Some("C-17"), "contact")
        );
    }
}
