//! Typed DFO (`/dfo/3.0`) endpoints dedupd needs (api-notes §1, §3–§5): channels, outbound
//! send, BYOC inbound message, message and thread searches (the only read-backs), customers
//! (search, get, merge, custom fields and their definitions), digital contacts.
//!
//! Nothing here is idempotent by key: CXone has no idempotency key on any send. The calls
//! that reach a customer or create something are marked at-most-once, so the request loop
//! never resends them after an answer that may follow work done (any 5xx, a timeout after
//! sending): the caller reads back instead.

use chrono::{DateTime, SecondsFormat, Utc};
use dedupd_http_client::{Call, path};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::CxoneClient;
use crate::error::Error;

/// One digital channel (point of contact).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Channel {
    /// CXone's id.
    pub id: String,
    /// The channel's id on its platform.
    pub id_on_external_platform: Option<String>,
    /// `sms`, `email`, `whatsapp`, `custom`, …
    pub real_external_platform_id: Option<String>,
    /// The BYOC integration, for BYOC channels.
    pub channel_integration_id: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Outbound allowed.
    pub has_outbound_flow: Option<bool>,
}

/// `{idOnExternalPlatform, threadName}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadRef {
    /// The thread's id chosen by the caller.
    pub id_on_external_platform: String,
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub thread_name: Option<String>,
}

/// `{type: "TEXT", payload: {text}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MessageContent {
    /// `TEXT`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `{text}`.
    pub payload: TextPayload,
}

/// A text payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TextPayload {
    /// The text.
    pub text: String,
}

impl MessageContent {
    /// Plain text.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            kind: "TEXT",
            payload: TextPayload { text: text.into() },
        }
    }
}

/// A recipient of an outbound message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    /// The address (phone number, e-mail address, handle).
    pub id_on_external_platform: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The primary recipient.
    pub is_primary: bool,
    /// A private (BCC-like) recipient.
    pub is_private: bool,
}

/// `POST /channels/{channelId}/outbound`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundMessage {
    /// The thread: a new one with an id of the caller's choosing, or an existing one.
    pub thread: ThreadRef,
    /// The content.
    pub message_content: MessageContent,
    /// Recipients.
    pub recipients: Vec<Recipient>,
    /// E-mail subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// An end-user identity on a channel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Identity {
    /// The address on the channel.
    pub id_on_external_platform: String,
    /// Given name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
}

/// `{key, value}` of `externalAttributes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExternalAttribute {
    /// Name.
    pub key: String,
    /// Value.
    pub value: String,
}

/// `POST /channels/{channelId}/messages`: a BYOC middleware ingesting a customer's message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundByocMessage {
    /// The message's id on the external platform (required).
    pub id_on_external_platform: String,
    /// The conversation.
    pub thread: ThreadRef,
    /// `inbound`.
    pub direction: &'static str,
    /// When it was written, RFC 3339 with milliseconds, UTC.
    pub created_at_with_milliseconds: String,
    /// The content.
    pub message_content: MessageContent,
    /// The author.
    pub author_end_user_identity: Identity,
    /// Extra attributes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub external_attributes: Vec<ExternalAttribute>,
}

impl InboundByocMessage {
    /// RFC 3339, milliseconds, `Z`.
    pub fn timestamp(at: DateTime<Utc>) -> String {
        at.to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

/// A DFO message, as searches and sends answer it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Message {
    /// CXone's id.
    pub id: Option<String>,
    /// The external platform's id.
    pub id_on_external_platform: Option<String>,
    /// `inbound` / `outbound`.
    pub direction: Option<String>,
    /// The thread's external id.
    pub thread_id_on_external_platform: Option<String>,
    /// The case (digital contact) the message belongs to, when the answer names it.
    #[serde(deserialize_with = "lenient_id")]
    pub contact_number: Option<String>,
}

/// A digital contact (case).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DigitalContact {
    /// Its id.
    #[serde(deserialize_with = "lenient_id")]
    pub id: Option<String>,
    /// The customer card of its end user.
    pub end_user: Option<Customer>,
}

