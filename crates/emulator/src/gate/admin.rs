//! The admin routes every platform's emulator serves under `/__emulator/` (no auth, no faults,
//! not counted in stats): counters, reset, the fault profile, token revocation, the clock and
//! outages. Each platform adds its own seed and read routes beside them.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use super::middleware::{GateError, Platform};
use crate::config::FaultProfile;

/// The shared admin routes, `(METHOD, path)`.
pub const SHARED_ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/__emulator/stats"),
    ("POST", "/__emulator/reset"),
    ("GET", "/__emulator/faults"),
    ("PUT", "/__emulator/faults"),
    ("POST", "/__emulator/revoke-tokens"),
    ("POST", "/__emulator/clock/advance"),
    ("PUT", "/__emulator/outage"),
    ("DELETE", "/__emulator/outage"),
];

/// The router of [`SHARED_ADMIN_ROUTES`] for platform `P`.
pub(crate) fn router<P: Platform>() -> Router<P> {
    Router::new()
        .route("/__emulator/stats", get(stats::<P>))
        .route("/__emulator/reset", post(reset::<P>))
        .route(
            "/__emulator/faults",
            get(get_faults::<P>).put(put_faults::<P>),
        )
        .route("/__emulator/revoke-tokens", post(revoke::<P>))
        .route("/__emulator/clock/advance", post(advance_clock::<P>))
        .route(
            "/__emulator/outage",
            put(start_outage::<P>).delete(end_outage::<P>),
        )
}

/// A JSON response with `status`.
pub(crate) fn json_with(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// An admin body: plain JSON (no schema); empty = `null`; malformed → the 400 to answer.
pub(crate) fn admin_json(bytes: &[u8]) -> Result<Value, GateError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|e| GateError::BadRequest(format!("Malformed JSON: {e}")))
}

async fn stats<P: Platform>(State(st): State<P>) -> Response {
    let stats = P::gate(&mut st.lock()).stats_snapshot();
    match serde_json::to_value(stats) {
        Ok(v) => json_with(StatusCode::OK, &v),
        Err(e) => P::error(
            "/__emulator/stats",
            GateError::InvalidValue(format!("stats cannot be rendered: {e}")),
        ),
    }
}

async fn reset<P: Platform>(State(st): State<P>) -> Response {
    st.reset();
    json_with(StatusCode::OK, &json!({"reset": true}))
}

async fn get_faults<P: Platform>(State(st): State<P>) -> Response {
    let faults = P::gate(&mut st.lock()).faults.clone();
    match serde_json::to_value(faults) {
        Ok(v) => json_with(StatusCode::OK, &v),
        Err(e) => P::error("/__emulator/faults", GateError::BadRequest(e.to_string())),
    }
}

/// Replaces the fault profile (JSON with the TOML file's keys); invalid → 400 naming the key.
async fn put_faults<P: Platform>(State(st): State<P>, bytes: Bytes) -> Response {
    const PATH: &str = "/__emulator/faults";
    let body = match admin_json(&bytes) {
        Ok(v) => v,
        Err(e) => return P::error(PATH, e),
    };
    let profile: FaultProfile = match serde_json::from_value(body) {
        Ok(p) => p,
        Err(e) => {
            return P::error(
                PATH,
                GateError::InvalidValue(format!("Invalid fault profile: {e}")),
            );
        }
    };
    if let Err(e) = profile.validate() {
        return P::error(PATH, GateError::InvalidValue(e.to_string()));
    }
    let base_seed = st.gate_config().base_seed;
    P::gate(&mut st.lock()).set_faults(profile.clone(), base_seed);
    match serde_json::to_value(profile) {
        Ok(v) => json_with(StatusCode::OK, &v),
        Err(e) => P::error(PATH, GateError::BadRequest(e.to_string())),
    }
}

async fn revoke<P: Platform>(State(st): State<P>) -> Response {
    let n = P::gate(&mut st.lock()).revoke_all();
    json_with(StatusCode::OK, &json!({"revoked": n}))
}

/// Body `{"secs": N}` (N > 0, fractions allowed): token lifetimes, revocation periods and rate
/// windows see that much more time pass.
async fn advance_clock<P: Platform>(State(st): State<P>, bytes: Bytes) -> Response {
    const PATH: &str = "/__emulator/clock/advance";
    let body = match admin_json(&bytes) {
        Ok(v) => v,
        Err(e) => return P::error(PATH, e),
    };
    let Some(by) = body
        .get("secs")
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
    else {
        return P::error(
            PATH,
            GateError::InvalidValue("Body must be {\"secs\": a positive number}.".to_owned()),
        );
    };
    let mut locked = st.lock();
    let gate = P::gate(&mut locked);
    gate.advance_clock(by);
    json_with(
        StatusCode::OK,
        &json!({"advancedSecs": gate.clock_offset.as_secs_f64()}),
    )
}

/// Body `{"after": N}` (default 0): the next N API requests are served, then every request
/// answers 503 until `DELETE /__emulator/outage`.
async fn start_outage<P: Platform>(State(st): State<P>, bytes: Bytes) -> Response {
    const PATH: &str = "/__emulator/outage";
    let body = match admin_json(&bytes) {
        Ok(v) => v,
        Err(e) => return P::error(PATH, e),
    };
    let after = match body.get("after") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_u64() {
            Some(n) => n,
            None => {
                return P::error(
                    PATH,
                    GateError::InvalidValue(
                        "Body must be {\"after\": a whole number of requests}.".to_owned(),
                    ),
                );
            }
        },
    };
    P::gate(&mut st.lock()).outage_in = Some(after);
    json_with(StatusCode::OK, &json!({"outageAfter": after}))
}

async fn end_outage<P: Platform>(State(st): State<P>) -> Response {
    P::gate(&mut st.lock()).outage_in = None;
    json_with(StatusCode::OK, &json!({"outage": false}))
}
