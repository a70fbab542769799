//! The middleware every platform's API runs behind: bearer-token check, rate limit, fault
//! injection (profile rules and the `x-emulator-fault` header), outages, counting. A platform
//! says which paths are its API and how its errors look ([`Platform`]); the decisions, and the
//! order in which the seeded RNG is consulted, are the same for every platform.

use std::sync::MutexGuard;
use std::time::Duration;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngExt;

use super::{Gate, GateConfig, WINDOW};
use crate::config::FaultKind;
use crate::util::{parse_bearer, path_matches, stable_hash, unit_interval};

/// The emulator-only request header for per-request faults, e.g. `x-emulator-fault: 504-applied`.
pub const FAULT_HEADER: &str = "x-emulator-fault";

tokio::task_local! {
    /// The correlation id of the request being served (Genesys `ININ-Correlation-Id` and
    /// `contextId`, CXone `uid`).
    pub(crate) static CORRELATION_ID: String;
}

static CORRELATION_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A fresh correlation id (GUID-shaped; unique within the process).
pub(crate) fn new_correlation_id() -> String {
    let n = CORRELATION_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let a = stable_hash(&[&n.to_le_bytes(), &nanos.to_le_bytes()]);
    let b = stable_hash(&[&a.to_le_bytes()]);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48 & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// The correlation id of the current request, or a fresh one outside a request.
pub(crate) fn current_correlation_id() -> String {
    CORRELATION_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| new_correlation_id())
}

/// An answer the gate (or a shared admin route) gives instead of the handler's; each platform
/// renders it in its own error shape.
#[derive(Debug, Clone)]
pub(crate) enum GateError {
    /// Missing, unknown, expired or revoked bearer token.
    Unauthorized,
    /// 429; `None` = no `Retry-After` header.
    TooManyRequests { retry_after: Option<u64> },
    /// 500, 502 or 503 (an outage is a 503).
    ServerError {
        status: u16,
        retry_after: Option<u64>,
    },
    /// 504: the gateway gave up (whether the work was done depends on the fault).
    GatewayTimeout,
    /// Malformed request (e.g. the fault header, an admin body).
    BadRequest(String),
    /// A well-formed but invalid value (e.g. a fault profile).
    InvalidValue(String),
    /// No such route or resource (the text names it).
    NotFound(String),
    /// Known path, other method.
    MethodNotAllowed { method: String, path: String },
}

/// The rate-limit figures of a request, for platforms that report them in headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateInfo {
    pub(crate) allowed: u64,
    pub(crate) count: u64,
    pub(crate) reset: u64,
}

/// What a platform tells the shared gate.
pub(crate) trait Platform: Clone + Send + Sync + 'static {
    /// The locked state: the platform's data and its [`Gate`].
    type Inner: Send;
    fn gate_config(&self) -> &GateConfig;
    fn lock(&self) -> MutexGuard<'_, Self::Inner>;
    fn gate(inner: &mut Self::Inner) -> &mut Gate;
    /// Paths that need a bearer token, count against the budget, are held back by an outage
    /// countdown and are the default target of fault rules (the token endpoint is not).
    fn is_api(path: &str) -> bool;
    /// `e` in the platform's error shape for a request to `path`.
    fn error(path: &str, e: GateError) -> Response;
    /// Headers the platform puts on every answer of the gated routes.
    fn decorate(resp: &mut Response, path: &str, rate: &RateInfo, correlation_id: &str);
    /// Forgets all data, tokens and counters (the fault profile is kept).
    fn reset(&self);
}

/// Per-request fault context handed to handlers (batch and merge faults are decided there).
#[derive(Debug, Clone, Default)]
pub(crate) struct ReqCtx {
    pub(crate) seed: u64,
    /// Indexes of batch records forced to fail by the request header.
    pub(crate) forced_record_failures: Vec<usize>,
    /// Force a conflict on the merge (header `merge-conflict`).
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
    pub(crate) fn record_failure(&self, gate: &mut Gate, index: usize, key: &str) -> Option<u16> {
        if self.forced_record_failures.contains(&index) {
            gate.count_fault(FaultKind::RecordFailure.as_str());
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
                gate.fault_rng.random::<f64>() < *p
            };
            if fires {
                gate.count_fault(FaultKind::RecordFailure.as_str());
                return Some(status);
            }
        }
        None
    }

    /// Whether merge source `id` conflicts under the profile (deterministic per seed and id),
    /// or the header forces it (then `first` decides: the first source conflicts).
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
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ReqCtx>()
            .cloned()
            .unwrap_or_default())
    }
}

