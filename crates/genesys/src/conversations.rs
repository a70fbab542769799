//! Conversations: participant attributes, reading a conversation, and inbound Open Messaging.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::{Call, GenesysClient, path};
use crate::error::Error;

/// A participant of a conversation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Participant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `customer`, `agent`, `acd`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_contact_id: Option<String>,
    /// Participant attributes (string values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    /// Fields this model does not name (media sessions, wrap-up, …).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A conversation (`Conversation`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Conversation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub participants: Vec<Participant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
    /// Fields this model does not name.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Conversation {
    /// The first participant with `purpose` (e.g. `customer`).
    pub fn participant_with_purpose(&self, purpose: &str) -> Option<&Participant> {
        self.participants
            .iter()
            .find(|p| p.purpose.as_deref() == Some(purpose))
    }
}

/// How the sender of an inbound message is identified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum OpenIdType {
    Email,
    Phone,
    Opaque,
}

/// The sender of an inbound Open Messaging message (`OpenMessagingFromRecipient`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct OpenMessagingFrom {
    /// The sender's id on the channel (required).
    pub id: String,
    /// What kind of id it is (required).
    pub id_type: OpenIdType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// The channel part of an inbound message (`OpenInboundMessageMessagingChannel`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenInboundChannel {
    /// The sender (required).
    pub from: OpenMessagingFrom,
    /// When the message was sent (required).
    pub time: DateTime<Utc>,
    /// The message's id on the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Custom channel information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// An inbound Open Messaging message (`OpenInboundNormalizedMessage`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenInboundMessage {
    /// Channel information (required).
    pub channel: OpenInboundChannel,
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Attachments and other content (`OpenInboundMessageContent`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Value>,
    /// Metadata (string values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// The platform's normalized copy of a message (`OpenMessageNormalizedMessage`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenMessageNormalized {
    /// The message's id on the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The conversation the message created or joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `Text`, …
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Channel as normalized by the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Value>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Fields this model does not name.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Serialize)]
struct ParticipantAttributes<'a> {
    attributes: &'a BTreeMap<String, String>,
}

fn conv_path(rest: &[&str]) -> String {
    let mut segments = vec!["api", "v2", "conversations"];
    segments.extend_from_slice(rest);
    path(&segments)
}

/// Conversations endpoints. Get one with [`GenesysClient::conversations`].
#[derive(Clone, Copy, Debug)]
pub struct ConversationsApi<'a> {
    client: &'a GenesysClient,
}

impl GenesysClient {
    /// Conversations and inbound Open Messaging.
    pub fn conversations(&self) -> ConversationsApi<'_> {
        ConversationsApi { client: self }
    }
}

impl ConversationsApi<'_> {
    /// `GET /api/v2/conversations/{conversationId}`.
    pub async fn get(&self, conversation_id: &str) -> Result<Conversation, Error> {
        self.client
            .json(Call::get(conv_path(&[conversation_id])))
            .await
    }

    /// `PATCH /api/v2/conversations/{conversationId}/participants/{participantId}/attributes`:
    /// set attributes (202 Accepted, applied asynchronously). Setting the same values twice is
    /// harmless, so the call is retried through 504s.
    pub async fn set_participant_attributes(
        &self,
        conversation_id: &str,
        participant_id: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<(), Error> {
        let call = Call::patch(conv_path(&[
            conversation_id,
            "participants",
            participant_id,
            "attributes",
        ]))
        .json(&ParticipantAttributes { attributes })?
        .idempotent(true);
        self.client.unit(call).await
    }

    /// `POST /api/v2/conversations/messages/{integrationId}/inbound/open/message`: deliver an
    /// inbound message; it creates a conversation or joins an existing one.
    ///
    /// Not idempotent: a resend can create a second message. A 504 or a timeout after sending
    /// is [`Error::OutcomeUnknown`]; the gateway must not blindly resend it.
    pub async fn send_inbound_open_message(
        &self,
        integration_id: &str,
        message: &OpenInboundMessage,
        prefetch_conversation_id: bool,
    ) -> Result<OpenMessageNormalized, Error> {
        let call = Call::post(conv_path(&[
            "messages",
            integration_id,
            "inbound",
            "open",
            "message",
        ]))
        .query_opt(
            "prefetchConversationId",
            prefetch_conversation_id.then_some(true),
        )
        .json(message)?;
        self.client.json(call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_message_body_matches_the_schema() {
        let message = OpenInboundMessage {
            channel: OpenInboundChannel {
                from: OpenMessagingFrom {
                    id: "+14155552671".into(),
                    id_type: OpenIdType::Phone,
                    nickname: None,
                    first_name: Some("Ann".into()),
                    last_name: None,
                    email: None,
                    image: None,
                },
                time: DateTime::parse_from_rfc3339("2026-05-06T07:08:09Z")
                    .unwrap()
                    .with_timezone(&Utc),
                message_id: Some("m-1".into()),
                metadata: None,
            },
            text: Some("hello".into()),
            content: Vec::new(),
            metadata: None,
        };
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "channel": {
                    "from": {"id": "+14155552671", "idType": "Phone", "firstName": "Ann"},
                    "time": "2026-05-06T07:08:09Z",
                    "messageId": "m-1"
                },
                "text": "hello"
            })
        );
    }

    #[test]
    fn conversation_finds_the_customer() {
        let conv: Conversation = serde_json::from_str(
            r#"{"id":"c","startTime":"2026-05-06T07:08:09.000Z","participants":[
                {"id":"p1","purpose":"agent"},
                {"id":"p2","purpose":"customer","attributes":{"dup":"1"},"messages":[]}]}"#,
        )
        .unwrap();
        let customer = conv.participant_with_purpose("customer").unwrap();
        assert_eq!(customer.id.as_deref(), Some("p2"));
        assert_eq!(customer.attributes["dup"], "1");
    }
}
