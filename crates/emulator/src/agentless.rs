//! Agentless outbound messages (`POST /api/v2/conversations/messages/agentless`, api-notes §8)
//! and the read-back paths a reconciler uses after an ambiguous send.
//!
//! These paths are not in the API excerpt (the agentless API is documented in the SDKs), so
//! they are registered beside [`ROUTES`](crate::ROUTES) from [`AGENTLESS_ROUTES`], behind the
//! same auth, rate limit and fault injection (a `504-applied` fault sends the message and then
//! answers 504, exactly the case the caller must reconcile).
//!
//! **Read-back (choice).** The real API offers no lookup by request, and the response is all
//! that names the message. What a caller can read after losing the response is what the
//! platform records: the conversation the send created. The emulator serves, faithfully in
//! shape and reduced in scope:
//! - `POST /api/v2/analytics/conversations/details/query`: `interval` (`start/end`, ISO 8601)
//!   and `segmentFilters[].predicates[]` of type `dimension` on `addressTo`, `addressFrom`,
//!   `mediaType` (`message`) and `direction` (`outbound`); answers `{conversations:
//!   [{conversationId, conversationStart, originatingDirection, participants[{purpose,
//!   sessions[{mediaType, messageType, direction, addressFrom, addressTo}]}]}], totalHits}`,
//!   oldest first. Analytics on the real platform lag by seconds; the emulator's do not.
//! - `GET /api/v2/conversations/messages/{conversationId}` (`MessageConversation`: participants
//!   with `messages[{messageId, messageStatus, messageTime}]`).
//! - `GET /api/v2/conversations/messages/{conversationId}/messages/{messageId}`
//!   (`MessageData`: `textBody`, `fromAddress`, `toAddress`, `direction`, `status`, …).
//!
//! Every send also becomes a conversation readable with `GET /api/v2/conversations/{id}`.
//! [`EmulatorState::agentless_sends`] counts sends per (toAddress, text) for tests.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::conversations::create_conversation;
use crate::error::{ApiError, ApiResult};
use crate::http::{Body, P, ok_json};
use crate::state::{EmulatorState, ParticipantRec};
use crate::util::now_iso;

/// The agentless and read-back routes, `(METHOD, path template)`.
pub const AGENTLESS_ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v2/conversations/messages/agentless"),
    ("POST", "/api/v2/analytics/conversations/details/query"),
    ("GET", "/api/v2/conversations/messages/{conversationId}"),
    (
        "GET",
        "/api/v2/conversations/messages/{conversationId}/messages/{messageId}",
    ),
];

/// Messenger types the emulator accepts (a subset of the SDK's enum).
const MESSENGER_TYPES: &[&str] = &["sms", "whatsapp", "open", "facebook", "instagram", "line"];

/// The handlers of [`AGENTLESS_ROUTES`], in that order.
pub(crate) fn handlers() -> Vec<(&'static str, MethodRouter<EmulatorState>)> {
    vec![
        (AGENTLESS_ROUTES[0].1, post(send)),
        (AGENTLESS_ROUTES[1].1, post(details_query)),
        (AGENTLESS_ROUTES[2].1, get(message_conversation)),
        (AGENTLESS_ROUTES[3].1, get(message_data)),
    ]
}

fn required_str<'a>(body: &'a Value, field: &str) -> ApiResult<&'a str> {
    body.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            ApiError::invalid_value(format!("{field} is required.")).with_detail(
                "invalid.value",
                field,
                None,
            )
        })
}

fn is_agentless(m: &Value) -> bool {
    m.get("agentless").and_then(Value::as_bool) == Some(true)
}

