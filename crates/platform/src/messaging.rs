//! The inbound messaging seam: where the gateway forwards a message it decided to PROCESS, and
//! how it notes later duplicates on the conversation that message created.
//!
//! Genesys Cloud implements it with Open Messaging (`POST
//! /api/v2/conversations/messages/{integrationId}/inbound/open/message`) and participant
//! attributes; NICE CXone would with a BYOC channel (`POST
//! /dfo/3.0/channels/{channelId}/messages`, whose message and thread `idOnExternalPlatform`
//! come from [`InboundMessage::fingerprint`], stable across retries).
//!
//! Forwarding is not assumed idempotent: an [`ErrorKind::OutcomeUnknown`] forward may have
//! created a conversation, and the gateway does not send it again (a second conversation is
//! the very duplicate it exists to prevent). A platform's own client may retry what certainly
//! did not arrive (429, 503 before sending) inside one [`MessageIngress::forward`].
//!
//! [`ErrorKind::OutcomeUnknown`]: crate::ErrorKind::OutcomeUnknown

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};

use crate::PlatformError;

/// A boxed, sendable future: what the seams' object-safe async methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What kind of address a sender is known by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SenderKind {
    /// An E.164 phone number.
    Phone,
    /// An e-mail address.
    Email,
    /// Any other id on the channel (a chat handle, a webhook's user id).
    Opaque,
}

/// Who sent an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSender {
    /// The sender's id on the channel (normalized when it is a phone number or an e-mail).
    pub id: String,
    /// What kind of id it is.
    pub kind: SenderKind,
}

/// A message the gateway decided to PROCESS, as every platform needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// The gateway's fingerprint of the message (hex): the same for every copy of it, so a
    /// platform that keys messages or threads on a caller-chosen id can use it.
    pub fingerprint: String,
    /// The channel the customer wrote on (`sms`, `email`, `chat`, …).
    pub channel: String,
    /// The sender.
    pub from: MessageSender,
    /// When the customer sent it.
    pub sent_at: DateTime<Utc>,
    /// The message's id on its channel, when the caller gave one.
    pub message_id: Option<String>,
    /// The readable text (markup stripped).
    pub text: String,
    /// String metadata carried with the message (the gateway's `dedupd.*` keys).
    pub metadata: BTreeMap<String, String>,
}

/// What a forward created on the platform.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// The conversation the message created or joined, when the platform said.
    pub conversation_id: Option<String>,
    /// The platform's id of the message, when it said.
    pub message_id: Option<String>,
}

/// A platform's inbound messaging endpoint.
///
/// Errors never carry the sender's address or the text (see [`PlatformError`]).
pub trait MessageIngress: Send + Sync + 'static {
    /// The platform's name for logs and metrics (`genesys`).
    fn platform(&self) -> &'static str;

    /// Forwards one message, once. [`crate::ErrorKind::OutcomeUnknown`]: it may have arrived
    /// (a timeout or a 504 after sending); the caller must not send it again blindly.
    fn forward<'a>(
        &'a self,
        message: &'a InboundMessage,
    ) -> BoxFuture<'a, Result<Forwarded, PlatformError>>;

    /// Sets `attributes` on `conversation_id` (Genesys: on its customer participant), replacing
    /// earlier values of the same names. Idempotent: the caller retries it.
    fn annotate<'a>(
        &'a self,
        conversation_id: &'a str,
        attributes: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<(), PlatformError>>;
}