/// Faults asked for by the request header.
#[derive(Debug, Default, Clone)]
pub(crate) struct Directives {
    /// `Some(None)`: a 429 without `Retry-After` (`429=0`).
    pub(crate) too_many: Option<Option<u64>>,
    pub(crate) server_error: Option<(u16, Option<u64>)>,
    pub(crate) gateway_timeout: bool,
    pub(crate) applied_504: bool,
    pub(crate) slow: Option<u64>,
    pub(crate) timeout: Option<u64>,
    pub(crate) record_failures: Vec<usize>,
    pub(crate) merge_conflict: bool,
    pub(crate) revoke_token: bool,
}

pub(crate) fn parse_directives(headers: &HeaderMap) -> Result<Directives, String> {
    let mut d = Directives::default();
    for raw in headers.get_all(FAULT_HEADER) {
        let text = raw
            .to_str()
            .map_err(|_| format!("{FAULT_HEADER} must be ASCII"))?;
        for item in text
            .split([';', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (name, arg) = match item.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim())),
                None => (item, None),
            };
            let num = |what: &str| -> Result<Option<u64>, String> {
                arg.map(|a| {
                    a.trim_end_matches("ms")
                        .parse::<u64>()
                        .map_err(|_| format!("{FAULT_HEADER}: {what} needs a number, got {a:?}"))
                })
                .transpose()
            };
            match name {
                "429" | "rate-limit" => {
                    d.too_many = Some(match num("429")? {
                        Some(0) => None,
                        Some(s) => Some(s),
                        None => Some(1),
                    });
                }
                "500" | "502" | "503" => {
                    let status = name.parse().unwrap_or(500);
                    d.server_error = Some((status, num(name)?.filter(|s| *s > 0)));
                }
                "504" => d.gateway_timeout = true,
                "504-applied" => d.applied_504 = true,
                "slow" => d.slow = Some(num("slow")?.unwrap_or(1000)),
                "timeout" => d.timeout = Some(num("timeout")?.unwrap_or(30_000)),
                "record-failure" => {
                    let idx = num("record-failure")?.ok_or_else(|| {
                        format!(
                            "{FAULT_HEADER}: record-failure needs an index, e.g. record-failure=0"
                        )
                    })?;
                    d.record_failures
                        .push(usize::try_from(idx).unwrap_or(usize::MAX));
                }
                "merge-conflict" => d.merge_conflict = true,
                "revoke-token" => d.revoke_token = true,
                other => {
                    return Err(format!(
                        "{FAULT_HEADER}: unknown fault {other:?}; known: 429[=secs, 0 = no Retry-After], 500, 502, 503[=retry-after], 504, 504-applied, slow=ms, timeout=ms, record-failure=index, merge-conflict, revoke-token"
                    ));
                }
            }
        }
    }
    Ok(d)
}

/// What the middleware decided before running the handler.
enum Decision {
    Proceed,
    Reject(GateError),
    TimeoutThen504(Duration),
}

/// The gate, for the routes of platform `P` (its token endpoint and its API).
pub(crate) async fn gate_middleware<P: Platform>(
    State(st): State<P>,
    req: Request,
    next: Next,
) -> Response {
    let cid = new_correlation_id();
    CORRELATION_ID
        .scope(
            cid.clone(),
            async move { serve::<P>(st, req, next, cid).await },
        )
        .await
}

/// What `decide` hands back beside the decision.
struct Plan {
    rate: RateInfo,
    slow: Duration,
    applied_504: bool,
}

