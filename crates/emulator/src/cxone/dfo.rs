//! DFO channels, messages, threads and digital contacts (api-notes §1, §3, §4):
//! `GET/POST /dfo/3.0/channels`, `POST /dfo/3.0/channels/{channelId}/outbound` (send),
//! `POST /dfo/3.0/channels/{channelId}/messages` (BYOC inbound), `GET /dfo/3.0/messages`,
//! `GET /dfo/3.0/messages/{messageId}`, `GET /dfo/3.0/threads`, `GET /dfo/3.0/contacts`,
//! `GET /dfo/3.0/contacts/{contactId}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::DateTime;
use serde_json::{Map, Value, json};

use super::config::InboundRepeat;
use super::error::{CxError, CxResult, Family};
use super::extract::{J, Pth, Q, opt_str, req_str};
use super::paging;
use super::state::{CaseRec, CustomField, CxInner, CxoneState, Identity, MessageRec, ThreadRec};
use super::wire::{self, json_status, ok};
use crate::util::iso;

const DFO: Family = Family::Dfo;

/// Channel fields `POST /dfo/3.0/channels` requires (the spec's `NewChannel`).
const CHANNEL_REQUIRED: &[&str] = &[
    "id",
    "idOnExternalPlatform",
    "channelIntegrationId",
    "realExternalPlatformId",
    "name",
];

/// `messageContent.type` values the spec lists for new messages.
const CONTENT_TYPES: &[&str] = &[
    "ADAPTIVE_CARD",
    "DYNAMIC_CONTENT",
    "FORM",
    "LIST_PICKER",
    "PLUGIN",
    "POSTBACK",
    "QUICK_REPLIES",
    "RICH_LINK",
    "TEXT",
    "TIME_PICKER",
    "UNSUPPORTED",
];

/// Checks a channel body and returns the channel as stored. Flags not given stay absent
/// (`hasOutboundFlow` absent = no outbound).
pub(crate) fn validate_channel(body: &Value) -> CxResult<Map<String, Value>> {
    let Some(obj) = body.as_object() else {
        return Err(CxError::dfo_invalid(
            "$",
            "The body must be a channel object.",
        ));
    };
    for f in CHANNEL_REQUIRED {
        req_str(DFO, body, f)?;
    }
    for f in ["isPrivate", "hasTreeStructure"] {
        match obj.get(f) {
            Some(Value::Bool(_)) => {}
            _ => {
                return Err(CxError::dfo_invalid(
                    f,
                    format!("{f} is required (boolean)."),
                ));
            }
        }
    }
    Ok(obj.clone())
}

/// `GET /dfo/3.0/channels`: a bare array. Filters `id[]`, `isPrivate`, `hasManualOutboundFlow`;
/// `page` (1-based) and `size` slice it when given.
pub(crate) async fn list_channels(State(st): State<CxoneState>, q: Q) -> CxResult<Response> {
    let ids = q.list("id");
    let private = q.bool("isPrivate")?;
    let manual = q.bool("hasManualOutboundFlow")?;
    let inner = st.lock();
    let flag = |c: &Value, f: &str| c.get(f).and_then(Value::as_bool).unwrap_or(false);
    let all: Vec<Value> = inner
        .channels
        .values()
        .filter(|c| {
            ids.is_empty()
                || c.get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| ids.iter().any(|x| x == id))
        })
        .filter(|c| private.is_none_or(|p| flag(c, "isPrivate") == p))
        .filter(|c| manual.is_none_or(|p| flag(c, "hasManualOutboundFlow") == p))
        .cloned()
        .collect();
    drop(inner);
    let size = q.int("size", 0)?;
    if size <= 0 {
        return Ok(ok(Value::Array(all)));
    }
    let page = q.int("page", 1)?.max(1);
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let skip = usize::try_from(page - 1).unwrap_or(0).saturating_mul(size);
    Ok(ok(Value::Array(
        all.into_iter().skip(skip).take(size).collect(),
    )))
}

