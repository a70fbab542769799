//! [`MessageIngress`] for CXone: a Bring-Your-Own-Channel middleware ingesting a customer's
//! message (`POST /dfo/3.0/channels/{channelId}/messages`).
//!
//! The message's `idOnExternalPlatform` is [`message_key`]: the caller's message id, else the
//! gateway's fingerprint with the time the customer sent it (the fingerprint alone would repeat
//! when the customer asks the same again after the dedup window, and a repeated id may be
//! dropped or read back as the old message); the thread's is `dedupd-m-{key}`. Both are
//! stable across retries of one forward. Whether CXone rejects a repeated message id
//! is unknown (api-notes §9.1), so a forward is never resent by the client; after an ambiguous
//! answer it is read back (`GET /dfo/3.0/messages?idOnExternalPlatform[]=…&channel[]=…`):
//! found → forwarded; not found → still [`ErrorKind::OutcomeUnknown`] (it may yet appear), and
//! the gateway does not send it again.
//!
//! Annotations (the gateway's note of later duplicates) go on the customer card of the
//! conversation's end user, as custom fields, since a DFO case has no attributes of its own
//! that the API writes. A card is one per customer, not per conversation: the note also
//! names the case it is about ([`CASE_FIELD`]), so a card whose customer wrote two first
//! messages says which one its count belongs to (the newest note wins).

use std::collections::BTreeMap;

use dedupd_platform::messaging::{BoxFuture, Forwarded, InboundMessage, MessageIngress};
use dedupd_platform::{ErrorKind, PlatformError};

use super::platform_error;
use crate::{
    CustomField, CxoneClient, ExternalAttribute, Identity, InboundByocMessage, MessageContent,
    ThreadRef,
};

/// The custom field naming the case (digital contact) a card's duplicate note is about.
pub const CASE_FIELD: &str = "dedupd_duplicateCase";

/// The thread of a forwarded message: `dedupd-m-{fingerprint}`.
pub fn thread_id(fingerprint: &str) -> String {
    format!("dedupd-m-{fingerprint}")
}

/// The `idOnExternalPlatform` of a forwarded message: its message id when the caller gave
/// one, else `{fingerprint}-{sent at, ms}`.
pub fn message_key(m: &InboundMessage) -> String {
    match m.message_id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => format!("{}-{}", m.fingerprint, m.sent_at.timestamp_millis()),
    }
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
        let key = message_key(m);
        let body = InboundByocMessage {
            id_on_external_platform: key.clone(),
            thread: ThreadRef {
                id_on_external_platform: thread_id(&key),
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
        let what = format!("forwarding message {key}");
        let dfo = self.client.dfo();
        match dfo.ingest_message(&self.channel_id, &body).await {
            Ok(created) => Ok(Forwarded {
                conversation_id: created.consumer_contact.and_then(|c| c.id),
                message_id: created.message.and_then(|x| x.id),
            }),
            Err(e) if e.is_outcome_unknown() => {
                let unknown = platform_error(&e, &what, &values);
                match dfo.find_messages(&self.channel_id, &key).await {
                    Ok(found) => match found.into_iter().next() {
                        // The case the message opened or joined, so that duplicates can be
                        // noted on its customer card as after a clean answer.
                        Some(msg) => Ok(Forwarded {
                            conversation_id: msg.contact_number,
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
            .chain(std::iter::once(CustomField {
                ident: CASE_FIELD.to_owned(),
                value: conversation_id.to_owned(),
            }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use dedupd_platform::messaging::{MessageSender, SenderKind};

    fn message(id: Option<&str>, secs: i64) -> InboundMessage {
        InboundMessage {
            fingerprint: "ab12".into(),
            channel: "sms".into(),
            from: MessageSender {
                id: "+14155550100".into(),
                kind: SenderKind::Phone,
            },
            sent_at: chrono::Utc.timestamp_opt(secs, 0).unwrap(),
            message_id: id.map(str::to_owned),
            text: "Where is my order?".into(),
            metadata: BTreeMap::new(),
        }
    }

    #[test]
    fn the_message_key_is_the_message_id_else_the_fingerprint_and_time() {
        assert_eq!(message_key(&message(Some("m-1"), 1)), "m-1");
        assert_eq!(message_key(&message(Some(" "), 1)), "ab12-1000");
        // The same question asked again after the window: another message, another key.
        assert_ne!(
            message_key(&message(None, 1)),
            message_key(&message(None, 86_400))
        );
    }
}
