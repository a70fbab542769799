//! Notifications through Genesys Cloud agentless messages: a [`NotificationSender`] that does
//! not dedupe (the request has no idempotency key) and can be read back
//! ([`crate::agentless::AgentlessApi::find_sent`]), so the relay reconciles an ambiguous send
//! instead of resending it blindly.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dedupd_core::notification::{Channel, NotificationRequest};
use dedupd_platform::messaging::BoxFuture;
use dedupd_platform::notify::{
    NotificationSender, Readback, SendResult, SenderCapabilities, is_opaque_code, status_summary,
};
use reqwest::StatusCode;

use crate::agentless::AgentlessMessage;
use crate::{Error, GenesysClient};

/// Genesys Cloud agentless messages (sms, whatsapp), from a configured sender per channel.
#[derive(Debug, Clone)]
pub struct AgentlessSender {
    client: GenesysClient,
    from: BTreeMap<Channel, String>,
}

impl AgentlessSender {
    /// A sender through `client`, from `from[channel]`.
    pub fn new(client: GenesysClient, from: BTreeMap<Channel, String>) -> Self {
        Self { client, from }
    }

    fn message(&self, req: &NotificationRequest) -> Result<AgentlessMessage, String> {
        let from = self
            .from
            .get(&req.channel)
            .ok_or_else(|| format!("no sender configured for {}", req.channel))?;
        let messenger = match req.channel {
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
            other => return Err(format!("agentless messages cannot send {other}")),
        };
        Ok(AgentlessMessage {
            from_address: from.clone(),
            to_address: req.to.clone(),
            to_address_messenger_type: messenger.into(),
            text_body: Some(req.text.clone()),
            ..Default::default()
        })
    }

    async fn send_one(&self, req: &NotificationRequest) -> SendResult {
        let msg = match self.message(req) {
            Ok(m) => m,
            Err(reason) => return SendResult::Permanent { reason },
        };
        let values = [req.to.as_str(), req.text.as_str()];
        match self.client.agentless().send(&msg).await {
            Ok(sent) => SendResult::Delivered { id: Some(sent.id) },
            // A 5xx answers a request that reached the platform: it may have been applied
            // (the platform has no key to dedupe on, so it is read back, never resent blindly).
            Err(e)
                if e.is_outcome_unknown()
                    || matches!(&e, Error::Api(a)
                        if a.status.is_server_error()
                            && a.status != StatusCode::NOT_IMPLEMENTED) =>
            {
                SendResult::Ambiguous {
                    reason: summary(&e, &values),
                }
            }
            Err(e) if e.is_transient() => SendResult::Transient {
                reason: summary(&e, &values),
                retry_after: match &e {
                    Error::Api(a) => a.retry_after,
                    _ => None,
                },
            },
            Err(e) => SendResult::Permanent {
                reason: summary(&e, &values),
            },
        }
    }

    async fn find_one(
        &self,
        req: &NotificationRequest,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Readback {
        // A message that cannot be built was never sent.
        let Ok(msg) = self.message(req) else {
            return Readback::NotFound;
        };
        match self
            .client
            .agentless()
            .find_sent(&msg.from_address, &msg.to_address, &req.text, since, until)
            .await
        {
            Ok(Some(found)) => Readback::Found(found.message_id),
            Ok(None) => Readback::NotFound,
            Err(e) => Readback::Failed(summary(&e, &[req.to.as_str(), req.text.as_str()])),
        }
    }
}

impl NotificationSender for AgentlessSender {
    fn capabilities(&self) -> SenderCapabilities {
        SenderCapabilities {
            dedupes_on_key: false,
            read_back: true,
        }
    }

    // The platform has no key to send: `id` is not used (the read-back matches on sender,
    // recipient and text).
    fn send<'a>(&'a self, _id: &'a str, req: &'a NotificationRequest) -> BoxFuture<'a, SendResult> {
        Box::pin(self.send_one(req))
    }

    fn find<'a>(
        &'a self,
        _id: &'a str,
        req: &'a NotificationRequest,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> BoxFuture<'a, Readback> {
        Box::pin(self.find_one(req, since, until))
    }
}

fn status_line(status: StatusCode, code: Option<&str>, values: &[&str]) -> String {
    status_summary(status.as_u16(), status.canonical_reason(), code, values)
}

/// A value-free summary of a client error (its `Display` carries the platform's message,
/// which may echo the request): statuses, error codes and the context id, never one of
/// `values` (the recipient, the text, the sender's address).
pub(crate) fn summary(e: &Error, values: &[&str]) -> String {
    match e {
        Error::Api(_) | Error::Token(_) => match e.status() {
            Some(status) => {
                let body = e.error_body();
                let s = status_line(status, body.and_then(|b| b.code.as_deref()), values);
                match body.and_then(|b| b.context_id.as_deref()) {
                    // Genesys support asks for it; an opaque id.
                    Some(ctx) if is_opaque_code(ctx, values) || uuid_like(ctx) => {
                        format!("{s}; contextId {ctx}")
                    }
                    _ => s,
                }
            }
            None => "the platform refused the request".into(),
        },
        Error::OutcomeUnknown(_) => match e.status() {
            Some(status) => format!(
                "{}; it may have been applied",
                status_line(status, None, values)
            ),
            None => "the request timed out after it was sent; it may have been applied".into(),
        },
        Error::Transport { transient, .. } => if *transient {
            "the connection failed"
        } else {
            "the request failed without an answer"
        }
        .into(),
        Error::Decode { status, .. } => {
            format!(
                "{}; the answer could not be read",
                status_line(*status, None, values)
            )
        }
        Error::Budget(_) => "the shared rate budget is unavailable".into(),
        Error::InvalidRequest(_) => "the message breaks a documented limit of the platform".into(),
        Error::Config(_) => "the Genesys client is misconfigured".into(),
        // Where and for how long, and the last failure's kind: no request data.
        Error::Unreachable(u) => u.to_string(),
    }
}

fn uuid_like(s: &str) -> bool {
    s.len() <= 64 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}
