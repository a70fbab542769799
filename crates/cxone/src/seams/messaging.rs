//! [`MessageIngress`] for CXone: a Bring-Your-Own-Channel middleware ingesting a customer's
//! message (`POST /dfo/3.0/channels/{channelId}/messages`).
//!
//! The message's `idOnExternalPlatform` is the gateway's fingerprint and the thread's is
//! `dedupd-m-{fingerprint}`: stable across retries. Whether CXone rejects a repeated message id
//! is unknown (api-notes §9.1), so a forward is never resent by the client; after an ambiguous
//! answer it is read back (`GET /dfo/3.0/messages?idOnExternalPlatform[]=…&channel[]=…`):
//! found → forwarded; not found → still [`ErrorKind::OutcomeUnknown`] (it may yet appear), and
//! the gateway does not send it again.
//!
//! Annotations (the gateway's note of later duplicates) go on the customer card of the
//! conversation's end user, as custom fields, since a DFO case has no attributes of its own
//! that the API writes.

use std::collections::BTreeMap;

use dedupd_platform::messaging::{BoxFuture, Forwarded, InboundMessage, MessageIngress};
use dedupd_platform::{ErrorKind, PlatformError};

use super::platform_error;
use crate::{
    CustomField, CxoneClient, ExternalAttribute, Identity, InboundByocMessage, MessageContent,
    ThreadRef,
};

/// The thread of a forwarded message: `dedupd-m-{fingerprint}`.
pub fn thread_id(fingerprint: &str) -> String {
    format!("dedupd-m-{fingerprint}")
}

/// A custom-field ident for an annotation name: letters, digits and `_` only.
pub fn field_ident(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Forwards messages to one BYOC channel.
#[derive(Debug, Clone)]
pub struct ByocIngress {
    client: CxoneClient,
    channel_id: String,
}

impl ByocIngress {
    /// Forwards to DFO channel `channel_id` through `client`.
    pub fn new(client: CxoneClient, channel_id: impl Into<String>) -> Self {
        Self {
            client,
            channel_id: channel_id.into(),
        }
    }

    async fn forward_one(&self, m: &InboundMessage) -> Result<Forwarded, PlatformError> {
        let body = InboundByocMessage {
            id_on_external_platform: m.fingerprint.clone(),
            thread: ThreadRef {
                id_on_external_platform: thread_id(&m.fingerprint),
                thread_name: None,
            },
            direction: "inbound",
            created_at_with_milliseconds: InboundByocMessage::timestamp(m.sent_at),
            message_content: MessageContent::text(m.text.clone()),
            author_end_user_identity: Identity {
                id_on_external_platform: m.from.id.clone(),
                ..Identity::default()
            },
            external_attributes: m
                .metadata
                .iter()
                .map(|(k, v)| ExternalAttribute {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        };
        let values = [m.from.id.as_str(), m.text.as_str()];
        let what = format!("forwarding message {}", m.fingerprint);
        let dfo = self.client.dfo();
        match dfo.ingest_message(&self.channel_id, &body).await {
            Ok(created) => Ok(Forwarded {
                conversation_id: created.consumer_contact.and_then(|c| c.id),
                message_id: created.message.and_then(|x| x.id),
            }),
            Err(e) if e.is_outcome_unknown() => {
                let unknown = platform_error(&e, &what, &values);
                match dfo.find_messages(&self.channel_id, &m.fingerprint).await {
                    Ok(found) => match found.into_iter().next() {
                        Some(msg) => Ok(Forwarded {
                            conversation_id: None,
                            message_id: msg.id,
                        }),
                        None => Err(unknown),
                    },
                    Err(_) => Err(unknown),
                }
            }
            Err(e) => Err(platform_error(&e, &what, &values)),
        }
    }

    async fn annotate_one(
        &self,
        conversation_id: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<(), PlatformError> {
        let what = format!("annotating conversation {conversation_id}");
        let dfo = self.client.dfo();
        let contact = dfo
            .contact(conversation_id)
            .await
            .map_err(|e| platform_error(&e, &what, &[]))?;
        let customer = contact.end_user.and_then(|c| c.id).ok_or_else(|| {
            PlatformError::new(
                ErrorKind::NotFound,
                format!("{what}: the conversation names no customer card"),
            )
        })?;
        let fields: Vec<CustomField> = attributes
            .iter()
            .map(|(k, v)| CustomField {
                ident: field_ident(k),
                value: v.clone(),
            })
            .collect();
        let idents: Vec<&str> = fields.iter().map(|f| f.ident.as_str()).collect();
        self.client
            .ensure_custom_fields(&idents)
            .await
            .map_err(|e| platform_error(&e, &what, &[]))?;
        dfo.set_custom_fields(&customer, &fields)
            .await
            .map_err(|e| platform_error(&e, &what, &[]))
    }
}

impl MessageIngress for ByocIngress {
    fn platform(&self) -> &'static str {
        "cxone"
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
