//! Request plumbing: extractors that answer malformed input with one `ErrorBody`, and the
//! middleware that does auth, rate limiting, fault injection, headers and counting.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::FaultKind;
use crate::error::{ApiError, ApiResult, CORRELATION_ID, ErrorMarker, new_correlation_id};
use crate::schema::{Mode, SwaggerDoc};
use crate::state::{EmulatorState, Inner};
use crate::util::{parse_bearer, path_matches, stable_hash, unit_interval};

/// The emulator-only request header for per-request faults, e.g. `x-emulator-fault: 504-applied`.
pub const FAULT_HEADER: &str = "x-emulator-fault";

/// Largest request body accepted (bigger → 413 `request.entity.too.large`).
pub(crate) const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Per-request fault context handed to handlers (batch and merge faults are decided there).
#[derive(Debug, Clone, Default)]
pub(crate) struct ReqCtx {
    pub(crate) seed: u64,
    /// Indexes of batch records forced to fail by the request header.
    pub(crate) forced_record_failures: Vec<usize>,
    /// Force a 409 on the merge (header `merge-conflict`).
    pub(crate) forced_merge_conflict: bool,
    /// `(rule index, probability, statuses)` of matching `record_failure` rules.
    pub(crate) record_rules: Vec<(usize, f64, Vec<u16>)>,
    /// `(rule index, probability)` of matching `merge_conflict` rules.
    pub(crate) merge_rules: Vec<(usize, f64)>,
}

impl ReqCtx {
    /// Whether the record at `index` (identified by `key`: its id, or its content when it has
    /// none) fails, and with which status. 4xx failures are a deterministic function of the seed
    /// and the record (a bad record stays bad on retry); 5xx ones are drawn from the fault RNG
    /// (transient).
    pub(crate) fn record_failure(&self, inner: &mut Inner, index: usize, key: &str) -> Option<u16> {
        if self.forced_record_failures.contains(&index) {
            inner.count_fault(FaultKind::RecordFailure.as_str());
            return Some(400);
        }
        for (rule, p, statuses) in &self.record_rules {
            let h = stable_hash(&[
                b"record",
                &self.seed.to_le_bytes(),
                &rule.to_le_bytes(),
                key.as_bytes(),
            ]);
            let status = statuses
                .get((h % statuses.len().max(1) as u64) as usize)
                .copied()
                .unwrap_or(400);
            let fires = if status < 500 {
                unit_interval(stable_hash(&[&h.to_le_bytes()])) < *p
            } else {
                inner.fault_rng.random::<f64>() < *p
            };
            if fires {
                inner.count_fault(FaultKind::RecordFailure.as_str());
                return Some(status);
            }
        }
        None
    }

    /// Whether merge source `id` "has active associations" under the profile (deterministic per
    /// seed and id), or the header forces it (then `first` decides: the first source conflicts).
    pub(crate) fn merge_conflict(&self, id: &str, first: bool) -> bool {
        if self.forced_merge_conflict && first {
            return true;
        }
        self.merge_rules.iter().any(|(rule, p)| {
            unit_interval(stable_hash(&[
                b"merge",
                &self.seed.to_le_bytes(),
                &rule.to_le_bytes(),
                id.as_bytes(),
            ])) < *p
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ReqCtx {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ReqCtx>()
            .cloned()
            .unwrap_or_default())
    }
}

/// Path parameters; a malformed path is a 400 `bad.request`.
pub(crate) struct P<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for P<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| P(v))
            .map_err(|e| ApiError::bad_request(format!("Invalid path parameter: {e}")))
    }
}

/// Query parameters as pairs. List parameters may be repeated or comma-joined (the SDKs join).
#[derive(Debug, Default)]
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Params(v))
            .map_err(|e| ApiError::bad_request(format!("Invalid query string: {e}")))
    }
}

impl Params {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All values of a list parameter, split on commas, empty pieces dropped.
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name || k.strip_suffix("[]") == Some(name))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub(crate) fn int(&self, name: &str, default: i64) -> ApiResult<i64> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                ApiError::invalid_value(format!(
                    "Value [{v}] is not valid for field type [integer] of parameter {name}"
                ))
            }),
        }
    }

    pub(crate) fn bool(&self, name: &str) -> ApiResult<bool> {
        match self.get(name) {
            None | Some("") => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::invalid_value(format!(
                "Value [{v}] is not valid for field type [boolean] of parameter {name}"
            ))),
        }
    }
}