/// `POST /dfo/3.0/channels`: creates or replaces the channel with that `id`; answers it.
pub(crate) async fn upsert_channel(State(st): State<CxoneState>, J(body): J) -> CxResult<Response> {
    let body = body.ok_or_else(|| CxError::dfo_invalid("$", "A channel body is required."))?;
    let channel = validate_channel(&body)?;
    let id = req_str(DFO, &body, "id")?.to_owned();
    st.lock()
        .channels
        .insert(id, Value::Object(channel.clone()));
    Ok(ok(Value::Object(channel)))
}

/// Reads and checks `messageContent`.
fn message_content(body: &Value) -> CxResult<Value> {
    let Some(content) = body.get("messageContent").filter(|c| c.is_object()) else {
        return Err(CxError::dfo_invalid(
            "messageContent",
            "messageContent is required.",
        ));
    };
    let kind = req_str(DFO, content, "type").map_err(|_| {
        CxError::dfo_invalid("messageContent.type", "messageContent.type is required.")
    })?;
    if !CONTENT_TYPES.contains(&kind) {
        return Err(CxError::dfo_invalid(
            "messageContent.type",
            format!("messageContent.type {kind:?} is not one of {CONTENT_TYPES:?}."),
        ));
    }
    let Some(payload) = content.get("payload").filter(|p| p.is_object()) else {
        return Err(CxError::dfo_invalid(
            "messageContent.payload",
            "messageContent.payload is required.",
        ));
    };
    if kind == "TEXT"
        && payload
            .get("text")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        return Err(CxError::dfo_invalid(
            "messageContent.payload.text",
            "A TEXT message needs messageContent.payload.text.",
        ));
    }
    Ok(content.clone())
}

/// An identity object (`authorEndUserIdentity`, a recipient) read from the body.
fn identity_from(v: &Value, field: &str) -> CxResult<Identity> {
    let id = v
        .get("idOnExternalPlatform")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            CxError::dfo_invalid(
                &format!("{field}.idOnExternalPlatform"),
                format!("{field}.idOnExternalPlatform is required."),
            )
        })?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(Identity {
        id: id.to_owned(),
        first_name: s("firstName"),
        last_name: s("lastName"),
        nickname: s("nickname"),
        image: s("image"),
    })
}

/// `contact.customFields` / `contact.skillId` of a message body.
fn contact_part(body: &Value, now: &str) -> CxResult<(Vec<CustomField>, Option<i64>)> {
    let Some(contact) = body.get("contact").filter(|c| !c.is_null()) else {
        return Ok((Vec::new(), None));
    };
    let mut fields = Vec::new();
    for (i, f) in contact
        .get("customFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let (Some(ident), Some(value)) = (
            f.get("ident").and_then(Value::as_str),
            f.get("value").and_then(Value::as_str),
        ) else {
            return Err(CxError::dfo_invalid(
                &format!("contact.customFields[{i}]"),
                format!("contact.customFields[{i}] needs ident and value (strings)."),
            ));
        };
        fields.push(CustomField {
            ident: ident.to_owned(),
            value: value.to_owned(),
            updated_at: now.to_owned(),
        });
    }
    let skill = match contact.get("skillId") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            CxError::dfo_invalid("contact.skillId", "contact.skillId must be a number.")
        })?),
    };
    Ok((fields, skill))
}

/// A message to store on a channel's thread.
pub(crate) struct NewMessage {
    pub(crate) channel_id: String,
    pub(crate) thread_ext_id: String,
    pub(crate) thread_name: Option<String>,
    /// The end user: the author of an inbound message, the primary recipient of an outbound one.
    pub(crate) end_user: Identity,
    pub(crate) ext_id: String,
    pub(crate) direction: String,
    pub(crate) created_at: String,
    pub(crate) content: Value,
    pub(crate) author: Option<Identity>,
    pub(crate) recipients: Value,
    pub(crate) attachments: Value,
    pub(crate) title: Option<String>,
    pub(crate) external_attributes: Value,
    pub(crate) case_fields: Vec<CustomField>,
    pub(crate) skill_id: Option<i64>,
}

