//! How CXone records look on the wire (the emulator's own rendering of the spec's schemas;
//! api-notes §1, §5, §10): customers (`surname`, not `lastName`), identities, custom fields,
//! threads, messages, digital contacts, channels.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::state::{CaseRec, CustomField, CustomerRec, CxInner, Identity, MessageRec, ThreadRec};

/// A JSON answer with `status`.
pub(crate) fn json_status(status: StatusCode, value: &Value) -> Response {
    let mut resp = (status, value.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// 200 with a JSON body.
pub(crate) fn ok(value: Value) -> Response {
    json_status(StatusCode::OK, &value)
}

/// 204 without a body (the spec's `void` operations).
pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

pub(crate) fn identity(i: &Identity) -> Value {
    json!({
        "idOnExternalPlatform": i.id,
        "firstName": i.first_name,
        "lastName": i.last_name,
        "nickname": i.nickname,
        "image": i.image,
    })
}

pub(crate) fn custom_fields(fields: &[CustomField]) -> Value {
    Value::Array(
        fields
            .iter()
            .map(|f| json!({"ident": f.ident, "value": f.value, "updatedAt": f.updated_at}))
            .collect(),
    )
}

/// `firstName surname`, trimmed; `null` when both are empty.
pub(crate) fn full_name(c: &CustomerRec) -> Option<String> {
    let parts: Vec<&str> = [c.first_name.as_deref(), c.surname.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// A customer card as `GET /dfo/3.0/customers/{id}` answers it.
pub(crate) fn customer(c: &CustomerRec) -> Value {
    json!({
        "id": c.id,
        "firstName": c.first_name,
        "surname": c.surname,
        "fullName": full_name(c),
        "image": c.image,
        "customFields": custom_fields(&c.custom_fields),
        "identities": c.identities.iter().map(identity).collect::<Vec<_>>(),
        "messageStatistics": {"inbound": c.inbound, "outbound": c.outbound},
        "sentimentStatistics": {"positive": 0, "neutral": 0, "negative": 0},
        "createdAt": c.created_at,
        "updatedAt": c.updated_at,
        "lastInteractionAt": c.last_interaction_at,
    })
}

pub(crate) fn thread(t: &ThreadRec) -> Value {
    json!({
        "id": t.id,
        "idOnExternalPlatform": t.ext_id,
        "threadName": t.name,
        "channelId": t.channel_id,
        "canAddMoreMessages": t.can_add_more,
    })
}

pub(crate) fn message(m: &MessageRec) -> Value {
    json!({
        "id": m.id,
        "idOnExternalPlatform": m.ext_id,
        "direction": m.direction,
        "createdAt": m.created_at,
        "createdAtWithMilliseconds": m.created_at,
        "messageContent": m.content,
        "authorEndUserIdentity": m.author.as_ref().map(identity),
        "recipients": m.recipients,
        "attachments": m.attachments,
        "title": m.title,
        "channel": {"id": m.channel_id},
        "threadId": m.thread_id,
        "threadIdOnExternalPlatform": m.thread_ext_id,
        "contactNumber": m.case_id,
        "externalAttributes": m.external_attributes,
        "isDeletedOnExternalPlatform": false,
    })
}

/// A digital contact (case), with its end user's customer card.
pub(crate) fn case(inner: &CxInner, c: &CaseRec) -> Value {
    json!({
        "id": c.id,
        "contactId": c.id,
        "threadId": c.thread_id,
        "threadIdOnExternalPlatform": c.thread_ext_id,
        "channelId": c.channel_id,
        "direction": c.direction,
        "status": c.status,
        "statusUpdatedAt": c.status_updated_at,
        "createdAt": c.created_at,
        "customFields": custom_fields(&c.custom_fields),
        "authorEndUserIdentity": identity(&c.end_user_identity),
        "endUser": inner.customers.get(&c.customer_id).map(customer),
        "routingQueueId": Value::Null,
        "skillId": c.skill_id,
    })
}