/// A JSON request body, checked against the route's request schema in the excerpt.
/// `None` when the body is empty or the literal `null` (what the SDKs send for no body).
pub(crate) struct Body(pub(crate) Option<Value>);

impl Body {
    /// The body, or 400 when it is missing.
    pub(crate) fn required(self) -> ApiResult<Value> {
        self.0
            .ok_or_else(|| ApiError::bad_request("The request could not be understood by the server due to malformed syntax. A request body is required."))
    }
}

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let method = req.method().clone();
        let template = req
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned());
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request.entity.too.large",
                    format!("The request is over the size limit. Maximum bytes: {MAX_BODY_BYTES}"),
                )
            } else {
                ApiError::bad_request(format!("Could not read the request body: {e}"))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(None));
        }
        if let Some(ct) = &content_type
            && !(ct.starts_with("application/json") || ct.contains("+json"))
        {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported.media.type",
                format!(
                    "Unsupported Media Type - Unsupported or incorrect media type, such as an incorrect Content-Type value in the header. Got {ct}"
                ),
            ));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(format!(
                "The request could not be understood by the server due to malformed syntax. {e}"
            ))
        })?;
        if value.is_null() {
            return Ok(Body(None));
        }
        if let Some(t) = template {
            let doc = SwaggerDoc::excerpt();
            if let Some(schema) = doc.request_body_schema(method.as_str(), &t) {
                let errors = doc.validate(&value, schema, Mode::Request);
                if let Some(first) = errors.first() {
                    let field = first.split(':').next().unwrap_or("$").to_owned();
                    let mut err = ApiError::invalid_value(format!(
                        "Invalid request body: {}",
                        errors.join("; ")
                    ));
                    err = err.with_detail("invalid.value", &field, None);
                    return Err(err);
                }
            }
        }
        Ok(Body(Some(value)))
    }
}

/// A JSON response with status 200.
pub(crate) fn ok_json(value: Value) -> Response {
    json_response(StatusCode::OK, &value)
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut resp = (status, value.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A response without a body (202 Accepted, 200 for deletes), still `application/json`.
pub(crate) fn empty(status: StatusCode) -> Response {
    let mut resp = status.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Faults asked for by the request header.
#[derive(Debug, Default, Clone)]
struct Directives {
    too_many: Option<u64>,
    server_error: Option<(u16, Option<u64>)>,
    gateway_timeout: bool,
    applied_504: bool,
    slow: Option<u64>,
    timeout: Option<u64>,
    record_failures: Vec<usize>,
    merge_conflict: bool,
    revoke_token: bool,
}

fn parse_directives(headers: &HeaderMap) -> ApiResult<Directives> {
    let mut d = Directives::default();
    for raw in headers.get_all(FAULT_HEADER) {
        let text = raw
            .to_str()
            .map_err(|_| ApiError::bad_request(format!("{FAULT_HEADER} must be ASCII")))?;
        for item in text
            .split([';', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (name, arg) = match item.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim())),
                None => (item, None),
            };
            let num = |what: &str| -> ApiResult<Option<u64>> {
                arg.map(|a| {
                    a.trim_end_matches("ms").parse::<u64>().map_err(|_| {
                        ApiError::bad_request(format!(
                            "{FAULT_HEADER}: {what} needs a number, got {a:?}"
                        ))
                    })
                })
                .transpose()
            };
            match name {
                "429" | "rate-limit" => d.too_many = Some(num("429")?.unwrap_or(1).max(1)),
                "500" | "502" | "503" => {
                    let status = name.parse().unwrap_or(500);
                    d.server_error = Some((status, num(name)?.map(|s| s.max(1))));
                }
                "504" => d.gateway_timeout = true,
                "504-applied" => d.applied_504 = true,
                "slow" => d.slow = Some(num("slow")?.unwrap_or(1000)),
                "timeout" => d.timeout = Some(num("timeout")?.unwrap_or(30_000)),
                "record-failure" => {
                    let idx = num("record-failure")?.ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "{FAULT_HEADER}: record-failure needs an index, e.g. record-failure=0"
                        ))
                    })?;
                    d.record_failures
                        .push(usize::try_from(idx).unwrap_or(usize::MAX));
                }
                "merge-conflict" => d.merge_conflict = true,
                "revoke-token" => d.revoke_token = true,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "{FAULT_HEADER}: unknown fault {other:?}; known: 429[=secs], 500, 502, 503[=retry-after], 504, 504-applied, slow=ms, timeout=ms, record-failure=index, merge-conflict, revoke-token"
                    )));
                }
            }
        }
    }
    Ok(d)
}

