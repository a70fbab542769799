//! The CXone route table, the router built from it, and the CXone side of the shared gate.

use std::sync::MutexGuard;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};

use super::dnc::SkillSet;
use super::error::{CxError, Family};
use super::extract::Pth;
use super::state::{CxInner, CxoneState};
use super::{admin, auth, customers, dfo, dnc, lists};
use crate::gate::middleware::{
    GateError, Platform, RateInfo, gate_middleware, method_not_allowed_fallback, not_found_fallback,
};
use crate::gate::{Gate, GateConfig};

/// Largest request body (a calling-list file travels base64-encoded in JSON).
pub(crate) const MAX_BODY_BYTES: usize = 128 * 1024 * 1024;

/// The Admin API versions served under `/inContactAPI/services/{version}/` for the lists and
/// DNC family: the ones lists-notes §4 saw used with the current two-step (mapping, then
/// upload) shape. Any other version is a 404.
pub const ADMIN_API_VERSIONS: &[&str] = &["v11.0", "v12.0", "v15.0", "v30.0", "v31.0"];

/// Every CXone route the emulator serves, `(METHOD, path template)`. `{version}` is one of
/// [`ADMIN_API_VERSIONS`].
pub const CXONE_ROUTES: &[(&str, &str)] = &[
    // issuer and discovery
    ("GET", "/.well-known/openid-configuration"),
    ("POST", "/auth/token"),
    ("GET", "/auth/jwks"),
    ("GET", "/.well-known/cxone-configuration"),
    // DFO
    ("GET", "/dfo/3.0/channels"),
    ("POST", "/dfo/3.0/channels"),
    ("POST", "/dfo/3.0/channels/{channelId}/outbound"),
    ("POST", "/dfo/3.0/channels/{channelId}/messages"),
    ("GET", "/dfo/3.0/messages"),
    ("GET", "/dfo/3.0/messages/{messageId}"),
    ("GET", "/dfo/3.0/threads"),
    ("GET", "/dfo/3.0/contacts"),
    ("GET", "/dfo/3.0/contacts/{contactId}"),
    ("GET", "/dfo/3.0/customers"),
    ("GET", "/dfo/3.0/customers/custom-field-definitions"),
    ("PUT", "/dfo/3.0/customers/custom-field-definitions"),
    ("GET", "/dfo/3.0/customers/{customerId}"),
    ("PUT", "/dfo/3.0/customers/{customerId}/merge"),
    ("PUT", "/dfo/3.0/customers/{customerId}/custom-fields"),
    (
        "DELETE",
        "/dfo/3.0/customers/{customerId}/custom-fields/{ident}",
    ),
    // Admin: calling lists
    ("GET", "/inContactAPI/services/{version}/lists/call-lists"),
    ("POST", "/inContactAPI/services/{version}/lists/call-lists"),
    (
        "GET",
        "/inContactAPI/services/{version}/lists/call-lists/jobs",
    ),
    (
        "GET",
        "/inContactAPI/services/{version}/lists/call-lists/jobs/{jobId}",
    ),
    (
        "DELETE",
        "/inContactAPI/services/{version}/lists/call-lists/jobs/{jobId}",
    ),
    (
        "GET",
        "/inContactAPI/services/{version}/lists/call-lists/{listId}",
    ),
    (
        "DELETE",
        "/inContactAPI/services/{version}/lists/call-lists/{listId}",
    ),
    (
        "POST",
        "/inContactAPI/services/{version}/lists/call-lists/{listId}/upload",
    ),
    (
        "GET",
        "/inContactAPI/services/{version}/lists/call-lists/{listId}/attempts",
    ),
    (
        "DELETE",
        "/inContactAPI/services/{version}/lists/call-lists/{sourceName}/removeProspects",
    ),
    // Admin: DNC
    ("GET", "/inContactAPI/services/{version}/dnc-groups"),
    ("POST", "/inContactAPI/services/{version}/dnc-groups"),
    ("POST", "/inContactAPI/services/{version}/dnc-groups/search"),
    (
        "GET",
        "/inContactAPI/services/{version}/dnc-groups/{groupId}",
    ),
    (
        "PUT",
        "/inContactAPI/services/{version}/dnc-groups/{groupId}",
    ),
    (
        "GET",
        "/inContactAPI/services/{version}/dnc-groups/{groupId}/contributing-skills",
    ),
    (
        "POST",
        "/inContactAPI/services/{version}/dnc-groups/{groupId}/contributing-skills/{skillId}",
    ),
    (
        "DELETE",
        "/inContactAPI/services/{version}/dnc-groups/{groupId}/contributing-skills/{skillId}",
    ),
    (
        "GET",
        "/inContactAPI/services/{version}/dnc-groups/{groupId}/scrubbed-skills",
    ),
    (
        "POST",
        "/inContactAPI/services/{version}/dnc-groups/{groupId}/scrubbed-skills/{skillId}",
    ),
    (
        "DELETE",
        "/inContactAPI/services/{version}/dnc-groups/{groupId}/scrubbed-skills/{skillId}",
    ),
    (
        "GET",
        "/inContactAPI/services/{version}/dnc-groups/{groupId}/records",
    ),
    (
        "POST",
        "/inContactAPI/services/{version}/dnc-groups/{groupId}/records",
    ),
    (
        "DELETE",
        "/inContactAPI/services/{version}/dnc-groups/{groupId}/records",
    ),
];