/// `{consumerContact, message}`: what a send or an ingest created.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Created {
    /// The case that owns the conversation.
    pub consumer_contact: Option<DigitalContact>,
    /// The message.
    pub message: Option<Message>,
}

/// A thread, as the thread search answers it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Thread {
    /// CXone's id.
    pub id: Option<String>,
    /// The caller's id.
    pub id_on_external_platform: Option<String>,
    /// The channel.
    pub channel_id: Option<String>,
}

/// `{ident, value}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CustomField {
    /// The field's ident.
    pub ident: String,
    /// Its value.
    pub value: String,
}

/// A customer card (`surname`, not `lastName`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Customer {
    /// Its id.
    #[serde(deserialize_with = "lenient_id")]
    pub id: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub surname: Option<String>,
    /// Full name.
    pub full_name: Option<String>,
    /// Custom field values.
    #[serde(deserialize_with = "lenient_fields")]
    pub custom_fields: Vec<CustomField>,
    /// Channel identities (phone numbers, e-mail addresses, handles).
    pub identities: Vec<Identity>,
    /// Last update, RFC 3339.
    pub updated_at: Option<String>,
}

impl Customer {
    /// The value of custom field `ident`.
    pub fn custom_field(&self, ident: &str) -> Option<&str> {
        self.custom_fields
            .iter()
            .find(|f| f.ident == ident)
            .map(|f| f.value.as_str())
    }
}

/// `{hits, data, scrollToken}`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SearchPage<T> {
    /// Matches in all.
    pub hits: Option<u64>,
    /// This page.
    pub data: Vec<T>,
    /// The next page's token, when there is one.
    pub scroll_token: Option<String>,
}

/// A customer custom-field definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomFieldDefinition {
    /// Ident.
    pub ident: String,
    /// Label.
    pub label: String,
    /// `text`, `email` or `list`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// Ids come as strings or numbers.
fn lenient_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// Custom fields whose value is not a string are kept with the value as JSON text.
fn lenient_fields<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<CustomField>, D::Error> {
    let Value::Array(items) = Value::deserialize(d)? else {
        return Ok(Vec::new());
    };
    Ok(items
        .into_iter()
        .filter_map(|item| {
            let ident = item.get("ident")?.as_str()?.to_owned();
            let value = match item.get("value") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            Some(CustomField { ident, value })
        })
        .collect())
}

/// The DFO API.
#[derive(Clone, Copy, Debug)]
pub struct DfoApi<'a> {
    pub(crate) client: &'a CxoneClient,
}

