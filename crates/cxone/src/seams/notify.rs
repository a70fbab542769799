//! [`NotificationSender`] for CXone: DFO outbound (`POST /dfo/3.0/channels/{id}/outbound`).
//!
//! CXone has **no idempotency key** on any send (api-notes §3): the capabilities say so
//! (`dedupes_on_key: false`), and an ambiguous attempt (a 5xx, a timeout after sending) is
//! never resent by the client; it is [`SendResult::Ambiguous`] and the relay reads it back.
//! The handle for the read-back is the thread: every notification opens a thread whose
//! `idOnExternalPlatform` dedupd chooses, [`thread_id`]`(notification id)`, and
//! [`NotificationSender::find`] looks for exactly that thread (`GET /dfo/3.0/threads`). Found
//! → it went out; no such thread → it did not.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dedupd_core::notification::{Channel as NotifyChannel, NotificationRequest};
use dedupd_platform::messaging::BoxFuture;
use dedupd_platform::notify::{NotificationSender, Readback, SendResult, SenderCapabilities};

use super::summary;
use crate::{CxoneClient, Error, MessageContent, OutboundMessage, Recipient, ThreadRef};

/// The thread a notification opens: `dedupd-n-{id}`.
pub fn thread_id(notification_id: &str) -> String {
    format!("dedupd-n-{notification_id}")
}

/// Sends notifications through DFO channels, one channel id per notification channel.
#[derive(Debug, Clone)]
pub struct DfoSender {
    client: CxoneClient,
    channels: BTreeMap<NotifyChannel, String>,
}

impl DfoSender {
    /// A sender through `client`, on DFO channel `channels[channel]`.
    pub fn new(client: CxoneClient, channels: BTreeMap<NotifyChannel, String>) -> Self {
        Self { client, channels }
    }

    fn message(
        &self,
        id: &str,
        req: &NotificationRequest,
    ) -> Result<(&str, OutboundMessage), String> {
        let channel = self
            .channels
            .get(&req.channel)
            .ok_or_else(|| format!("no CXone channel configured for {}", req.channel))?;
        if req.channel == NotifyChannel::Voice {
            return Err("DFO outbound sends no voice calls".into());
        }
        Ok((
            channel,
            OutboundMessage {
                thread: ThreadRef {
                    id_on_external_platform: thread_id(id),
                    thread_name: req.event_type.clone(),
                },
                message_content: MessageContent::text(req.text.clone()),
                recipients: vec![Recipient {
                    id_on_external_platform: req.to.clone(),
                    name: None,
                    is_primary: true,
                    is_private: false,
                }],
                title: None,
            },
        ))
    }

    async fn send_one(&self, id: &str, req: &NotificationRequest) -> SendResult {
        let (channel, msg) = match self.message(id, req) {
            Ok(m) => m,
            Err(reason) => return SendResult::Permanent { reason },
        };
        let values = [req.to.as_str(), req.text.as_str()];
        match self.client.dfo().send_outbound(channel, &msg).await {
            Ok(created) => SendResult::Delivered {
                id: created.message.and_then(|m| m.id),
            },
            Err(e) if e.is_outcome_unknown() => SendResult::Ambiguous {
                reason: summary(&e, &values),
            },
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

    async fn find_one(&self, id: &str, req: &NotificationRequest) -> Readback {
        // A message that cannot be built was never sent.
        let Ok((channel, _)) = self.message(id, req) else {
            return Readback::NotFound;
        };
        match self.client.dfo().find_thread(&thread_id(id)).await {
            Ok(Some(t)) if t.channel_id.as_deref().is_none_or(|c| c == channel) => {
                Readback::Found(t.id.unwrap_or_else(|| thread_id(id)))
            }
            Ok(_) => Readback::NotFound,
            Err(e) => Readback::Failed(summary(&e, &[req.to.as_str(), req.text.as_str()])),
        }
    }
}

impl NotificationSender for DfoSender {
    fn capabilities(&self) -> SenderCapabilities {
        SenderCapabilities {
            dedupes_on_key: false,
            read_back: true,
        }
    }

    fn send<'a>(&'a self, id: &'a str, req: &'a NotificationRequest) -> BoxFuture<'a, SendResult> {
        Box::pin(self.send_one(id, req))
    }

    /// Reads back by the notification's thread. The thread search has no time filter:
    /// `since` / `until` are not needed, the thread id names one notification.
    fn find<'a>(
        &'a self,
        id: &'a str,
        req: &'a NotificationRequest,
        _since: DateTime<Utc>,
        _until: DateTime<Utc>,
    ) -> BoxFuture<'a, Readback> {
        Box::pin(self.find_one(id, req))
    }
}
