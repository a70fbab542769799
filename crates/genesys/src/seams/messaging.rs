//! Inbound messages into Genesys Cloud Open Messaging: a [`MessageIngress`] that sends each
//! message to an Open Messaging integration (`POST
//! /api/v2/conversations/messages/{integrationId}/inbound/open/message`, not idempotent: a 504
//! or a timeout after sending is [`ErrorKind::OutcomeUnknown`]) and annotates a conversation by
//! setting attributes on its customer participant.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use dedupd_platform::messaging::{
    BoxFuture, Forwarded, InboundMessage, MessageIngress, SenderKind,
};
use dedupd_platform::{ErrorKind, PlatformError};

use super::platform_error;
use crate::{GenesysClient, OpenIdType, OpenInboundChannel, OpenInboundMessage, OpenMessagingFrom};

/// Conversations whose customer participant is remembered before the cache starts over.
const PARTICIPANT_CACHE: usize = 100_000;

/// Genesys Cloud Open Messaging, through one integration (deployment).
#[derive(Debug)]
pub struct OpenMessagingIngress {
    client: GenesysClient,
    integration_id: String,
    /// Conversation id → its customer participant's id.
    participants: Mutex<HashMap<String, String>>,
}

impl OpenMessagingIngress {
    /// Forwards through `client` to the Open Messaging integration `integration_id`.
    pub fn new(client: GenesysClient, integration_id: impl Into<String>) -> Self {
        Self {
            client,
            integration_id: integration_id.into(),
            participants: Mutex::new(HashMap::new()),
        }
    }

    fn participants(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.participants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn forward_one(&self, message: &InboundMessage) -> Result<Forwarded, PlatformError> {
        let sent = self
            .client
            .conversations()
            .send_inbound_open_message(&self.integration_id, &open_message(message), true)
            .await
            .map_err(|e| {
                platform_error(
                    &e,
                    &format!("inbound message to integration {}", self.integration_id),
                    &[message.from.id.as_str(), message.text.as_str()],
                )
            })?;
        Ok(Forwarded {
            conversation_id: sent.conversation_id,
            message_id: sent.id,
        })
    }

    async fn annotate_one(
        &self,
        conversation_id: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<(), PlatformError> {
        let api = self.client.conversations();
        let what = || format!("attributes of conversation {conversation_id}");
        let cached = self.participants().get(conversation_id).cloned();
        let participant = match cached {
            Some(p) => p,
            None => {
                let conversation = api
                    .get(conversation_id)
                    .await
                    .map_err(|e| platform_error(&e, &what(), &[]))?;
                let Some(p) = conversation
                    .participant_with_purpose("customer")
                    .and_then(|p| p.id.clone())
                else {
                    return Err(PlatformError::new(
                        ErrorKind::NotFound,
                        format!("conversation {conversation_id} has no customer participant"),
                    ));
                };
                let mut cache = self.participants();
                if cache.len() >= PARTICIPANT_CACHE {
                    cache.clear();
                }
                cache.insert(conversation_id.to_owned(), p.clone());
                p
            }
        };
        api.set_participant_attributes(conversation_id, &participant, attributes)
            .await
            .map_err(|e| platform_error(&e, &what(), &[]))?;
        Ok(())
    }
}

impl MessageIngress for OpenMessagingIngress {
    fn platform(&self) -> &'static str {
        "genesys"
    }

    fn forward<'a>(
        &'a self,
        message: &'a InboundMessage,
    ) -> BoxFuture<'a, Result<Forwarded, PlatformError>> {
        Box::pin(self.forward_one(message))
    }

    fn annotate<'a>(
        &'a self,
        conversation_id: &'a str,
        attributes: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<(), PlatformError>> {
        Box::pin(self.annotate_one(conversation_id, attributes))
    }
}

/// The Open Messaging form of `m`.
pub fn open_message(m: &InboundMessage) -> OpenInboundMessage {
    let id_type = match m.from.kind {
        SenderKind::Phone => OpenIdType::Phone,
        SenderKind::Email => OpenIdType::Email,
        _ => OpenIdType::Opaque,
    };
    OpenInboundMessage {
        channel: OpenInboundChannel {
            from: OpenMessagingFrom {
                id: m.from.id.clone(),
                id_type,
                nickname: None,
                first_name: None,
                last_name: None,
                email: None,
                image: None,
            },
            time: m.sent_at,
            message_id: m.message_id.clone(),
            metadata: None,
        },
        text: Some(m.text.clone()),
        content: Vec::new(),
        metadata: Some(m.metadata.clone()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use dedupd_platform::messaging::MessageSender;

    use super::*;

    #[test]
    fn the_open_message_carries_sender_time_text_and_metadata() {
        let at = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let m = InboundMessage {
            fingerprint: "ab".repeat(32),
            channel: "sms".into(),
            from: MessageSender {
                id: "+12013093185".into(),
                kind: SenderKind::Phone,
            },
            sent_at: at,
            message_id: Some("m-1".into()),
            text: "Where is my refund?".into(),
            metadata: BTreeMap::from([("dedupd.channel".to_owned(), "sms".to_owned())]),
        };
        let v = serde_json::to_value(open_message(&m)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "channel": {"from": {"id": "+12013093185", "idType": "Phone"},
                            "time": "2026-11-24T12:00:00Z", "messageId": "m-1"},
                "text": "Where is my refund?",
                "metadata": {"dedupd.channel": "sms"}
            })
        );
    }
}
