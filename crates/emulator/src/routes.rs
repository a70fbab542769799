//! The route table and the router built from it.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, delete, get, patch, post, put};

use crate::gate::middleware::{gate_middleware, method_not_allowed_fallback, not_found_fallback};
use crate::http::MAX_BODY_BYTES;
use crate::state::EmulatorState;
use crate::{admin, conversations, external, oauth, outbound};

/// Every Genesys route the emulator serves, `(METHOD, path template)`, with the platform's
/// templates (`{contactListId}`…). The router is built from this table, and the route-check test
/// verifies each entry (except `/oauth/token`, which lives on the login host and is not in the
/// API excerpt) against `openapi-excerpt.json`.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/oauth/token"),
    // Outbound contact lists
    ("GET", "/api/v2/outbound/contactlists"),
    ("POST", "/api/v2/outbound/contactlists"),
    ("GET", "/api/v2/outbound/contactlists/{contactListId}"),
    ("PUT", "/api/v2/outbound/contactlists/{contactListId}"),
    ("DELETE", "/api/v2/outbound/contactlists/{contactListId}"),
    (
        "POST",
        "/api/v2/outbound/contactlists/{contactListId}/contacts",
    ),
    (
        "DELETE",
        "/api/v2/outbound/contactlists/{contactListId}/contacts",
    ),
    (
        "GET",
        "/api/v2/outbound/contactlists/{contactListId}/contacts/{contactId}",
    ),
    (
        "PUT",
        "/api/v2/outbound/contactlists/{contactListId}/contacts/{contactId}",
    ),
    (
        "DELETE",
        "/api/v2/outbound/contactlists/{contactListId}/contacts/{contactId}",
    ),
    (
        "POST",
        "/api/v2/outbound/contactlists/{contactListId}/contacts/bulk",
    ),
    (
        "POST",
        "/api/v2/outbound/contactlists/{contactListId}/contacts/search",
    ),
    // External Contacts
    ("GET", "/api/v2/externalcontacts/contacts"),
    ("POST", "/api/v2/externalcontacts/contacts"),
    ("GET", "/api/v2/externalcontacts/contacts/{contactId}"),
    ("PUT", "/api/v2/externalcontacts/contacts/{contactId}"),
    ("PATCH", "/api/v2/externalcontacts/contacts/{contactId}"),
    ("DELETE", "/api/v2/externalcontacts/contacts/{contactId}"),
    (
        "GET",
        "/api/v2/externalcontacts/contacts/{contactId}/unresolved",
    ),
    ("POST", "/api/v2/externalcontacts/contacts/merge"),
    ("POST", "/api/v2/externalcontacts/identifierlookup/contacts"),
    ("GET", "/api/v2/externalcontacts/scan/contacts"),
    ("POST", "/api/v2/externalcontacts/bulk/contacts"),
    ("POST", "/api/v2/externalcontacts/bulk/contacts/add"),
    ("POST", "/api/v2/externalcontacts/bulk/contacts/update"),
    ("POST", "/api/v2/externalcontacts/bulk/contacts/remove"),
    // Conversations
    ("GET", "/api/v2/conversations/{conversationId}"),
    (
        "PATCH",
        "/api/v2/conversations/{conversationId}/participants/{participantId}/attributes",
    ),
    (
        "POST",
        "/api/v2/conversations/messages/{integrationId}/inbound/open/message",
    ),
];