/// What the middleware decided before running the handler.
enum Decision {
    Proceed,
    Reject(ApiError),
    TimeoutThen504(Duration),
}

/// The middleware for Genesys routes (`/oauth/token`, `/api/v2/…`).
pub(crate) async fn genesys_middleware(
    State(st): State<EmulatorState>,
    req: Request,
    next: Next,
) -> Response {
    let cid = new_correlation_id();
    CORRELATION_ID
        .scope(cid.clone(), async move { serve(st, req, next, cid).await })
        .await
}

struct RateHeaders {
    allowed: u64,
    count: u64,
    reset: u64,
}

async fn serve(st: EmulatorState, mut req: Request, next: Next, cid: String) -> Response {
    let now = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let route_key = format!("{method} {}", template.as_deref().unwrap_or("(unmatched)"));
    let is_api = path.starts_with("/api/v2");
    let limit = st.shared.rate_limit_per_minute;
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_bearer)
        .map(str::to_owned);

    let mut rate = RateHeaders {
        allowed: u64::from(limit),
        count: 0,
        reset: crate::state::WINDOW.as_secs(),
    };
    let mut slow = Duration::ZERO;
    let mut applied_504 = false;

    let directives = parse_directives(req.headers());
    let decision = {
        let mut inner = st.lock();
        inner.stats.total_requests += 1;
        *inner.stats.requests_by_route.entry(route_key).or_default() += 1;
        let down = match inner.outage_in {
            Some(0) => true,
            Some(n) => {
                if is_api {
                    inner.outage_in = Some(n - 1);
                }
                false
            }
            None => false,
        };
        if down {
            inner.count_fault("outage");
        }
        match directives {
            _ if down => Decision::Reject(ApiError::server_error(503, None)),
            Err(e) => Decision::Reject(e),
            Ok(d) => decide(
                &mut inner,
                &st,
                &d,
                &method,
                &path,
                template.as_deref(),
                is_api,
                token.as_deref(),
                now,
                &mut rate,
                &mut slow,
                &mut applied_504,
                &mut req,
            ),
        }
    };

    let mut resp = match decision {
        Decision::Reject(e) => e.into_response(),
        Decision::TimeoutThen504(delay) => {
            tokio::time::sleep(delay).await;
            ApiError::gateway_timeout().into_response()
        }
        Decision::Proceed => {
            if !slow.is_zero() {
                tokio::time::sleep(slow).await;
            }
            let resp = next.run(req).await;
            if applied_504 && resp.status().is_success() {
                st.lock()
                    .count_fault(FaultKind::GatewayTimeoutApplied.as_str());
                ApiError::gateway_timeout().into_response()
            } else {
                resp
            }
        }
    };

    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&cid) {
        h.insert("inin-correlation-id", v);
    }
    if is_api {
        for (name, v) in [
            ("inin-ratelimit-allowed", rate.allowed),
            ("inin-ratelimit-count", rate.count),
            ("inin-ratelimit-reset", rate.reset),
        ] {
            if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
                h.insert(name, v);
            }
        }
    }
    let status = resp.status().as_u16();
    {
        let mut inner = st.lock();
        *inner.stats.responses_by_status.entry(status).or_default() += 1;
        if status == 429 {
            inner.stats.too_many_requests_sent += 1;
        }
    }
    if resp.extensions().get::<ErrorMarker>().is_some() && status >= 500 {
        tracing::debug!(status, %path, "emulator answered with an error");
    }
    resp
}