/// Stores `m`: finds or opens its thread and case, finds the end user's customer card or
/// creates one (an identity not seen before is a new customer), appends the message. Returns
/// the index of the stored message.
pub(crate) fn store_message(inner: &mut CxInner, m: NewMessage) -> CxResult<usize> {
    let now = inner.now_iso();
    let key = (m.channel_id.clone(), m.thread_ext_id.clone());
    let thread_id = match inner.thread_keys.get(&key).cloned() {
        Some(tid) => {
            let open = inner.threads.get(&tid).is_some_and(|t| t.can_add_more);
            if !open {
                return Err(CxError::dfo_invalid(
                    "thread.idOnExternalPlatform",
                    "The thread does not accept more messages.",
                ));
            }
            tid
        }
        None => {
            let customer_id = inner.customer_for(&m.end_user);
            let tid = inner.gate.new_id();
            inner.case_seq += 1;
            let case_id = inner.case_seq.to_string();
            inner.cases.insert(
                inner.case_seq,
                CaseRec {
                    id: case_id.clone(),
                    thread_id: tid.clone(),
                    thread_ext_id: m.thread_ext_id.clone(),
                    channel_id: m.channel_id.clone(),
                    customer_id,
                    end_user_identity: m.end_user.clone(),
                    direction: m.direction.clone(),
                    status: "new".to_owned(),
                    created_at: now.clone(),
                    status_updated_at: now.clone(),
                    custom_fields: Vec::new(),
                    skill_id: m.skill_id,
                },
            );
            inner.threads.insert(
                tid.clone(),
                ThreadRec {
                    id: tid.clone(),
                    ext_id: m.thread_ext_id.clone(),
                    name: m.thread_name.clone().unwrap_or_default(),
                    channel_id: m.channel_id.clone(),
                    can_add_more: true,
                    case_id,
                },
            );
            inner.thread_keys.insert(key, tid.clone());
            inner.thread_order.push(tid.clone());
            tid
        }
    };
    let case_id = inner
        .threads
        .get(&thread_id)
        .map(|t| t.case_id.clone())
        .unwrap_or_default();
    let case_num: u64 = case_id.parse().unwrap_or(0);
    let mut customer_id = String::new();
    if let Some(case) = inner.cases.get_mut(&case_num) {
        for f in m.case_fields {
            match case.custom_fields.iter_mut().find(|x| x.ident == f.ident) {
                Some(x) => *x = f,
                None => case.custom_fields.push(f),
            }
        }
        if m.skill_id.is_some() {
            case.skill_id = m.skill_id;
        }
        customer_id = case.customer_id.clone();
    }
    if let Some(c) = inner.customers.get_mut(&customer_id) {
        if m.direction == "outbound" {
            c.outbound += 1;
        } else {
            c.inbound += 1;
        }
        c.last_interaction_at = Some(m.created_at.clone());
    }
    let id = inner.gate.new_id();
    inner.messages.push(MessageRec {
        id,
        ext_id: m.ext_id,
        thread_id,
        thread_ext_id: m.thread_ext_id,
        channel_id: m.channel_id,
        direction: m.direction,
        created_at: m.created_at,
        content: m.content,
        author: m.author,
        recipients: m.recipients,
        attachments: m.attachments,
        title: m.title,
        external_attributes: m.external_attributes,
        case_id,
    });
    Ok(inner.messages.len() - 1)
}

/// `{consumerContact, message}` for the message at `index`.
fn created_answer(inner: &CxInner, index: usize) -> Value {
    let Some(m) = inner.messages.get(index) else {
        return json!({});
    };
    let case = m
        .case_id
        .parse::<u64>()
        .ok()
        .and_then(|n| inner.cases.get(&n))
        .map(|c| wire::case(inner, c));
    json!({"consumerContact": case, "message": wire::message(m)})
}