impl DfoApi<'_> {
    /// `GET /channels`: the tenant's digital channels (a bare array; a `{data: […]}` page is
    /// read too, since the spec's shape was seen only second-hand).
    pub async fn channels(&self) -> Result<Vec<Channel>, Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Channels {
            Bare(Vec<Channel>),
            Page { data: Vec<Channel> },
        }
        let channels: Channels = self.client.dfo_json(Call::get(path(&["channels"]))).await?;
        Ok(match channels {
            Channels::Bare(c) | Channels::Page { data: c } => c,
        })
    }

    /// `POST /channels/{channelId}/outbound`: sends a message to a customer. **Not
    /// idempotent and never resent by the client**: a 5xx or a timeout after sending is
    /// [`Error::OutcomeUnknown`]; read back with [`DfoApi::find_thread`] before sending again.
    pub async fn send_outbound(
        &self,
        channel_id: &str,
        message: &OutboundMessage,
    ) -> Result<Created, Error> {
        let call = Call::post(path(&["channels", channel_id, "outbound"]))
            .at_most_once()
            .json(message)?;
        self.client.dfo_json(call).await
    }

    /// `POST /channels/{channelId}/messages`: ingests a customer's message (BYOC). A repeated
    /// `idOnExternalPlatform` may create a second message, so it is never resent by the
    /// client; read back with [`DfoApi::find_messages`].
    pub async fn ingest_message(
        &self,
        channel_id: &str,
        message: &InboundByocMessage,
    ) -> Result<Created, Error> {
        let call = Call::post(path(&["channels", channel_id, "messages"]))
            .at_most_once()
            .json(message)?;
        self.client.dfo_json(call).await
    }

    /// `GET /messages?idOnExternalPlatform[]=…&channel[]=…`: messages with that external id
    /// on that channel.
    pub async fn find_messages(
        &self,
        channel_id: &str,
        id_on_external_platform: &str,
    ) -> Result<Vec<Message>, Error> {
        let call = Call::get(path(&["messages"]))
            .query("idOnExternalPlatform[]", id_on_external_platform)
            .query("channel[]", channel_id);
        let page: SearchPage<Message> = self.client.dfo_json(call).await?;
        Ok(page
            .data
            .into_iter()
            .filter(|m| m.id_on_external_platform.as_deref() == Some(id_on_external_platform))
            .collect())
    }

    /// `GET /threads?query=…`: the thread whose `idOnExternalPlatform` is exactly
    /// `thread_id` (the search matches more loosely; answers are compared exactly).
    pub async fn find_thread(&self, thread_id: &str) -> Result<Option<Thread>, Error> {
        let call = Call::get(path(&["threads"])).query("query", thread_id);
        let page: SearchPage<Thread> = self.client.dfo_json(call).await?;
        Ok(page
            .data
            .into_iter()
            .find(|t| t.id_on_external_platform.as_deref() == Some(thread_id)))
    }

    /// `GET /contacts/{contactId}`: one digital contact (case) with its end user.
    pub async fn contact(&self, contact_id: &str) -> Result<DigitalContact, Error> {
        self.client
            .dfo_json(Call::get(path(&["contacts", contact_id])))
            .await
    }

    /// `GET /customers?query=…&size=…&scrollToken=…`: one page of a customer search. An
    /// absent `query` lists every card.
    pub async fn search_customers(
        &self,
        query: Option<&str>,
        size: usize,
        scroll_token: Option<&str>,
    ) -> Result<SearchPage<Customer>, Error> {
        let call = Call::get(path(&["customers"]))
            .query_opt("query", query)
            .query("size", size)
            .query_opt("scrollToken", scroll_token);
        self.client.dfo_json(call).await
    }

    /// `GET /customers/{customerId}`.
    pub async fn customer(&self, customer_id: &str) -> Result<Customer, Error> {
        self.client
            .dfo_json(Call::get(path(&["customers", customer_id])))
            .await
    }

    /// `PUT /customers/{target}/merge` `{customerToMerge: {id: source}}`: merges **one**
    /// card into another. No un-merge exists. Not idempotent (a repeat finds the source
    /// gone): never resent after an ambiguous answer; read back instead.
    pub async fn merge_customers(&self, target: &str, source: &str) -> Result<(), Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            customer_to_merge: IdRef<'a>,
        }
        #[derive(Serialize)]
        struct IdRef<'a> {
            id: &'a str,
        }
        let call = Call::put(path(&["customers", target, "merge"]))
            .at_most_once()
            .json(&Body {
                customer_to_merge: IdRef { id: source },
            })?;
        self.client.dfo_unit(call).await
    }

    /// `PUT /customers/{customerId}/custom-fields`: sets these values (others stay).
    pub async fn set_custom_fields(
        &self,
        customer_id: &str,
        fields: &[CustomField],
    ) -> Result<(), Error> {
        let call = Call::put(path(&["customers", customer_id, "custom-fields"])).json(fields)?;
        self.client.dfo_unit(call).await
    }

    /// `PUT /customers/custom-field-definitions`: creates or updates one definition.
    pub async fn define_custom_field(&self, def: &CustomFieldDefinition) -> Result<(), Error> {
        let call = Call::put(path(&["customers", "custom-field-definitions"])).json(def)?;
        self.client.dfo_unit(call).await
    }
}