type Skill = Pth<(String, String, String)>;

fn skills_get(set: SkillSet) -> MethodRouter<CxoneState> {
    get(
        move |State(st): State<CxoneState>, Pth((_v, g)): Pth<(String, String)>| {
            dnc::get_skills(st, set, g)
        },
    )
}

fn skills_change(method: &str, set: SkillSet) -> MethodRouter<CxoneState> {
    let add = method == "POST";
    let h = move |State(st): State<CxoneState>, Pth((_v, g, s)): Skill| {
        dnc::change_skill(st, set, g, s, add)
    };
    if add { post(h) } else { delete(h) }
}

/// The handler of a [`CXONE_ROUTES`] entry.
fn handler_for(method: &str, path: &str) -> Option<MethodRouter<CxoneState>> {
    const A: &str = "/inContactAPI/services/{version}";
    let admin = path.strip_prefix(A);
    Some(match (method, path, admin) {
        ("GET", "/.well-known/openid-configuration", _) => get(auth::openid_configuration),
        ("POST", "/auth/token", _) => post(auth::token),
        ("GET", "/auth/jwks", _) => get(auth::jwks),
        ("GET", "/.well-known/cxone-configuration", _) => get(auth::cxone_configuration),
        ("GET", "/dfo/3.0/channels", _) => get(dfo::list_channels),
        ("POST", "/dfo/3.0/channels", _) => post(dfo::upsert_channel),
        ("POST", "/dfo/3.0/channels/{channelId}/outbound", _) => post(dfo::outbound),
        ("POST", "/dfo/3.0/channels/{channelId}/messages", _) => post(dfo::inbound),
        ("GET", "/dfo/3.0/messages", _) => get(dfo::search_messages),
        ("GET", "/dfo/3.0/messages/{messageId}", _) => get(dfo::get_message),
        ("GET", "/dfo/3.0/threads", _) => get(dfo::search_threads),
        ("GET", "/dfo/3.0/contacts", _) => get(dfo::search_contacts),
        ("GET", "/dfo/3.0/contacts/{contactId}", _) => get(dfo::get_contact),
        ("GET", "/dfo/3.0/customers", _) => get(customers::search),
        ("GET", "/dfo/3.0/customers/custom-field-definitions", _) => {
            get(customers::get_definitions)
        }
        ("PUT", "/dfo/3.0/customers/custom-field-definitions", _) => put(customers::put_definition),
        ("GET", "/dfo/3.0/customers/{customerId}", _) => get(customers::get_one),
        ("PUT", "/dfo/3.0/customers/{customerId}/merge", _) => put(customers::merge),
        ("PUT", "/dfo/3.0/customers/{customerId}/custom-fields", _) => {
            put(customers::put_custom_fields)
        }
        ("DELETE", "/dfo/3.0/customers/{customerId}/custom-fields/{ident}", _) => {
            delete(customers::delete_custom_field)
        }
        ("GET", _, Some("/lists/call-lists")) => get(lists::list_lists),
        ("POST", _, Some("/lists/call-lists")) => post(lists::create),
        ("GET", _, Some("/lists/call-lists/jobs")) => get(lists::list_jobs),
        ("GET", _, Some("/lists/call-lists/jobs/{jobId}")) => get(lists::get_job),
        ("DELETE", _, Some("/lists/call-lists/jobs/{jobId}")) => delete(lists::cancel_job),
        ("GET", _, Some("/lists/call-lists/{listId}")) => get(lists::download),
        ("DELETE", _, Some("/lists/call-lists/{listId}")) => delete(lists::delete_list),
        ("POST", _, Some("/lists/call-lists/{listId}/upload")) => post(lists::upload),
        ("GET", _, Some("/lists/call-lists/{listId}/attempts")) => get(lists::attempts),
        ("DELETE", _, Some("/lists/call-lists/{sourceName}/removeProspects")) => {
            delete(lists::remove_prospects)
        }
        ("GET", _, Some("/dnc-groups")) => get(dnc::list_groups),
        ("POST", _, Some("/dnc-groups")) => post(dnc::create),
        ("POST", _, Some("/dnc-groups/search")) => post(dnc::search),
        ("GET", _, Some("/dnc-groups/{groupId}")) => get(dnc::get_group),
        ("PUT", _, Some("/dnc-groups/{groupId}")) => put(dnc::update_group),
        ("GET", _, Some("/dnc-groups/{groupId}/contributing-skills")) => {
            skills_get(SkillSet::Contributing)
        }
        (m, _, Some("/dnc-groups/{groupId}/contributing-skills/{skillId}")) => {
            skills_change(m, SkillSet::Contributing)
        }
        ("GET", _, Some("/dnc-groups/{groupId}/scrubbed-skills")) => skills_get(SkillSet::Scrubbed),
        (m, _, Some("/dnc-groups/{groupId}/scrubbed-skills/{skillId}")) => {
            skills_change(m, SkillSet::Scrubbed)
        }
        ("GET", _, Some("/dnc-groups/{groupId}/records")) => get(dnc::list_records),
        ("POST", _, Some("/dnc-groups/{groupId}/records")) => post(dnc::add_records),
        ("DELETE", _, Some("/dnc-groups/{groupId}/records")) => delete(dnc::expire_records),
        _ => return None,
    })
}