fn require_channel(inner: &CxInner, channel_id: &str) -> CxResult<Value> {
    inner
        .channels
        .get(channel_id)
        .cloned()
        .ok_or_else(|| CxError::dfo_not_found(format!("Channel {channel_id}")))
}

fn opt_array(body: &Value, field: &str) -> CxResult<Value> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(json!([])),
        Some(v @ Value::Array(_)) => Ok(v.clone()),
        Some(_) => Err(CxError::dfo_invalid(
            field,
            format!("{field} must be an array."),
        )),
    }
}

/// `POST /dfo/3.0/channels/{channelId}/outbound`: sends. No idempotency key exists: every call
/// that reaches the platform sends another message (a repeated thread id appends to that
/// thread). Answers 202 `{consumerContact, message}`.
pub(crate) async fn outbound(
    State(st): State<CxoneState>,
    Pth(channel_id): Pth<String>,
    J(body): J,
) -> CxResult<Response> {
    let body = body.ok_or_else(|| CxError::dfo_invalid("$", "A message body is required."))?;
    let content = message_content(&body)?;
    let recipients = body
        .get("recipients")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| CxError::dfo_invalid("recipients", "At least one recipient is required."))?;
    let mut candidates = Vec::with_capacity(recipients.len());
    for (i, r) in recipients.iter().enumerate() {
        let mut ident = identity_from(r, &format!("recipients[{i}]"))?;
        if let Some(name) = r.get("name").and_then(Value::as_str) {
            ident.first_name = Some(name.to_owned());
        }
        let is_primary = r.get("isPrimary").and_then(Value::as_bool).unwrap_or(false);
        candidates.push((is_primary, ident));
    }
    // The end user is the primary recipient, else the first.
    let end_user = candidates
        .iter()
        .find(|(p, _)| *p)
        .or(candidates.first())
        .map(|(_, i)| i.clone())
        .ok_or_else(|| CxError::dfo_invalid("recipients", "No recipient."))?;
    let thread = body.get("thread").cloned().unwrap_or(Value::Null);
    let thread_ext = opt_str(DFO, &thread, "idOnExternalPlatform")?.map(str::to_owned);
    let thread_name = opt_str(DFO, &thread, "threadName")?.map(str::to_owned);
    let title = opt_str(DFO, &body, "title")?.map(str::to_owned);
    let attachments = opt_array(&body, "attachments")?;
    let mut inner = st.lock();
    let channel = require_channel(&inner, &channel_id)?;
    if channel.get("hasOutboundFlow").and_then(Value::as_bool) != Some(true) {
        return Err(CxError::dfo_invalid(
            "channelId",
            format!("Channel {channel_id} does not allow outbound messages (hasOutboundFlow)."),
        ));
    }
    let now = inner.now_iso();
    let (case_fields, skill_id) = contact_part(&body, &now)?;
    let thread_ext = match thread_ext {
        Some(t) if !t.trim().is_empty() => t,
        _ => inner.gate.new_id(),
    };
    let ext_id = inner.gate.new_id();
    let index = store_message(
        &mut inner,
        NewMessage {
            channel_id,
            thread_ext_id: thread_ext,
            thread_name,
            end_user,
            ext_id,
            direction: "outbound".to_owned(),
            created_at: now,
            content,
            author: None,
            recipients: Value::Array(recipients.clone()),
            attachments,
            title,
            external_attributes: json!([]),
            case_fields,
            skill_id,
        },
    )?;
    Ok(json_status(
        StatusCode::ACCEPTED,
        &created_answer(&inner, index),
    ))
}