#[allow(clippy::too_many_arguments)]
fn decide(
    inner: &mut Inner,
    st: &EmulatorState,
    d: &Directives,
    method: &Method,
    path: &str,
    template: Option<&str>,
    is_api: bool,
    token: Option<&str>,
    now: Instant,
    rate: &mut RateHeaders,
    slow: &mut Duration,
    applied_504: &mut bool,
    req: &mut Request,
) -> Decision {
    let limit = st.shared.rate_limit_per_minute;
    if is_api {
        let Some(tok) = token else {
            return Decision::Reject(ApiError::unauthorized());
        };
        if d.revoke_token
            && let Some(t) = inner.tokens.get_mut(tok)
        {
            t.revoked = true;
            inner.count_fault("token_revoked");
        }
        if !inner.token_valid(tok, now) {
            return Decision::Reject(ApiError::unauthorized());
        }
        inner.note_token_request(tok, now);
        let (admitted, count, reset) =
            inner.rate_check(tok, limit, st.shared.rate_limit_scope, now);
        rate.count = count;
        rate.reset = reset;
        if !admitted {
            inner.stats.rate_limited += 1;
            return Decision::Reject(ApiError::too_many_requests(reset));
        }
    }

    // Header directives first: they are explicit.
    if let Some(secs) = d.too_many {
        inner.count_fault(FaultKind::RateLimitBurst.as_str());
        return Decision::Reject(ApiError::too_many_requests(secs));
    }
    if let Some((status, retry_after)) = d.server_error {
        inner.count_fault(FaultKind::ServerError.as_str());
        return Decision::Reject(ApiError::server_error(status, retry_after));
    }
    if d.gateway_timeout {
        inner.count_fault(FaultKind::Timeout.as_str());
        return Decision::Reject(ApiError::gateway_timeout());
    }
    if let Some(ms) = d.timeout {
        inner.count_fault(FaultKind::Timeout.as_str());
        return Decision::TimeoutThen504(Duration::from_millis(ms));
    }
    if let Some(ms) = d.slow {
        inner.count_fault(FaultKind::Slow.as_str());
        *slow += Duration::from_millis(ms);
    }
    *applied_504 = d.applied_504;

    // An ongoing injected 429 burst for this token.
    if let Some(tok) = token
        && let Some(t) = inner.tokens.get_mut(tok)
        && t.burst_left > 0
    {
        t.burst_left -= 1;
        let ra = t.burst_retry_after.max(1);
        inner.count_fault(FaultKind::RateLimitBurst.as_str());
        return Decision::Reject(ApiError::too_many_requests(ra));
    }

    let mut ctx = ReqCtx {
        seed: inner.effective_seed,
        forced_record_failures: d.record_failures.clone(),
        forced_merge_conflict: d.merge_conflict,
        record_rules: Vec::new(),
        merge_rules: Vec::new(),
    };
    let rules = inner.faults.rules.clone();
    let mut terminal: Option<Decision> = None;
    for (i, rule) in rules.iter().enumerate() {
        if !rule.methods.is_empty() && !rule.methods.iter().any(|m| m == method.as_str()) {
            continue;
        }
        let path_ok = if rule.paths.is_empty() {
            is_api
        } else {
            rule.paths
                .iter()
                .any(|p| path_matches(p, path) || template.is_some_and(|t| path_matches(p, t)))
        };
        if !path_ok {
            continue;
        }
        match rule.kind {
            FaultKind::RecordFailure => {
                ctx.record_rules.push((
                    i,
                    rule.probability,
                    rule.statuses.clone().unwrap_or_else(|| vec![400]),
                ));
                continue;
            }
            FaultKind::MergeConflict => {
                ctx.merge_rules.push((i, rule.probability));
                continue;
            }
            _ => {}
        }
        if terminal.is_some() || *applied_504 {
            continue;
        }
        let fires = inner.fault_rng.random::<f64>() < rule.probability;
        if !fires {
            continue;
        }
        match rule.kind {
            FaultKind::RateLimitBurst => {
                inner.count_fault(FaultKind::RateLimitBurst.as_str());
                let burst = rule.burst.unwrap_or(1).max(1);
                let retry_after = rule.retry_after_secs.unwrap_or(1).max(1);
                if let Some(tok) = token
                    && let Some(t) = inner.tokens.get_mut(tok)
                {
                    t.burst_left = burst - 1;
                    t.burst_retry_after = retry_after;
                }
                terminal = Some(Decision::Reject(ApiError::too_many_requests(retry_after)));
            }
            FaultKind::ServerError => {
                inner.count_fault(FaultKind::ServerError.as_str());
                let statuses = rule.statuses.clone().unwrap_or_else(|| vec![500, 502, 503]);
                let pick = inner.fault_rng.random_range(0..statuses.len().max(1));
                let status = statuses.get(pick).copied().unwrap_or(500);
                let ra = if status == 503 {
                    rule.retry_after_secs
                } else {
                    None
                };
                terminal = Some(Decision::Reject(ApiError::server_error(status, ra)));
            }
            FaultKind::Timeout => {
                inner.count_fault(FaultKind::Timeout.as_str());
                terminal = Some(Decision::TimeoutThen504(Duration::from_millis(
                    rule.delay_ms.unwrap_or(30_000),
                )));
            }
            FaultKind::GatewayTimeoutApplied => *applied_504 = true,
            FaultKind::Slow => {
                inner.count_fault(FaultKind::Slow.as_str());
                *slow += Duration::from_millis(rule.delay_ms.unwrap_or(1000));
            }
            FaultKind::RecordFailure | FaultKind::MergeConflict => {}
        }
    }
    req.extensions_mut().insert(ctx);
    terminal.unwrap_or(Decision::Proceed)
}

