//! Conversations: `GET /api/v2/conversations/{id}`, participant attributes, and the inbound
//! Open Messaging endpoint that creates (or joins) conversations.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::http::{Body, P, Params, empty, ok_json};
use crate::state::{ConversationRec, EmulatorState, Inner, ParticipantRec};
use crate::util::now_iso;

fn render_participant(p: &ParticipantRec) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(p.id));
    m.insert("startTime".into(), json!(p.start));
    if let Some(n) = &p.name {
        m.insert("name".into(), json!(n));
    }
    m.insert("purpose".into(), json!(p.purpose));
    if let Some(a) = &p.address {
        m.insert("address".into(), json!(a));
        m.insert("ani".into(), json!(a));
    }
    if let Some(e) = &p.external_contact_id {
        m.insert("externalContactId".into(), json!(e));
    }
    m.insert("attributes".into(), json!(p.attributes));
    Value::Object(m)
}

/// The `Conversation` model.
pub(crate) fn render(c: &ConversationRec) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(c.id));
    m.insert("startTime".into(), json!(c.start));
    if let Some(e) = &c.end {
        m.insert("endTime".into(), json!(e));
    }
    m.insert(
        "participants".into(),
        Value::Array(c.participants.iter().map(render_participant).collect()),
    );
    m.insert("conversationIds".into(), json!([c.id]));
    m.insert(
        "state".into(),
        json!(if c.end.is_some() {
            "disconnected"
        } else {
            "connected"
        }),
    );
    m.insert("recordingState".into(), json!("NONE"));
    m.insert(
        "selfUri".into(),
        json!(format!("/api/v2/conversations/{}", c.id)),
    );
    Value::Object(m)
}

/// The admin view: the API rendering plus the inbound messages received.
pub(crate) fn render_admin(c: &ConversationRec) -> Value {
    let mut v = render(c);
    if let Some(m) = v.as_object_mut() {
        m.insert("messages".into(), Value::Array(c.messages.clone()));
        if let Some(i) = &c.integration_id {
            m.insert("integrationId".into(), json!(i));
        }
    }
    v
}

pub(crate) async fn get_one(
    State(st): State<EmulatorState>,
    P(id): P<String>,
) -> ApiResult<Response> {
    let inner = st.lock();
    let c = inner
        .conversations
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("conversation {id}")))?;
    Ok(ok_json(render(c)))
}

/// `PATCH …/participants/{participantId}/attributes` → 202, no body.
pub(crate) async fn patch_attributes(
    State(st): State<EmulatorState>,
    P((conv_id, participant_id)): P<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    let body = body.required()?;
    let attrs = body
        .get("attributes")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            ApiError::invalid_value("attributes is required.").with_detail(
                "invalid.value",
                "attributes",
                None,
            )
        })?;
    let mut updates = BTreeMap::new();
    for (k, v) in attrs {
        match v {
            Value::String(s) => {
                updates.insert(k.clone(), s.clone());
            }
            Value::Null => {}
            _ => {
                return Err(
                    ApiError::invalid_value(format!("Attribute [{k}] must be a string."))
                        .with_detail("invalid.value", &format!("attributes.{k}"), None),
                );
            }
        }
    }
    let mut inner = st.lock();
    let c = inner
        .conversations
        .get_mut(&conv_id)
        .ok_or_else(|| ApiError::not_found(format!("conversation {conv_id}")))?;
    let p = c
        .participants
        .iter_mut()
        .find(|p| p.id == participant_id)
        .ok_or_else(|| ApiError::not_found(format!("participant {participant_id}")))?;
    p.attributes.extend(updates);
    Ok(empty(StatusCode::ACCEPTED))
}

