//! Agentless outbound messages (notifications): `POST /api/v2/conversations/messages/agentless`,
//! and the read-back a caller needs because that request has **no idempotency key**.
//!
//! [`AgentlessApi::send`] is not idempotent: a 504 or a timeout after sending is
//! [`Error::OutcomeUnknown`] and must not be resent blindly. [`AgentlessApi::find_sent`] reads
//! back what the platform has: an analytics conversation-detail query for outbound message
//! conversations to the address in a time interval, then each conversation's messages
//! (`GET /api/v2/conversations/messages/{conversationId}` and
//! `…/messages/{messageId}`), compared on sender and text.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{Call, GenesysClient, path};
use crate::error::Error;

/// `SendAgentlessOutboundMessageRequest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentlessMessage {
    /// The sender (for SMS a provisioned number).
    pub from_address: String,
    /// The recipient (for SMS in E.164).
    pub to_address: String,
    /// `sms`, `whatsapp`, `open`, …
    pub to_address_messenger_type: String,
    /// The text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_body: Option<String>,
    /// A messaging template (`{responseId, parameters[]}`), instead of text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_template: Option<Value>,
    /// Join the recipient's active conversation instead of starting one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_existing_active_conversation: Option<bool>,
}

/// `SendAgentlessOutboundMessageResponse` (the fields dedupd reads; others are ignored).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct AgentlessSent {
    /// The message's id.
    pub id: String,
    #[serde(default)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub from_address: Option<String>,
    #[serde(default)]
    pub to_address: Option<String>,
    #[serde(default)]
    pub messenger_type: Option<String>,
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    pub self_uri: Option<String>,
}

/// A message found by [`AgentlessApi::find_sent`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundMessage {
    /// The conversation.
    pub conversation_id: String,
    /// The message.
    pub message_id: String,
}

#[derive(Deserialize)]
struct DetailsResponse {
    #[serde(default)]
    conversations: Vec<DetailConversation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DetailConversation {
    conversation_id: String,
}

#[derive(Deserialize)]
struct MessageConversation {
    #[serde(default)]
    participants: Vec<MessageParticipant>,
}

#[derive(Deserialize)]
struct MessageParticipant {
    #[serde(default)]
    messages: Vec<MessageDetails>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageDetails {
    message_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageData {
    #[serde(default)]
    from_address: Option<String>,
    #[serde(default)]
    to_address: Option<String>,
    #[serde(default)]
    text_body: Option<String>,
    #[serde(default)]
    direction: Option<String>,
}

/// Agentless messages. Get one with [`GenesysClient::agentless`].
#[derive(Clone, Copy, Debug)]
pub struct AgentlessApi<'a> {
    client: &'a GenesysClient,
}

impl GenesysClient {
    /// Agentless outbound messages and their read-back.
    pub fn agentless(&self) -> AgentlessApi<'_> {
        AgentlessApi { client: self }
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl AgentlessApi<'_> {
    /// `POST /api/v2/conversations/messages/agentless`: sends one message. Not idempotent.
    pub async fn send(&self, message: &AgentlessMessage) -> Result<AgentlessSent, Error> {
        let call = Call::post(path(&[
            "api",
            "v2",
            "conversations",
            "messages",
            "agentless",
        ]))
        .json(message)?
        .at_most_once();
        self.client.json(call).await
    }

    /// Looks for an outbound message from `from` to `to` with text `text` sent in
    /// `[since, until]`. Read-only calls (retried like any GET).
    pub async fn find_sent(
        &self,
        from: &str,
        to: &str,
        text: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<FoundMessage>, Error> {
        let query = json!({
            "interval": format!("{}/{}", iso(since), iso(until)),
            "order": "asc",
            "orderBy": "conversationStart",
            "segmentFilters": [{
                "type": "and",
                "predicates": [
                    {"type": "dimension", "dimension": "mediaType", "operator": "matches", "value": "message"},
                    {"type": "dimension", "dimension": "direction", "operator": "matches", "value": "outbound"},
                    {"type": "dimension", "dimension": "addressTo", "operator": "matches", "value": to}
                ]
            }],
            "paging": {"pageSize": 100, "pageNumber": 1}
        });
        // A query is a read: sending it twice is harmless.
        let call = Call::post(path(&[
            "api",
            "v2",
            "analytics",
            "conversations",
            "details",
            "query",
        ]))
        .json(&query)?
        .idempotent(true);
        let found: DetailsResponse = self.client.json(call).await?;
        for conv in found.conversations {
            let mc: MessageConversation = self
                .client
                .json(Call::get(path(&[
                    "api",
                    "v2",
                    "conversations",
                    "messages",
                    &conv.conversation_id,
                ])))
                .await?;
            for message in mc.participants.iter().flat_map(|p| &p.messages) {
                let data: MessageData = self
                    .client
                    .json(Call::get(path(&[
                        "api",
                        "v2",
                        "conversations",
                        "messages",
                        &conv.conversation_id,
                        "messages",
                        &message.message_id,
                    ])))
                    .await?;
                let outbound = data.direction.as_deref().is_none_or(|d| d == "outbound");
                if outbound
                    && data.from_address.as_deref() == Some(from)
                    && data.to_address.as_deref() == Some(to)
                    && data.text_body.as_deref() == Some(text)
                {
                    return Ok(Some(FoundMessage {
                        conversation_id: conv.conversation_id,
                        message_id: message.message_id.clone(),
                    }));
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_body_matches_the_sdk_model() {
        let m = AgentlessMessage {
            from_address: "+13175550000".into(),
            to_address: "+14155552671".into(),
            to_address_messenger_type: "sms".into(),
            text_body: Some("hi".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"fromAddress":"+13175550000","toAddress":"+14155552671",
                   "toAddressMessengerType":"sms","textBody":"hi"})
        );
    }
}