/// 404 for unknown paths, as an `ErrorBody`.
pub(crate) async fn not_found_fallback(req: Request) -> Response {
    ApiError::not_found(req.uri().path()).into_response()
}

/// 405 for a known path with another method, as an `ErrorBody`.
pub(crate) async fn method_not_allowed_fallback(req: Request) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method.not.allowed",
        format!(
            "Method {} is not allowed on {}",
            req.method(),
            req.uri().path()
        ),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(FAULT_HEADER, HeaderValue::from_str(v).expect("ascii"));
        h
    }

    #[test]
    fn directives_parse() {
        let d = parse_directives(&headers(
            "504-applied; record-failure=2, record-failure=5; slow=20ms",
        ))
        .expect("ok");
        assert!(d.applied_504);
        assert_eq!(d.record_failures, vec![2, 5]);
        assert_eq!(d.slow, Some(20));
        let d = parse_directives(&headers("503=4")).expect("ok");
        assert_eq!(d.server_error, Some((503, Some(4))));
        let d = parse_directives(&headers("429")).expect("ok");
        assert_eq!(d.too_many, Some(1));
        assert!(parse_directives(&headers("explode")).is_err());
        assert!(parse_directives(&headers("record-failure")).is_err());
        assert!(parse_directives(&headers("slow=abc")).is_err());
    }

    #[test]
    fn params_split_comma_joined_and_repeated_lists() {
        let p = Params(vec![
            ("contactIds".into(), "a,b".into()),
            ("contactIds".into(), "c".into()),
            ("pageSize".into(), "x".into()),
            ("flag".into(), "TRUE".into()),
        ]);
        assert_eq!(p.list("contactIds"), vec!["a", "b", "c"]);
        assert!(p.int("pageSize", 25).is_err());
        assert_eq!(p.int("pageNumber", 1).ok(), Some(1));
        assert_eq!(p.bool("flag").ok(), Some(true));
        assert!(
            Params(vec![("flag".into(), "yes".into())])
                .bool("flag")
                .is_err()
        );
    }

    #[test]
    fn record_failures_are_deterministic_for_4xx() {
        let ctx = ReqCtx {
            seed: 9,
            record_rules: vec![(0, 0.5, vec![400])],
            ..ReqCtx::default()
        };
        let cfg = crate::EmulatorConfig::default();
        let st = EmulatorState::new(&cfg);
        let mut inner = st.lock();
        let first: Vec<bool> = (0..64)
            .map(|i| {
                ctx.record_failure(&mut inner, i, &format!("k{i}"))
                    .is_some()
            })
            .collect();
        let second: Vec<bool> = (0..64)
            .map(|i| {
                ctx.record_failure(&mut inner, 100 + i, &format!("k{i}"))
                    .is_some()
            })
            .collect();
        assert_eq!(
            first, second,
            "same key must give the same answer whatever the index"
        );
        let n = first.iter().filter(|b| **b).count();
        assert!(n > 10 && n < 54, "about half should fail, got {n}");
    }
}