async fn serve<P: Platform>(st: P, mut req: Request, next: Next, cid: String) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let route_key = format!("{method} {}", template.as_deref().unwrap_or("(unmatched)"));
    let is_api = P::is_api(&path);
    let cfg = st.gate_config().clone();
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_bearer)
        .map(str::to_owned);

    let mut plan = Plan {
        rate: RateInfo {
            allowed: u64::from(cfg.rate_limit_per_minute),
            count: 0,
            reset: WINDOW.as_secs(),
        },
        slow: Duration::ZERO,
        applied_504: false,
    };

    let directives = parse_directives(req.headers());
    let decision = {
        let mut locked = st.lock();
        let gate = P::gate(&mut locked);
        gate.stats.total_requests += 1;
        *gate.stats.requests_by_route.entry(route_key).or_default() += 1;
        let down = match gate.outage_in {
            Some(0) => true,
            Some(n) => {
                if is_api {
                    gate.outage_in = Some(n - 1);
                }
                false
            }
            None => false,
        };
        if down {
            gate.count_fault("outage");
        }
        match directives {
            _ if down => Decision::Reject(GateError::ServerError {
                status: 503,
                retry_after: None,
            }),
            Err(e) => Decision::Reject(GateError::BadRequest(e)),
            Ok(d) => {
                let target = Target {
                    method: &method,
                    path: &path,
                    template: template.as_deref(),
                    is_api,
                    token: token.as_deref(),
                };
                decide(gate, &cfg, &d, &target, &mut plan, &mut req)
            }
        }
    };

    let mut resp = match decision {
        Decision::Reject(e) => P::error(&path, e),
        Decision::TimeoutThen504(delay) => {
            tokio::time::sleep(delay).await;
            P::error(&path, GateError::GatewayTimeout)
        }
        Decision::Proceed => {
            if !plan.slow.is_zero() {
                tokio::time::sleep(plan.slow).await;
            }
            let resp = next.run(req).await;
            if plan.applied_504 && resp.status().is_success() {
                P::gate(&mut st.lock()).count_fault(FaultKind::GatewayTimeoutApplied.as_str());
                P::error(&path, GateError::GatewayTimeout)
            } else {
                resp
            }
        }
    };

    P::decorate(&mut resp, &path, &plan.rate, &cid);
    let status = resp.status().as_u16();
    {
        let mut locked = st.lock();
        let gate = P::gate(&mut locked);
        *gate.stats.responses_by_status.entry(status).or_default() += 1;
        if status == 429 {
            gate.stats.too_many_requests_sent += 1;
        }
    }
    if status >= 500 {
        tracing::debug!(status, %path, "emulator answered with an error");
    }
    resp
}

/// The request as the fault rules see it.
struct Target<'a> {
    method: &'a Method,
    path: &'a str,
    template: Option<&'a str>,
    is_api: bool,
    token: Option<&'a str>,
}