fn display_name(from: &Value) -> Option<String> {
    if let Some(n) = from
        .get("nickname")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        return Some(n.to_owned());
    }
    let parts: Vec<&str> = ["firstName", "lastName"]
        .iter()
        .filter_map(|k| from.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Creates a conversation with a customer participant (and an ACD participant).
pub(crate) fn create_conversation(
    inner: &mut Inner,
    id: Option<String>,
    integration_id: Option<String>,
    from_id: Option<String>,
    participants: Vec<ParticipantRec>,
) -> ApiResult<String> {
    let id = id.unwrap_or_else(|| inner.new_id());
    if inner.conversations.contains_key(&id) {
        return Err(
            ApiError::conflict(format!("Conversation {id} already exists.")).with_entity(id),
        );
    }
    if let (Some(i), Some(f)) = (&integration_id, &from_id) {
        inner
            .open_conversations
            .insert((i.clone(), f.clone()), id.clone());
    }
    inner.conversations.insert(
        id.clone(),
        ConversationRec {
            id: id.clone(),
            start: now_iso(),
            end: None,
            integration_id,
            from_id,
            participants,
            messages: Vec::new(),
        },
    );
    Ok(id)
}

/// `POST /api/v2/conversations/messages/{integrationId}/inbound/open/message`.
/// A message from a sender that has an open conversation on the integration joins it;
/// otherwise a new conversation starts. The answer always carries `conversationId`.
pub(crate) async fn inbound_open_message(
    State(st): State<EmulatorState>,
    P(integration_id): P<String>,
    q: Params,
    body: Body,
) -> ApiResult<Response> {
    q.bool("prefetchConversationId")?;
    let body = body.required()?;
    let channel = body
        .get("channel")
        .filter(|c| c.is_object())
        .ok_or_else(|| {
            ApiError::invalid_value("channel is required.").with_detail(
                "invalid.value",
                "channel",
                None,
            )
        })?;
    let from = channel
        .get("from")
        .filter(|f| f.is_object())
        .ok_or_else(|| {
            ApiError::invalid_value("channel.from is required.").with_detail(
                "invalid.value",
                "channel.from",
                None,
            )
        })?;
    let from_id = from
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            ApiError::invalid_value("channel.from.id is required.").with_detail(
                "invalid.value",
                "channel.from.id",
                None,
            )
        })?
        .to_owned();
    if from.get("idType").and_then(Value::as_str).is_none() {
        return Err(
            ApiError::invalid_value("channel.from.idType is required.").with_detail(
                "invalid.value",
                "channel.from.idType",
                None,
            ),
        );
    }
    let time = channel
        .get("time")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::invalid_value("channel.time is required.").with_detail(
                "invalid.value",
                "channel.time",
                None,
            )
        })?
        .to_owned();
    let text = body.get("text").and_then(Value::as_str).map(str::to_owned);
    let content = body
        .get("content")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if text.as_deref().is_none_or(str::is_empty) && content.is_empty() {
        return Err(
            ApiError::invalid_value("A message needs text or content.").with_detail(
                "invalid.value",
                "text",
                None,
            ),
        );
    }

    let mut inner = st.lock();
    let key = (integration_id.clone(), from_id.clone());
    let open = inner
        .open_conversations
        .get(&key)
        .filter(|id| {
            inner
                .conversations
                .get(*id)
                .is_some_and(|c| c.end.is_none())
        })
        .cloned();
    let conversation_id = match open {
        Some(id) => id,
        None => {
            let customer = ParticipantRec {
                id: inner.new_id(),
                purpose: "customer".into(),
                name: display_name(from),
                address: Some(from_id.clone()),
                external_contact_id: crate::external::contact_for_address(&inner, &from_id),
                start: now_iso(),
                attributes: BTreeMap::new(),
            };
            let acd = ParticipantRec {
                id: inner.new_id(),
                purpose: "acd".into(),
                name: Some("Open Messaging".into()),
                address: Some(integration_id.clone()),
                external_contact_id: None,
                start: now_iso(),
                attributes: BTreeMap::new(),
            };
            create_conversation(
                &mut inner,
                None,
                Some(integration_id.clone()),
                Some(from_id.clone()),
                vec![customer, acd],
            )?
        }
    };
    let message_id = inner.new_id();
    let mut out_channel = Map::new();
    out_channel.insert("id".into(), json!(integration_id));
    out_channel.insert("platform".into(), json!("Open"));
    out_channel.insert("type".into(), json!("Private"));
    if let Some(mid) = channel.get("messageId").and_then(Value::as_str) {
        out_channel.insert("messageId".into(), json!(mid));
    }
    out_channel.insert("to".into(), json!({"id": integration_id}));
    out_channel.insert("from".into(), from.clone());
    out_channel.insert("time".into(), json!(time));
    let mut msg = Map::new();
    msg.insert("id".into(), json!(message_id));
    msg.insert("channel".into(), Value::Object(out_channel));
    msg.insert("type".into(), json!("Text"));
    if let Some(t) = text {
        msg.insert("text".into(), json!(t));
    }
    if !content.is_empty() {
        let items: Vec<Value> = content
            .iter()
            .map(|c| {
                let mut m = Map::new();
                m.insert("contentType".into(), json!("Attachment"));
                if let Some(a) = c.get("attachment") {
                    m.insert("attachment".into(), a.clone());
                }
                Value::Object(m)
            })
            .collect();
        msg.insert("content".into(), Value::Array(items));
    }
    if let Some(md) = body.get("metadata").filter(|m| m.is_object()) {
        msg.insert("metadata".into(), md.clone());
    }
    msg.insert("conversationId".into(), json!(conversation_id));
    let msg = Value::Object(msg);
    if let Some(c) = inner.conversations.get_mut(&conversation_id) {
        c.messages.push(msg.clone());
    }
    Ok(ok_json(msg))
}

/// Seeds a conversation (admin). Body: `{id?, integrationId?, fromId?, state?, participants:[{id?, purpose, name?, address?, externalContactId?, attributes?}]}`.
pub(crate) fn seed_conversation(inner: &mut Inner, body: &Value) -> ApiResult<String> {
    let mut participants = Vec::new();
    for p in body
        .get("participants")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let attributes: BTreeMap<String, String> = p
            .get("attributes")
            .and_then(Value::as_object)
            .map(|a| {
                a.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_owned);
        participants.push(ParticipantRec {
            id: s("id").unwrap_or_else(|| inner.new_id()),
            purpose: s("purpose").unwrap_or_else(|| "customer".into()),
            name: s("name"),
            address: s("address"),
            external_contact_id: s("externalContactId"),
            start: now_iso(),
            attributes,
        });
    }
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let id = create_conversation(
        inner,
        s("id"),
        s("integrationId"),
        s("fromId"),
        participants,
    )?;
    if s("state").as_deref() == Some("disconnected") {
        end_conversation(inner, &id);
    }
    Ok(id)
}

/// Ends a conversation (admin): later messages from the same sender start a new one.
pub(crate) fn end_conversation(inner: &mut Inner, id: &str) -> bool {
    let Some(c) = inner.conversations.get_mut(id) else {
        return false;
    };
    if c.end.is_none() {
        c.end = Some(now_iso());
    }
    if let (Some(i), Some(f)) = (c.integration_id.clone(), c.from_id.clone())
        && inner
            .open_conversations
            .get(&(i.clone(), f.clone()))
            .map(String::as_str)
            == Some(id)
    {
        inner.open_conversations.remove(&(i, f));
    }
    true
}