/// `POST /dfo/3.0/channels/{channelId}/messages`: BYOC "create message in DFO". Required:
/// `idOnExternalPlatform`, `thread.idOnExternalPlatform`, `direction`,
/// `createdAtWithMilliseconds` (RFC 3339), `messageContent`,
/// `authorEndUserIdentity.idOnExternalPlatform`. A repeated `idOnExternalPlatform` on the
/// channel creates a second message ([`InboundRepeat::Duplicate`], default) or is refused
/// with 409 ([`InboundRepeat::Reject`]). Answers 200 `{consumerContact, message}`.
pub(crate) async fn inbound(
    State(st): State<CxoneState>,
    Pth(channel_id): Pth<String>,
    J(body): J,
) -> CxResult<Response> {
    let body = body.ok_or_else(|| CxError::dfo_invalid("$", "A message body is required."))?;
    let ext_id = req_str(DFO, &body, "idOnExternalPlatform")?.to_owned();
    let thread = body.get("thread").cloned().unwrap_or(Value::Null);
    let thread_ext = req_str(DFO, &thread, "idOnExternalPlatform")
        .map_err(|_| {
            CxError::dfo_invalid(
                "thread.idOnExternalPlatform",
                "thread.idOnExternalPlatform is required.",
            )
        })?
        .to_owned();
    let thread_name = opt_str(DFO, &thread, "threadName")?.map(str::to_owned);
    let direction = req_str(DFO, &body, "direction")?;
    if direction != "inbound" && direction != "outbound" {
        return Err(CxError::dfo_invalid(
            "direction",
            "direction must be inbound or outbound.",
        ));
    }
    let created = req_str(DFO, &body, "createdAtWithMilliseconds")?;
    let created = DateTime::parse_from_rfc3339(created)
        .map(|t| iso(t.to_utc()))
        .map_err(|_| {
            CxError::dfo_invalid(
                "createdAtWithMilliseconds",
                "createdAtWithMilliseconds must be an RFC 3339 date-time.",
            )
        })?;
    let content = message_content(&body)?;
    let author_v = body
        .get("authorEndUserIdentity")
        .filter(|a| a.is_object())
        .ok_or_else(|| {
            CxError::dfo_invalid(
                "authorEndUserIdentity",
                "authorEndUserIdentity is required.",
            )
        })?;
    let author = identity_from(author_v, "authorEndUserIdentity")?;
    let recipients = opt_array(&body, "recipients")?;
    let attachments = opt_array(&body, "attachments")?;
    let external_attributes = opt_array(&body, "externalAttributes")?;
    let title = opt_str(DFO, &body, "title")?.map(str::to_owned);
    let mut inner = st.lock();
    require_channel(&inner, &channel_id)?;
    if st.shared.inbound_repeat == InboundRepeat::Reject
        && inner
            .messages
            .iter()
            .any(|m| m.channel_id == channel_id && m.ext_id == ext_id)
    {
        return Err(CxError::new(
            DFO,
            StatusCode::CONFLICT,
            "MessageAlreadyExists",
            "A message with this idOnExternalPlatform already exists on the channel.",
        ));
    }
    let now = inner.now_iso();
    let (case_fields, skill_id) = contact_part(&body, &now)?;
    let index = store_message(
        &mut inner,
        NewMessage {
            channel_id,
            thread_ext_id: thread_ext,
            thread_name,
            end_user: author.clone(),
            ext_id,
            direction: direction.to_owned(),
            created_at: created,
            content,
            author: Some(author),
            recipients,
            attachments,
            title,
            external_attributes,
            case_fields,
            skill_id,
        },
    )?;
    Ok(ok(created_answer(&inner, index)))
}