/// The handler of a `ROUTES` entry.
fn handler_for(method: &str, path: &str) -> Option<MethodRouter<EmulatorState>> {
    const CL: &str = "/api/v2/outbound/contactlists";
    const EC: &str = "/api/v2/externalcontacts";
    let rest_cl = path.strip_prefix(CL);
    let rest_ec = path.strip_prefix(EC);
    Some(match (method, path, rest_cl, rest_ec) {
        ("POST", "/oauth/token", _, _) => post(oauth::token),
        ("GET", _, Some(""), _) => get(outbound::list),
        ("POST", _, Some(""), _) => post(outbound::create),
        ("GET", _, Some("/{contactListId}"), _) => get(outbound::get_one),
        ("PUT", _, Some("/{contactListId}"), _) => put(outbound::update),
        ("DELETE", _, Some("/{contactListId}"), _) => delete(outbound::delete),
        ("POST", _, Some("/{contactListId}/contacts"), _) => post(outbound::add_contacts),
        ("DELETE", _, Some("/{contactListId}/contacts"), _) => delete(outbound::delete_contacts),
        ("GET", _, Some("/{contactListId}/contacts/{contactId}"), _) => get(outbound::get_contact),
        ("PUT", _, Some("/{contactListId}/contacts/{contactId}"), _) => put(outbound::put_contact),
        ("DELETE", _, Some("/{contactListId}/contacts/{contactId}"), _) => {
            delete(outbound::delete_contact)
        }
        ("POST", _, Some("/{contactListId}/contacts/bulk"), _) => post(outbound::bulk_get),
        ("POST", _, Some("/{contactListId}/contacts/search"), _) => post(outbound::search),
        ("GET", _, _, Some("/contacts")) => get(external::search),
        ("POST", _, _, Some("/contacts")) => post(external::create),
        ("GET", _, _, Some("/contacts/{contactId}")) => get(external::get_one),
        ("PUT", _, _, Some("/contacts/{contactId}")) => put(external::update),
        ("PATCH", _, _, Some("/contacts/{contactId}")) => patch(external::patch),
        ("DELETE", _, _, Some("/contacts/{contactId}")) => delete(external::delete),
        ("GET", _, _, Some("/contacts/{contactId}/unresolved")) => get(external::unresolved),
        ("POST", _, _, Some("/contacts/merge")) => post(external::merge),
        ("POST", _, _, Some("/identifierlookup/contacts")) => post(external::identifier_lookup),
        ("GET", _, _, Some("/scan/contacts")) => get(external::scan),
        ("POST", _, _, Some("/bulk/contacts")) => post(external::bulk_fetch),
        ("POST", _, _, Some("/bulk/contacts/add")) => post(external::bulk_add),
        ("POST", _, _, Some("/bulk/contacts/update")) => post(external::bulk_update),
        ("POST", _, _, Some("/bulk/contacts/remove")) => post(external::bulk_remove),
        ("GET", "/api/v2/conversations/{conversationId}", _, _) => get(conversations::get_one),
        (
            "PATCH",
            "/api/v2/conversations/{conversationId}/participants/{participantId}/attributes",
            _,
            _,
        ) => patch(conversations::patch_attributes),
        ("POST", "/api/v2/conversations/messages/{integrationId}/inbound/open/message", _, _) => {
            post(conversations::inbound_open_message)
        }
        _ => return None,
    })
}

/// The whole application: the Genesys routes of [`ROUTES`] (behind auth, rate limiting and
/// fault injection) and the admin API under `/__emulator/` (no auth, no faults, not counted).
pub fn router(state: EmulatorState) -> Router {
    let mut api: Router<EmulatorState> = Router::new();
    for (method, path) in ROUTES {
        match handler_for(method, path) {
            Some(h) => api = api.route(path, h),
            None => tracing::error!(method, path, "ROUTES entry without a handler"),
        }
    }
    for (path, h) in crate::agentless::handlers() {
        api = api.route(path, h);
    }
    let api = api
        .fallback(not_found_fallback::<EmulatorState>)
        .method_not_allowed_fallback(method_not_allowed_fallback::<EmulatorState>)
        .layer(from_fn_with_state(
            state.clone(),
            gate_middleware::<EmulatorState>,
        ));
    api.merge(admin::router())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_handler_and_no_duplicates() {
        let mut seen = std::collections::BTreeSet::new();
        for (m, p) in ROUTES {
            assert!(handler_for(m, p).is_some(), "{m} {p} has no handler");
            assert!(seen.insert((m, p)), "{m} {p} listed twice");
        }
        assert!(handler_for("GET", "/api/v2/nope").is_none());
    }
}