/// Admin (`/inContactAPI/…`) routes only: an unknown API version is a 404; without
/// `Accept: application/json` the answer is 406 with a non-JSON body, as integrators report
/// the platform does (when [`super::CxoneEmulatorConfig::admin_requires_accept_json`]).
async fn admin_guard(State(st): State<CxoneState>, req: Request, next: Next) -> Response {
    let version = req.uri().path().split('/').nth(3).unwrap_or_default();
    if !ADMIN_API_VERSIONS.contains(&version) {
        return CxError::admin(
            StatusCode::NOT_FOUND,
            "InvalidApiVersion",
            format!("API version {version:?} is not served; use one of {ADMIN_API_VERSIONS:?}."),
        )
        .into_response();
    }
    let accepts_json = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("application/json"));
    if st.shared.admin_requires_accept_json && !accepts_json {
        let mut resp = (StatusCode::NOT_ACCEPTABLE, "No known way to render data").into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return resp;
    }
    next.run(req).await
}

/// The whole application: [`CXONE_ROUTES`] behind the shared gate (auth on `/dfo/…` and
/// `/inContactAPI/…`, rate limit, faults) and the admin API under `/__emulator/`.
pub fn cxone_router(state: CxoneState) -> Router {
    let mut api: Router<CxoneState> = Router::new();
    let mut admin_api: Router<CxoneState> = Router::new();
    for (method, path) in CXONE_ROUTES {
        let Some(h) = handler_for(method, path) else {
            tracing::error!(method, path, "CXONE_ROUTES entry without a handler");
            continue;
        };
        // One parameter name per path position (the router's rule): `{sourceName}` is
        // registered as `{listId}`, the handler reads it as the source name.
        let registered = path.replace("{sourceName}", "{listId}");
        if path.starts_with("/inContactAPI/") {
            admin_api = admin_api.route(&registered, h);
        } else {
            api = api.route(&registered, h);
        }
    }
    let admin_api = admin_api.route_layer(from_fn_with_state(state.clone(), admin_guard));
    let api = api
        .merge(admin_api)
        .fallback(not_found_fallback::<CxoneState>)
        .method_not_allowed_fallback(method_not_allowed_fallback::<CxoneState>)
        .layer(from_fn_with_state(
            state.clone(),
            gate_middleware::<CxoneState>,
        ));
    api.merge(admin::router())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The CXone side of the shared gate: `/dfo/…` and `/inContactAPI/…` are the API; errors take
/// the shape of the path's family.
impl Platform for CxoneState {
    type Inner = CxInner;

    fn gate_config(&self) -> &GateConfig {
        &self.shared.gate
    }

    fn lock(&self) -> MutexGuard<'_, CxInner> {
        CxoneState::lock(self)
    }

    fn gate(inner: &mut CxInner) -> &mut Gate {
        &mut inner.gate
    }

    fn is_api(path: &str) -> bool {
        path.starts_with("/dfo/") || path.starts_with("/inContactAPI/")
    }

    fn error(path: &str, e: GateError) -> Response {
        CxError::from_gate(Family::of(path), e).into_response()
    }

    fn decorate(_resp: &mut Response, _path: &str, _rate: &RateInfo, _correlation_id: &str) {
        // CXone documents no rate-limit or correlation headers (api-notes §6).
    }

    fn reset(&self) {
        CxoneState::reset(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_handler_and_no_duplicates() {
        let mut seen = std::collections::BTreeSet::new();
        for (m, p) in CXONE_ROUTES {
            assert!(handler_for(m, p).is_some(), "{m} {p} has no handler");
            assert!(seen.insert((m, p)), "{m} {p} listed twice");
        }
    }

    #[test]
    fn no_invented_endpoint_is_served() {
        // api-notes §7–§8, lists-notes §7: paths the web guides invent.
        for (_, p) in CXONE_ROUTES {
            assert!(!p.starts_with("/api/v2"), "{p}");
            assert!(!p.contains("oauth"), "{p}");
            assert!(!p.contains("events"), "{p}");
            assert!(!p.contains("journey"), "{p}");
        }
    }
}
