//! `POST /v1/messages`: request and answer types (with their OpenAPI schemas) and the handler.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Gateway;
use dedupd_http::{ApiError, ApiJson, ErrorEnvelope};

/// An inbound message as a channel delivered it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
pub struct MessageRequest {
    /// `sms`, `chat`, `email`, `whatsapp`, … (any string).
    pub channel: String,
    /// The sender as the channel gives it: a national or E.164 phone, an e-mail in any case,
    /// or an opaque id.
    pub from: String,
    /// The body as UTF-8 text. Give this or `body_base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The body as bytes in `charset`, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// WHATWG charset label of `body_base64` (`utf-8` when absent; `iso-8859-1` decodes as
    /// windows-1252).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charset: Option<String>,
    /// `text/plain`, `text/html` or `text/markdown`; when absent, HTML, Markdown and plain
    /// text are recognized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The message's id on its channel (returned to later duplicates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The conversation the sender already knows for it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// When the channel received it (RFC 3339). Metadata: never part of the fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<DateTime<Utc>>,
    /// Attachments; images are compared by their pixels, other media by their bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentRequest>,
}

/// One attachment.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
pub struct AttachmentRequest {
    /// MIME type (`image/png`, `application/pdf`, …).
    pub content_type: String,
    /// The content, base64.
    pub data_base64: String,
}

/// PROCESS (deliver it) or SUPPRESS (a duplicate: drop it, do not retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Decision {
    /// The first of its window: deliver it.
    Process,
    /// A duplicate of a message seen within the window.
    Suppress,
}

impl Decision {
    /// `PROCESS` or `SUPPRESS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Process => "PROCESS",
            Decision::Suppress => "SUPPRESS",
        }
    }
}

/// The first message of a suppressed one's window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DuplicateOf {
    /// The first message's `message_id`, if it had one.
    pub message_id: Option<String>,
    /// The first message's conversation, once known.
    pub conversation_id: Option<String>,
    /// When the first message was seen (RFC 3339 UTC).
    pub first_seen_at: DateTime<Utc>,
    /// The first message's channel.
    pub channel: String,
}

/// A recent message of the same customer whose text is very similar to this one's (only when
/// near-duplicates are on; the message is still PROCESSed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NearDuplicateOf {
    /// That message's `message_id`, if it had one.
    pub message_id: Option<String>,
    /// That message's conversation, once known.
    pub conversation_id: Option<String>,
    /// When that message was seen (RFC 3339 UTC).
    pub first_seen_at: DateTime<Utc>,
    /// That message's channel.
    pub channel: String,
    /// Estimated similarity of the two normalized texts (Jaccard of character trigrams,
    /// 0 to 1).
    pub similarity: f64,
}

/// The gateway's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DecisionResponse {
    /// PROCESS or SUPPRESS.
    pub decision: Decision,
    /// The message fingerprint (SHA-256, hex; layout version 1).
    pub fingerprint: String,
    /// The resolved canonical customer id (the contact's id, or `phone:…`, `email:…`,
    /// `opaque:<channel>:…` for an address the contact index does not know).
    pub customer: String,
    /// The first message, when this one is a duplicate.
    pub duplicate_of: Option<DuplicateOf>,
    /// Duplicates of the first message so far (this one included); 0 for PROCESS.
    pub duplicates: u64,
    /// The dedup window applied, in seconds: for SUPPRESS, the window of the pair of channels
    /// (first, this); for PROCESS, the longest window in which this message suppresses a
    /// repeat.
    pub window_seconds: u64,
    /// For a PROCESS with near-duplicates on: a recent message of the same customer with
    /// very similar text.
    #[serde(default)]
    pub near_duplicate_of: Option<NearDuplicateOf>,
    /// True when the window backend was unreachable and the degraded policy decided (PROCESS
    /// without a check: a message is never lost).
    pub degraded: bool,
}

/// Decide whether an inbound message is the first of its window.
#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "gateway",
    request_body = MessageRequest,
    responses(
        (status = 200, description = "The decision (a duplicate is a 200 too: do not retry it)", body = DecisionResponse),
        (status = 400, description = "Not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing or invalid bearer token / signature", body = ErrorEnvelope),
        (status = 413, description = "Body over the size cap", body = ErrorEnvelope),
        (status = 415, description = "Not application/json", body = ErrorEnvelope),
        (status = 422, description = "A field is invalid; `error.field` names it", body = ErrorEnvelope),
        (status = 503, description = "Window backend down and the policy is to refuse", body = ErrorEnvelope),
    )
)]
pub async fn post_message(
    State(gateway): State<Gateway>,
    ApiJson(request): ApiJson<MessageRequest>,
) -> Result<(StatusCode, axum::Json<DecisionResponse>), ApiError> {
    let answer = gateway.decide(request, Utc::now()).await?;
    Ok((StatusCode::OK, axum::Json(answer)))
}

/// The gateway's routes with their OpenAPI paths, state applied.
pub(crate) fn routes(gateway: Gateway) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(post_message))
        .with_state(gateway)
}
