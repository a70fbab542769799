//! The Genesys admin API under `/__emulator/` (no auth, no faults, not counted in stats): the
//! shared routes of [`crate::gate::admin`] plus seeding and reading Genesys data.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::http::{P, ok_json};
use crate::state::EmulatorState;

/// Admin routes, for documentation and tests.
pub const ADMIN_ROUTES: &[(&str, &str)] = &[
    // shared by every platform (crate::gate::admin::SHARED_ADMIN_ROUTES)
    ("GET", "/__emulator/stats"),
    ("POST", "/__emulator/reset"),
    ("GET", "/__emulator/faults"),
    ("PUT", "/__emulator/faults"),
    ("POST", "/__emulator/revoke-tokens"),
    ("POST", "/__emulator/clock/advance"),
    ("PUT", "/__emulator/outage"),
    ("DELETE", "/__emulator/outage"),
    // Genesys
    ("POST", "/__emulator/seed"),
    ("GET", "/__emulator/contactlists/{contactListId}/contacts"),
    (
        "PUT",
        "/__emulator/externalcontacts/{contactId}/associations",
    ),
    ("GET", "/__emulator/conversations"),
    ("GET", "/__emulator/conversations/{conversationId}"),
    (
        "POST",
        "/__emulator/conversations/{conversationId}/disconnect",
    ),
];

pub(crate) fn router() -> Router<EmulatorState> {
    crate::gate::admin::router::<EmulatorState>()
        .route("/__emulator/seed", post(seed))
        .route(
            "/__emulator/contactlists/{contactListId}/contacts",
            get(list_contacts),
        )
        .route(
            "/__emulator/externalcontacts/{contactId}/associations",
            put(associations),
        )
        .route("/__emulator/conversations", get(conversations))
        .route(
            "/__emulator/conversations/{conversationId}",
            get(conversation),
        )
        .route(
            "/__emulator/conversations/{conversationId}/disconnect",
            post(disconnect),
        )
}

/// Admin bodies are plain JSON (no schema); malformed JSON is a 400 `ErrorBody`.
struct AdminJson(Value);

impl<S: Send + Sync> axum::extract::FromRequest<S> for AdminJson {
    type Rejection = ApiError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("Could not read the request body: {e}")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(AdminJson(Value::Null));
        }
        serde_json::from_slice(&bytes)
            .map(AdminJson)
            .map_err(|e| ApiError::bad_request(format!("Malformed JSON: {e}")))
    }
}

/// Seeds data. Body:
/// `{"contactLists":[{ContactList…, "id"?, "contacts":[WritableDialerContact…]}],
///   "externalContacts":[{ExternalContact…, "id"?, "activeAssociations"?: bool}],
///   "conversations":[{"id"?, "integrationId"?, "fromId"?, "state"?, "participants":[…]}]}`.
/// Items are applied in order; on an error, the items before it stay.
async fn seed(State(st): State<EmulatorState>, AdminJson(body): AdminJson) -> ApiResult<Response> {
    Ok(ok_json(st.seed_body(&body)?))
}

impl EmulatorState {
    /// Seeds data, as `POST /__emulator/seed` does (same body); answers with the ids created,
    /// or the message of the first item refused (the items before it stay).
    pub fn seed(&self, body: &Value) -> Result<Value, String> {
        self.seed_body(body).map_err(|e| e.message.clone())
    }

    fn seed_body(&self, body: &Value) -> ApiResult<Value> {
        let st = self;

        let mut inner = st.lock();
        let mut lists = Vec::new();
        for l in body
            .get("contactLists")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut l = l.clone();
            let contacts = l
                .as_object_mut()
                .and_then(|m| m.remove("contacts"))
                .and_then(|c| c.as_array().cloned())
                .unwrap_or_default();
            let id = l.get("id").and_then(Value::as_str).map(str::to_owned);
            let created = crate::outbound::create_list(&mut inner, l, id)?;
            let id = created
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            crate::outbound::seed_contacts(&mut inner, &id, &contacts)?;
            lists.push(id);
        }
        let mut ext = Vec::new();
        for c in body
            .get("externalContacts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            ext.push(crate::external::seed_contact(&mut inner, c)?);
        }
        let mut convs = Vec::new();
        for c in body
            .get("conversations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            convs.push(crate::conversations::seed_conversation(&mut inner, c)?);
        }
        Ok(json!({
            "contactLists": lists,
            "externalContacts": ext,
            "conversations": convs,
        }))
    }
}

async fn list_contacts(State(st): State<EmulatorState>, P(id): P<String>) -> ApiResult<Response> {
    st.contact_list_contacts(&id)
        .map(|c| ok_json(Value::Array(c)))
        .ok_or_else(|| ApiError::not_found(format!("contact list {id}")))
}

/// Body `{"active": true|false}`.
async fn associations(
    State(st): State<EmulatorState>,
    P(id): P<String>,
    AdminJson(body): AdminJson,
) -> ApiResult<Response> {
    let active = body
        .get("active")
        .and_then(Value::as_bool)
        .ok_or_else(|| ApiError::invalid_value("Body must be {\"active\": true|false}."))?;
    if st.set_active_associations(&id, active) {
        Ok(ok_json(json!({"id": id, "activeAssociations": active})))
    } else {
        Err(ApiError::not_found(format!("external contact {id}")))
    }
}

async fn conversations(State(st): State<EmulatorState>) -> Response {
    ok_json(Value::Array(st.conversations()))
}

async fn conversation(State(st): State<EmulatorState>, P(id): P<String>) -> ApiResult<Response> {
    st.conversation(&id)
        .map(ok_json)
        .ok_or_else(|| ApiError::not_found(format!("conversation {id}")))
}

async fn disconnect(State(st): State<EmulatorState>, P(id): P<String>) -> ApiResult<Response> {
    let mut inner = st.lock();
    if crate::conversations::end_conversation(&mut inner, &id) {
        Ok(ok_json(json!({"id": id, "state": "disconnected"})))
    } else {
        Err(ApiError::not_found(format!("conversation {id}")))
    }
}