/// `POST /api/v2/conversations/messages/agentless`.
async fn send(State(st): State<EmulatorState>, body: Body) -> ApiResult<Response> {
    let body = body.required()?;
    let from = required_str(&body, "fromAddress")?.to_owned();
    let to = required_str(&body, "toAddress")?.to_owned();
    let messenger = required_str(&body, "toAddressMessengerType")?.to_owned();
    if !MESSENGER_TYPES.contains(&messenger.as_str()) {
        return Err(ApiError::invalid_value(format!(
            "toAddressMessengerType [{messenger}] is not supported."
        ))
        .with_detail("invalid.value", "toAddressMessengerType", None));
    }
    if messenger == "sms"
        && !(to.starts_with('+') && to.len() > 4 && to[1..].bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(
            ApiError::invalid_value("toAddress must be an E.164 number for sms.").with_detail(
                "invalid.value",
                "toAddress",
                None,
            ),
        );
    }
    let text = body
        .get("textBody")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let template = body
        .get("messagingTemplate")
        .filter(|t| t.is_object())
        .cloned();
    if text.as_deref().is_none_or(str::is_empty) && template.is_none() {
        return Err(
            ApiError::invalid_value("Either textBody or messagingTemplate is required.")
                .with_detail("invalid.value", "textBody", None),
        );
    }
    let use_existing = body
        .get("useExistingActiveConversation")
        .and_then(Value::as_bool)
        .unwrap_or(false);

    let mut inner = st.lock();
    let now = now_iso();
    let customer = ParticipantRec {
        id: inner.new_id(),
        purpose: "customer".into(),
        name: None,
        address: Some(to.clone()),
        external_contact_id: crate::external::contact_for_address(&inner, &to),
        start: now.clone(),
        attributes: BTreeMap::new(),
    };
    let sender = ParticipantRec {
        id: inner.new_id(),
        purpose: "agent".into(),
        name: Some("Agentless".into()),
        address: Some(from.clone()),
        external_contact_id: None,
        start: now.clone(),
        attributes: BTreeMap::new(),
    };
    let conversation_id =
        create_conversation(&mut inner, None, None, None, vec![customer, sender])?;
    let message_id = inner.new_id();
    let mut record = Map::new();
    record.insert("agentless".into(), json!(true));
    record.insert("id".into(), json!(message_id));
    record.insert("conversationId".into(), json!(conversation_id));
    record.insert("fromAddress".into(), json!(from));
    record.insert("toAddress".into(), json!(to));
    record.insert("messengerType".into(), json!(messenger));
    if let Some(t) = &text {
        record.insert("textBody".into(), json!(t));
    }
    if let Some(t) = &template {
        record.insert("messagingTemplate".into(), t.clone());
    }
    record.insert("timestamp".into(), json!(now));
    if let Some(c) = inner.conversations.get_mut(&conversation_id) {
        c.messages.push(Value::Object(record));
        // An agentless conversation has nothing more to say: it is disconnected at once.
        c.end = Some(now.clone());
    }

    let mut out = Map::new();
    out.insert("id".into(), json!(message_id));
    out.insert("conversationId".into(), json!(conversation_id));
    out.insert("fromAddress".into(), json!(from));
    out.insert("toAddress".into(), json!(to));
    out.insert("messengerType".into(), json!(messenger));
    if let Some(t) = template {
        out.insert("messagingTemplate".into(), t);
    }
    out.insert("useExistingActiveConversation".into(), json!(use_existing));
    out.insert("timestamp".into(), json!(now));
    out.insert(
        "selfUri".into(),
        json!(format!(
            "/api/v2/conversations/messages/{conversation_id}/messages/{message_id}"
        )),
    );
    Ok(ok_json(Value::Object(out)))
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// `POST /api/v2/analytics/conversations/details/query` (the subset described above).
async fn details_query(State(st): State<EmulatorState>, body: Body) -> ApiResult<Response> {
    let body = body.required()?;
    let interval = required_str(&body, "interval")?;
    let (start, end) = interval
        .split_once('/')
        .and_then(|(a, b)| Some((parse_time(a)?, parse_time(b)?)))
        .ok_or_else(|| {
            ApiError::invalid_value("interval must be <start>/<end> in ISO 8601.").with_detail(
                "invalid.date",
                "interval",
                None,
            )
        })?;
    let mut wanted: Vec<(String, String)> = Vec::new();
    for filter in body
        .get("segmentFilters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for p in filter
            .get("predicates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let dim = p
                .get("dimension")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let value = p.get("value").and_then(Value::as_str).unwrap_or_default();
            if !matches!(dim, "addressTo" | "addressFrom" | "mediaType" | "direction") {
                return Err(ApiError::invalid_value(format!(
                    "The emulator does not filter on dimension [{dim}]."
                ))
                .with_detail(
                    "invalid.value",
                    "segmentFilters.predicates.dimension",
                    None,
                ));
            }
            wanted.push((dim.to_owned(), value.to_owned()));
        }
    }
    let inner = st.lock();
    let mut hits: Vec<(DateTime<Utc>, Value)> = Vec::new();
    for c in inner.conversations.values() {
        for m in c.messages.iter().filter(|m| is_agentless(m)) {
            let s = |k: &str| {
                m.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let Some(at) = parse_time(&s("timestamp")) else {
                continue;
            };
            if at < start || at > end {
                continue;
            }
            let fields = [
                ("addressTo", s("toAddress")),
                ("addressFrom", s("fromAddress")),
                ("mediaType", "message".to_owned()),
                ("direction", "outbound".to_owned()),
            ];
            let matches = wanted
                .iter()
                .all(|(d, v)| fields.iter().any(|(fd, fv)| fd == d && fv == v));
            if !matches {
                continue;
            }
            let session = json!({
                "mediaType": "message",
                "messageType": s("messengerType"),
                "direction": "outbound",
                "addressFrom": s("fromAddress"),
                "addressTo": s("toAddress"),
            });
            hits.push((
                at,
                json!({
                    "conversationId": c.id,
                    "conversationStart": c.start,
                    "originatingDirection": "outbound",
                    "participants": [
                        {"purpose": "agent", "sessions": [session]},
                        {"purpose": "customer", "sessions": []}
                    ]
                }),
            ));
        }
    }
    hits.sort_by_key(|h| h.0);
    let total = hits.len();
    Ok(ok_json(json!({
        "conversations": hits.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "totalHits": total
    })))
}

/// `GET /api/v2/conversations/messages/{conversationId}` (`MessageConversation`).
async fn message_conversation(
    State(st): State<EmulatorState>,
    P(id): P<String>,
) -> ApiResult<Response> {
    let inner = st.lock();
    let c = inner
        .conversations
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("conversation {id}")))?;
    let messages: Vec<Value> = c
        .messages
        .iter()
        .filter(|m| is_agentless(m))
        .map(|m| {
            let mid = m.get("id").cloned().unwrap_or(Value::Null);
            json!({
                "messageId": mid,
                "messageStatus": "sent",
                "messageTime": m.get("timestamp").cloned().unwrap_or(Value::Null),
                "messageSegmentCount": 1,
                "messageURI": format!("/api/v2/conversations/messages/{id}/messages/{}",
                    mid.as_str().unwrap_or_default()),
            })
        })
        .collect();
    let participants: Vec<Value> = c
        .participants
        .iter()
        .map(|p| {
            let mine = if p.purpose == "agent" {
                messages.clone()
            } else {
                Vec::new()
            };
            json!({"id": p.id, "purpose": p.purpose, "address": p.address, "messages": mine})
        })
        .collect();
    Ok(ok_json(json!({
        "id": c.id,
        "participants": participants,
        "selfUri": format!("/api/v2/conversations/messages/{id}")
    })))
}