fn message_text(m: &MessageRec) -> String {
    m.content
        .get("payload")
        .and_then(|p| p.get("text"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase()
}

/// `GET /dfo/3.0/messages`: filters `idOnExternalPlatform[]`, `channel[]`,
/// `authorIdOnExternalPlatform[]`, `direction`, `contentContains`, `contentNotContains`,
/// `contactNumber`, `query` (text). `{hits, data}`, newest first; `data` holds at most the
/// page-size limit (the spec has no paging here), `hits` counts every match.
pub(crate) async fn search_messages(State(st): State<CxoneState>, q: Q) -> CxResult<Response> {
    let ext_ids = q.list("idOnExternalPlatform");
    let channels = q.list("channel");
    let authors = q.list_lower("authorIdOnExternalPlatform");
    let direction = q.get("direction").filter(|d| !d.is_empty());
    if let Some(d) = direction
        && d != "inbound"
        && d != "outbound"
    {
        return Err(CxError::dfo_invalid(
            "direction",
            "direction must be inbound or outbound.",
        ));
    }
    let contains = q.get("contentContains").map(str::to_lowercase);
    let not_contains = q.get("contentNotContains").map(str::to_lowercase);
    let text = q.get("query").map(str::to_lowercase);
    let contact = q.get("contactNumber").filter(|c| !c.is_empty());
    let inner = st.lock();
    let hits: Vec<&MessageRec> = inner
        .messages
        .iter()
        .rev()
        .filter(|m| ext_ids.is_empty() || ext_ids.contains(&m.ext_id))
        .filter(|m| channels.is_empty() || channels.contains(&m.channel_id))
        .filter(|m| {
            authors.is_empty()
                || m.author
                    .as_ref()
                    .is_some_and(|a| authors.contains(&a.id.to_lowercase()))
        })
        .filter(|m| direction.is_none_or(|d| m.direction == d))
        .filter(|m| {
            contains
                .as_ref()
                .is_none_or(|c| message_text(m).contains(c))
        })
        .filter(|m| {
            not_contains
                .as_ref()
                .is_none_or(|c| !message_text(m).contains(c))
        })
        .filter(|m| text.as_ref().is_none_or(|t| message_text(m).contains(t)))
        .filter(|m| contact.is_none_or(|c| m.case_id == c))
        .collect();
    let data: Vec<Value> = hits
        .iter()
        .take(st.shared.max_page_size)
        .map(|m| wire::message(m))
        .collect();
    Ok(ok(json!({"hits": hits.len(), "data": data})))
}

/// `GET /dfo/3.0/messages/{messageId}`.
pub(crate) async fn get_message(
    State(st): State<CxoneState>,
    Pth(id): Pth<String>,
) -> CxResult<Response> {
    let inner = st.lock();
    inner
        .messages
        .iter()
        .find(|m| m.id == id)
        .map(|m| ok(wire::message(m)))
        .ok_or_else(|| CxError::dfo_not_found(format!("Message {id}")))
}

/// `GET /dfo/3.0/threads?query=…&withContext=…`: threads whose `idOnExternalPlatform` or name
/// **contains** the query (any case; the grammar is not documented, so an exact look-up must
/// compare the answers itself). `{totalRecords, data, _links}`, newest first, at most the
/// page-size limit; `withContext` (1/true) adds `_context{messages, channels}`.
pub(crate) async fn search_threads(State(st): State<CxoneState>, q: Q) -> CxResult<Response> {
    let query = q.get("query").unwrap_or_default().trim().to_lowercase();
    let with_context = match q.get("withContext").map(str::trim) {
        None | Some("" | "0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => {
            return Err(CxError::dfo_invalid(
                "withContext",
                "withContext must be 0 or 1.",
            ));
        }
    };
    let inner = st.lock();
    let hits: Vec<&ThreadRec> = inner
        .thread_order
        .iter()
        .rev()
        .filter_map(|id| inner.threads.get(id))
        .filter(|t| {
            query.is_empty()
                || t.ext_id.to_lowercase().contains(&query)
                || t.name.to_lowercase().contains(&query)
        })
        .collect();
    let shown: Vec<&ThreadRec> = hits.iter().take(st.shared.max_page_size).copied().collect();
    let mut out = json!({
        "totalRecords": hits.len(),
        "data": shown.iter().map(|t| wire::thread(t)).collect::<Vec<_>>(),
        "_links": {"self": Value::Null, "next": Value::Null, "previous": Value::Null},
    });
    if with_context {
        let messages: Vec<Value> = inner
            .messages
            .iter()
            .filter(|m| shown.iter().any(|t| t.id == m.thread_id))
            .map(wire::message)
            .collect();
        let channels: Vec<Value> = inner
            .channels
            .iter()
            .filter(|(id, _)| shown.iter().any(|t| &t.channel_id == *id))
            .map(|(_, c)| c.clone())
            .collect();
        out["_context"] = json!({"messages": messages, "channels": channels});
    }
    Ok(ok(out))
}

/// `GET /dfo/3.0/contacts`: digital contacts (cases), oldest first. Filters `channel[]`,
/// `status[]`, `endUserIdOnExternalPlatform[]`, `routingQueueId[]` (the emulator routes
/// nothing, so any value matches none), `query` (contained in the thread id or the end user's
/// identity); `size` (default 25) and `scrollToken` paging; `{hits, data, scrollToken}`.
pub(crate) async fn search_contacts(State(st): State<CxoneState>, q: Q) -> CxResult<Response> {
    let channels = q.list("channel");
    let statuses = q.list("status");
    let users = q.list_lower("endUserIdOnExternalPlatform");
    let queues = q.list("routingQueueId");
    let query = q.get("query").unwrap_or_default().trim().to_lowercase();
    let size = page_size(&q, st.shared.max_page_size)?;
    let search = format!("contacts|{channels:?}|{statuses:?}|{users:?}|{queues:?}|{query}");
    let after = paging::after(&q, &search)?;
    let inner = st.lock();
    let hits: Vec<&CaseRec> = inner
        .cases
        .values()
        .filter(|c| channels.is_empty() || channels.contains(&c.channel_id))
        .filter(|c| statuses.is_empty() || statuses.contains(&c.status))
        .filter(|c| users.is_empty() || users.contains(&c.end_user_identity.id.to_lowercase()))
        .filter(|_| queues.is_empty())
        .filter(|c| {
            query.is_empty()
                || c.thread_ext_id.to_lowercase().contains(&query)
                || c.end_user_identity.id.to_lowercase().contains(&query)
        })
        .collect();
    let total = hits.len();
    let keyed = hits
        .into_iter()
        .map(|c| {
            let n: u64 = c.id.parse().unwrap_or(0);
            (String::new(), n, c)
        })
        .collect();
    let (page, next) = paging::page(keyed, after.as_ref(), false, size);
    let data: Vec<Value> = page.into_iter().map(|c| wire::case(&inner, c)).collect();
    let mut out = json!({"hits": total, "data": data});
    paging::attach(&mut out, &search, next);
    Ok(ok(out))
}

/// `GET /dfo/3.0/contacts/{contactId}`.
pub(crate) async fn get_contact(
    State(st): State<CxoneState>,
    Pth(id): Pth<String>,
) -> CxResult<Response> {
    let inner = st.lock();
    id.parse::<u64>()
        .ok()
        .and_then(|n| inner.cases.get(&n))
        .map(|c| ok(wire::case(&inner, c)))
        .ok_or_else(|| CxError::dfo_not_found(format!("Contact {id}")))
}

/// `size` (or the spec's `limit`), default 25, clamped to `max` silently; 0 or negative → 400.
pub(crate) fn page_size(q: &Q, max: usize) -> CxResult<usize> {
    let raw = match q.get("size").filter(|s| !s.is_empty()) {
        Some(_) => q.int("size", 25)?,
        None => q.int("limit", 25)?,
    };
    if raw <= 0 {
        return Err(CxError::dfo_invalid("size", "size must be at least 1."));
    }
    Ok(usize::try_from(raw).unwrap_or(usize::MAX).min(max))
}