fn decide(
    gate: &mut Gate,
    cfg: &GateConfig,
    d: &Directives,
    t: &Target<'_>,
    plan: &mut Plan,
    req: &mut Request,
) -> Decision {
    let now = gate.now();
    if t.is_api {
        let Some(tok) = t.token else {
            return Decision::Reject(GateError::Unauthorized);
        };
        if d.revoke_token
            && let Some(info) = gate.tokens.get_mut(tok)
        {
            info.revoked = true;
            gate.count_fault("token_revoked");
        }
        if !gate.token_valid(tok, now) {
            return Decision::Reject(GateError::Unauthorized);
        }
        gate.note_token_request(tok, now);
        let (admitted, count, reset) =
            gate.rate_check(tok, cfg.rate_limit_per_minute, cfg.rate_limit_scope, now);
        plan.rate.count = count;
        plan.rate.reset = reset;
        if !admitted {
            gate.stats.rate_limited += 1;
            return Decision::Reject(GateError::TooManyRequests {
                retry_after: cfg.retry_after_on_budget.then_some(reset),
            });
        }
    }

    // Header directives first: they are explicit.
    if let Some(retry_after) = d.too_many {
        gate.count_fault(FaultKind::RateLimitBurst.as_str());
        return Decision::Reject(GateError::TooManyRequests { retry_after });
    }
    if let Some((status, retry_after)) = d.server_error {
        gate.count_fault(FaultKind::ServerError.as_str());
        return Decision::Reject(GateError::ServerError {
            status,
            retry_after,
        });
    }
    if d.gateway_timeout {
        gate.count_fault(FaultKind::Timeout.as_str());
        return Decision::Reject(GateError::GatewayTimeout);
    }
    if let Some(ms) = d.timeout {
        gate.count_fault(FaultKind::Timeout.as_str());
        return Decision::TimeoutThen504(Duration::from_millis(ms));
    }
    if let Some(ms) = d.slow {
        gate.count_fault(FaultKind::Slow.as_str());
        plan.slow += Duration::from_millis(ms);
    }
    plan.applied_504 = d.applied_504;

    // An ongoing injected 429 burst for this token.
    if let Some(tok) = t.token
        && let Some(info) = gate.tokens.get_mut(tok)
        && info.burst_left > 0
    {
        info.burst_left -= 1;
        let retry_after = info.burst_retry_after;
        gate.count_fault(FaultKind::RateLimitBurst.as_str());
        return Decision::Reject(GateError::TooManyRequests { retry_after });
    }

    let mut ctx = ReqCtx {
        seed: gate.effective_seed,
        forced_record_failures: d.record_failures.clone(),
        forced_merge_conflict: d.merge_conflict,
        record_rules: Vec::new(),
        merge_rules: Vec::new(),
    };
    let rules = gate.faults.rules.clone();
    let mut terminal: Option<Decision> = None;
    for (i, rule) in rules.iter().enumerate() {
        if !rule.methods.is_empty() && !rule.methods.iter().any(|m| m == t.method.as_str()) {
            continue;
        }
        let path_ok = if rule.paths.is_empty() {
            t.is_api
        } else {
            rule.paths.iter().any(|p| {
                path_matches(p, t.path) || t.template.is_some_and(|tm| path_matches(p, tm))
            })
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
        if terminal.is_some() || plan.applied_504 {
            continue;
        }
        let fires = gate.fault_rng.random::<f64>() < rule.probability;
        if !fires {
            continue;
        }
        match rule.kind {
            FaultKind::RateLimitBurst => {
                gate.count_fault(FaultKind::RateLimitBurst.as_str());
                let burst = rule.burst.unwrap_or(1).max(1);
                // 0 = a 429 without Retry-After.
                let retry_after = match rule.retry_after_secs {
                    Some(0) => None,
                    Some(s) => Some(s),
                    None => Some(1),
                };
                if let Some(tok) = t.token
                    && let Some(info) = gate.tokens.get_mut(tok)
                {
                    info.burst_left = burst - 1;
                    info.burst_retry_after = retry_after;
                }
                terminal = Some(Decision::Reject(GateError::TooManyRequests { retry_after }));
            }
            FaultKind::ServerError => {
                gate.count_fault(FaultKind::ServerError.as_str());
                let statuses = rule.statuses.clone().unwrap_or_else(|| vec![500, 502, 503]);
                let pick = gate.fault_rng.random_range(0..statuses.len().max(1));
                let status = statuses.get(pick).copied().unwrap_or(500);
                let retry_after = if status == 503 {
                    rule.retry_after_secs.filter(|s| *s > 0)
                } else {
                    None
                };
                terminal = Some(Decision::Reject(GateError::ServerError {
                    status,
                    retry_after,
                }));
            }
            FaultKind::Timeout => {
                gate.count_fault(FaultKind::Timeout.as_str());
                terminal = Some(Decision::TimeoutThen504(Duration::from_millis(
                    rule.delay_ms.unwrap_or(30_000),
                )));
            }
            FaultKind::GatewayTimeoutApplied => plan.applied_504 = true,
            FaultKind::Slow => {
                gate.count_fault(FaultKind::Slow.as_str());
                plan.slow += Duration::from_millis(rule.delay_ms.unwrap_or(1000));
            }
            FaultKind::RecordFailure | FaultKind::MergeConflict => {}
        }
    }
    req.extensions_mut().insert(ctx);
    terminal.unwrap_or(Decision::Proceed)
}

/// 404 for unknown paths, in platform `P`'s error shape.
pub(crate) async fn not_found_fallback<P: Platform>(req: Request) -> Response {
    let path = req.uri().path().to_owned();
    P::error(&path, GateError::NotFound(path.clone()))
}

/// 405 for a known path with another method, in platform `P`'s error shape.
pub(crate) async fn method_not_allowed_fallback<P: Platform>(req: Request) -> Response {
    let path = req.uri().path().to_owned();
    P::error(
        &path,
        GateError::MethodNotAllowed {
            method: req.method().to_string(),
            path: path.clone(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(FAULT_HEADER, HeaderValue::from_str(v).expect("ascii"));
        h
    }

    #[test]
    fn correlation_ids_are_unique_guids() {
        let a = new_correlation_id();
        let b = new_correlation_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
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
        assert_eq!(d.too_many, Some(Some(1)));
        let d = parse_directives(&headers("429=0")).expect("ok");
        assert_eq!(d.too_many, Some(None), "429=0 is a 429 without Retry-After");
        assert!(parse_directives(&headers("explode")).is_err());
        assert!(parse_directives(&headers("record-failure")).is_err());
        assert!(parse_directives(&headers("slow=abc")).is_err());
    }

    #[test]
    fn record_failures_are_deterministic_for_4xx() {
        let ctx = ReqCtx {
            seed: 9,
            record_rules: vec![(0, 0.5, vec![400])],
            ..ReqCtx::default()
        };
        let mut gate = Gate::new(crate::FaultProfile::default(), 0);
        let first: Vec<bool> = (0..64)
            .map(|i| ctx.record_failure(&mut gate, i, &format!("k{i}")).is_some())
            .collect();
        let second: Vec<bool> = (0..64)
            .map(|i| {
                ctx.record_failure(&mut gate, 100 + i, &format!("k{i}"))
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