/// `GET /api/v2/conversations/messages/{conversationId}/messages/{messageId}` (`MessageData`).
async fn message_data(
    State(st): State<EmulatorState>,
    P((conv, mid)): P<(String, String)>,
) -> ApiResult<Response> {
    let inner = st.lock();
    let m = inner
        .conversations
        .get(&conv)
        .and_then(|c| {
            c.messages
                .iter()
                .find(|m| is_agentless(m) && m.get("id").and_then(Value::as_str) == Some(&mid))
        })
        .ok_or_else(|| ApiError::not_found(format!("message {mid}")))?;
    let mut out = Map::new();
    out.insert("id".into(), json!(mid));
    for k in [
        "fromAddress",
        "toAddress",
        "messengerType",
        "textBody",
        "timestamp",
    ] {
        if let Some(v) = m.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    out.insert("direction".into(), json!("outbound"));
    out.insert("status".into(), json!("sent"));
    out.insert("media".into(), json!([]));
    out.insert("stickers".into(), json!([]));
    out.insert(
        "selfUri".into(),
        json!(format!(
            "/api/v2/conversations/messages/{conv}/messages/{mid}"
        )),
    );
    Ok(ok_json(Value::Object(out)))
}

impl EmulatorState {
    /// Agentless sends so far, per (toAddress, textBody): more than one for a pair is a
    /// duplicate the customer received.
    pub fn agentless_sends(&self) -> BTreeMap<(String, String), usize> {
        let inner = self.lock();
        let mut out = BTreeMap::new();
        for c in inner.conversations.values() {
            for m in c.messages.iter().filter(|m| is_agentless(m)) {
                let s = |k: &str| {
                    m.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                *out.entry((s("toAddress"), s("textBody"))).or_insert(0) += 1;
            }
        }
        out
    }
}
