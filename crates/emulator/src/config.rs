//! Emulator configuration and the fault profile (TOML file or JSON over the admin API).

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::EmulatorError;

/// How an emulator instance behaves. `Default` gives the platform's defaults: 300 requests per
/// minute per token ([`RateLimitScope::PerToken`]), 24 h tokens, one client `dedupd-demo` /
/// `dedupd-demo-secret`, no faults, seed 0.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Requests allowed in any 60 s sliding window, per token or per client depending on
    /// [`rate_limit_scope`](EmulatorConfig::rate_limit_scope).
    pub rate_limit_per_minute: u32,
    /// What one `rate_limit_per_minute` budget covers: each token (the platform's behaviour,
    /// the default) or all tokens of one OAuth client together.
    pub rate_limit_scope: RateLimitScope,
    /// Lifetime of issued tokens (`expires_in`). A fault profile's `token_ttl_secs` overrides it.
    pub token_ttl: Duration,
    /// `(client_id, client_secret)` pairs accepted by `POST /oauth/token`.
    pub clients: Vec<(String, String)>,
    /// Faults to inject.
    pub faults: FaultProfile,
    /// Seed of the fault and id generators. A fault profile's `seed` overrides it.
    pub seed: u64,
    /// A connection that has not sent a whole request head in this time is closed (10 s).
    pub header_timeout: Duration,
    /// Most connections open at once (1024); past it requests get 503 with `Retry-After`.
    pub max_connections: usize,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            rate_limit_per_minute: 300,
            rate_limit_scope: RateLimitScope::default(),
            token_ttl: Duration::from_secs(86_400),
            clients: vec![("dedupd-demo".to_owned(), "dedupd-demo-secret".to_owned())],
            faults: FaultProfile::default(),
            seed: 0,
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// What one rate-limit budget (`rate_limit_per_minute` admitted requests in any sliding 60 s
/// window) covers. Serialized as `"per_token"` / `"per_client"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitScope {
    /// Each access token has its own window: the real platform's behaviour. Several processes
    /// (or token refreshes) of one client each get the full budget.
    #[default]
    PerToken,
    /// All tokens issued to the same OAuth client id share one window: an org-wide budget,
    /// which the platform does not enforce but dedupd keeps itself (its shared Redis GCRA), so
    /// tests can prove that several processes of one integration stay within one budget.
    PerClient,
}

impl EmulatorConfig {
    /// Reads a TOML fault profile (see [`FaultProfile`]).
    pub fn from_faults_file(path: impl AsRef<Path>) -> Result<FaultProfile, EmulatorError> {
        FaultProfile::from_file(path)
    }
}

/// A set of faults to inject, declared in TOML (`--faults FILE`) or sent as JSON to
/// `PUT /__emulator/faults`. Unknown keys are rejected.
///
/// ```toml
/// seed = 42                     # optional: overrides EmulatorConfig::seed
/// token_ttl_secs = 30           # optional: tokens expire (expires_in) after 30 s
/// revoke_tokens_every_secs = 90 # optional: every 90 s all tokens are revoked early
///
/// [[rules]]
/// kind = "rate_limit_burst"     # 429 with Retry-After, for `burst` consecutive requests of a token
/// probability = 0.10
/// burst = 3
/// retry_after_secs = 1          # 0 = 429s without a Retry-After header
///
/// [[rules]]
/// kind = "server_error"         # 500/502/503 picked uniformly from `statuses`
/// probability = 0.05
/// statuses = [500, 502, 503]
///
/// [[rules]]
/// kind = "gateway_timeout_applied"   # the write is applied, then 504 request.timeout
/// probability = 0.02
/// methods = ["POST", "PUT", "PATCH", "DELETE"]
///
/// [[rules]]
/// kind = "slow"                 # answer after delay_ms
/// probability = 0.05
/// delay_ms = 200
///
/// [[rules]]
/// kind = "timeout"              # wait delay_ms (longer than the client's timeout), then 504, nothing applied
/// probability = 0.01
/// delay_ms = 30000
///
/// [[rules]]
/// kind = "record_failure"       # per record of a batch (deterministic per record for 4xx)
/// probability = 0.01
/// statuses = [400]
/// paths = ["/api/v2/outbound/contactlists/*/contacts", "/api/v2/externalcontacts/bulk/**"]
///
/// [[rules]]
/// kind = "merge_conflict"       # merge sources "have active associations" (deterministic per id)
/// probability = 0.05
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultProfile {
    /// Overrides [`EmulatorConfig::seed`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Overrides [`EmulatorConfig::token_ttl`] for tokens issued from now on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ttl_secs: Option<f64>,
    /// Every N seconds (counted from when the profile was set), every token issued before is
    /// revoked, whatever its `expires_in` said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_tokens_every_secs: Option<f64>,
    /// The rules, checked in order.
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

/// One fault rule. Fields that do not apply to `kind` are rejected by validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// What to inject.
    pub kind: FaultKind,
    /// Chance per request (per record for `record_failure`, per source contact id for
    /// `merge_conflict`), in `[0, 1]`. Default 1.
    #[serde(default = "one")]
    pub probability: f64,
    /// HTTP methods the rule applies to (upper case); empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Path patterns (`*` = one segment, trailing `**` = any rest, `{name}` = one segment),
    /// matched against the request path and the route template. Empty = every `/api/v2` route;
    /// `/oauth/token` is only affected when a pattern names it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// `server_error`: statuses to choose from (500, 502, 503; default all three).
    /// `record_failure`: status of a failing record (400–599; default 400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statuses: Option<Vec<u16>>,
    /// `slow` (default 1000) and `timeout` (default 30000): delay in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// `rate_limit_burst`: number of consecutive 429s for the token (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// `rate_limit_burst` (default 1) and `server_error` with 503: the `Retry-After` value;
    /// 0 = the answer carries no `Retry-After` header (a 429 the client must time itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

fn one() -> f64 {
    1.0
}

impl FaultRule {
    /// A rule of `kind` firing with `probability`, on every method and the API paths, with the
    /// kind's defaults; set the other fields as needed.
    pub fn new(kind: FaultKind, probability: f64) -> FaultRule {
        FaultRule {
            kind,
            probability,
            methods: Vec::new(),
            paths: Vec::new(),
            statuses: None,
            delay_ms: None,
            burst: None,
            retry_after_secs: None,
        }
    }
}

/// Fault kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 429 `too.many.requests.retry.after` with `Retry-After`, possibly several in a row.
    RateLimitBurst,
    /// 500 / 502 / 503 without doing the work.
    ServerError,
    /// A delayed but otherwise normal response.
    Slow,
    /// A long delay followed by 504 `request.timeout`; nothing is applied.
    Timeout,
    /// The request is applied, then answered with 504 `request.timeout`.
    GatewayTimeoutApplied,
    /// Per-record failures inside batch operations.
    RecordFailure,
    /// 409 on merges whose sources "have active associations".
    MergeConflict,
}

impl FaultKind {
    /// The name used in stats and in the TOML file.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::RateLimitBurst => "rate_limit_burst",
            FaultKind::ServerError => "server_error",
            FaultKind::Slow => "slow",
            FaultKind::Timeout => "timeout",
            FaultKind::GatewayTimeoutApplied => "gateway_timeout_applied",
            FaultKind::RecordFailure => "record_failure",
            FaultKind::MergeConflict => "merge_conflict",
        }
    }
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

impl FaultProfile {
    /// Reads and validates a TOML fault profile.
    pub fn from_file(path: impl AsRef<Path>) -> Result<FaultProfile, EmulatorError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| EmulatorError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text).map_err(|e| match e {
            EmulatorError::InvalidFaults(message) => EmulatorError::FaultFile {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates a TOML fault profile.
    pub fn from_toml_str(text: &str) -> Result<FaultProfile, EmulatorError> {
        let profile: FaultProfile =
            toml::from_str(text).map_err(|e| EmulatorError::InvalidFaults(e.to_string()))?;
        profile.validate()?;
        Ok(profile)
    }

    /// Checks ranges and that each rule only carries keys meaningful for its kind. The error
    /// names the offending key, e.g. `rules[1].probability`.
    pub fn validate(&self) -> Result<(), EmulatorError> {
        let bad =
            |key: String, why: String| Err(EmulatorError::InvalidFaults(format!("{key}: {why}")));
        for (key, v) in [
            ("token_ttl_secs", self.token_ttl_secs),
            ("revoke_tokens_every_secs", self.revoke_tokens_every_secs),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0 && v <= 1.0e9)
            {
                return bad(
                    key.to_owned(),
                    format!("must be a positive number of seconds, got {v}"),
                );
            }
        }
        for (i, r) in self.rules.iter().enumerate() {
            let k = |name: &str| format!("rules[{i}].{name}");
            if !(0.0..=1.0).contains(&r.probability) {
                return bad(
                    k("probability"),
                    format!("must be between 0 and 1, got {}", r.probability),
                );
            }
            for m in &r.methods {
                if !METHODS.contains(&m.as_str()) {
                    return bad(
                        k("methods"),
                        format!("unknown method {m:?} (use upper case, e.g. \"POST\")"),
                    );
                }
            }
            for p in &r.paths {
                if !p.starts_with('/') {
                    return bad(k("paths"), format!("pattern {p:?} must start with '/'"));
                }
            }
            let allowed: &[&str] = match r.kind {
                FaultKind::RateLimitBurst => &["burst", "retry_after_secs"],
                FaultKind::ServerError => &["statuses", "retry_after_secs"],
                FaultKind::Slow | FaultKind::Timeout => &["delay_ms"],
                FaultKind::RecordFailure => &["statuses"],
                FaultKind::GatewayTimeoutApplied | FaultKind::MergeConflict => &[],
            };
            let present = [
                ("statuses", r.statuses.is_some()),
                ("delay_ms", r.delay_ms.is_some()),
                ("burst", r.burst.is_some()),
                ("retry_after_secs", r.retry_after_secs.is_some()),
            ];
            for (name, is_set) in present {
                if is_set && !allowed.contains(&name) {
                    return bad(
                        k(name),
                        format!("not allowed for kind {:?}", r.kind.as_str()),
                    );
                }
            }
            if let Some(st) = &r.statuses {
                if st.is_empty() {
                    return bad(k("statuses"), "must not be empty".to_owned());
                }
                for s in st {
                    let ok = match r.kind {
                        FaultKind::ServerError => matches!(s, 500 | 502 | 503),
                        _ => (400..=599).contains(s),
                    };
                    if !ok {
                        return bad(
                            k("statuses"),
                            format!("status {s} not allowed for kind {:?}", r.kind.as_str()),
                        );
                    }
                }
            }
            if r.burst == Some(0) {
                return bad(k("burst"), "must be at least 1".to_owned());
            }
            if let Some(d) = r.delay_ms
                && d > 600_000
            {
                return bad(k("delay_ms"), format!("at most 600000, got {d}"));
            }
            if let Some(s) = r.retry_after_secs
                && s > 3600
            {
                return bad(
                    k("retry_after_secs"),
                    format!("must be 0..=3600 (0 = no Retry-After header), got {s}"),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses() {
        let text = r#"
seed = 42
token_ttl_secs = 30
revoke_tokens_every_secs = 90
[[rules]]
kind = "rate_limit_burst"
probability = 0.10
burst = 3
retry_after_secs = 1
[[rules]]
kind = "server_error"
probability = 0.05
statuses = [500, 502, 503]
[[rules]]
kind = "gateway_timeout_applied"
probability = 0.02
methods = ["POST", "PUT"]
[[rules]]
kind = "record_failure"
probability = 0.01
paths = ["/api/v2/outbound/contactlists/*/contacts"]
"#;
        let p = FaultProfile::from_toml_str(text).expect("valid profile");
        assert_eq!(p.seed, Some(42));
        assert_eq!(p.rules.len(), 4);
        assert_eq!(p.rules[2].kind, FaultKind::GatewayTimeoutApplied);
        assert!((p.rules[3].probability - 0.01).abs() < f64::EPSILON);
    }

    #[test]
    fn shipped_profiles_are_valid() {
        let p = FaultProfile::from_file(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fault-profiles/sync-chaos.toml"
        ))
        .expect("the shipped profile is valid");
        assert_eq!(p.token_ttl_secs, Some(30.0));
        let kinds: Vec<FaultKind> = p.rules.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            vec![
                FaultKind::RateLimitBurst,
                FaultKind::ServerError,
                FaultKind::GatewayTimeoutApplied
            ]
        );
    }

    #[test]
    fn the_cxone_profile_is_valid() {
        let p = FaultProfile::from_file(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fault-profiles/cxone-chaos.toml"
        ))
        .expect("the shipped profile is valid");
        assert_eq!(p.token_ttl_secs, Some(30.0));
        assert_eq!(
            p.rules
                .iter()
                .filter(|r| r.kind == FaultKind::RateLimitBurst)
                .map(|r| r.retry_after_secs)
                .collect::<Vec<_>>(),
            vec![Some(1), Some(0)],
            "429s with and without Retry-After"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = FaultProfile::from_toml_str("[[rules]]\nkind = \"slow\"\nprobabilty = 0.5\n")
            .expect_err("typo must be rejected")
            .to_string();
        assert!(err.contains("probabilty"), "{err}");
        let err = FaultProfile::from_toml_str("sead = 1\n")
            .expect_err("typo")
            .to_string();
        assert!(err.contains("sead"), "{err}");
        let err = FaultProfile::from_toml_str("[[rules]]\nkind = \"explode\"\n")
            .expect_err("unknown kind")
            .to_string();
        assert!(err.contains("explode"), "{err}");
    }

    #[test]
    fn validation_names_the_key() {
        let cases = [
            (
                "[[rules]]\nkind = \"slow\"\nprobability = 1.5\n",
                "rules[0].probability",
            ),
            (
                "[[rules]]\nkind = \"slow\"\nstatuses = [500]\n",
                "rules[0].statuses",
            ),
            (
                "[[rules]]\nkind = \"server_error\"\nstatuses = [418]\n",
                "rules[0].statuses",
            ),
            (
                "[[rules]]\nkind = \"slow\"\nmethods = [\"post\"]\n",
                "rules[0].methods",
            ),
            (
                "[[rules]]\nkind = \"slow\"\npaths = [\"api\"]\n",
                "rules[0].paths",
            ),
            ("token_ttl_secs = -1.0\n", "token_ttl_secs"),
            (
                "[[rules]]\nkind = \"rate_limit_burst\"\nburst = 0\n",
                "rules[0].burst",
            ),
        ];
        for (text, key) in cases {
            let err = FaultProfile::from_toml_str(text)
                .expect_err(text)
                .to_string();
            assert!(err.contains(key), "{text} -> {err}");
        }
    }

    #[test]
    fn from_file_reports_path() {
        let dir = std::env::temp_dir().join(format!("dedupd-emu-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let f = dir.join("faults.toml");
        std::fs::write(&f, "[[rules]]\nkind = \"slow\"\ndelay_ms = 5\n").expect("write");
        let p = EmulatorConfig::from_faults_file(&f).expect("reads");
        assert_eq!(p.rules[0].delay_ms, Some(5));
        std::fs::write(&f, "[[rules]]\nkind = \"slow\"\nprobability = 2.0\n").expect("write");
        let err = FaultProfile::from_file(&f)
            .expect_err("invalid")
            .to_string();
        assert!(
            err.contains("faults.toml") && err.contains("rules[0].probability"),
            "{err}"
        );
        let missing = FaultProfile::from_file(dir.join("nope.toml")).expect_err("missing");
        assert!(missing.to_string().contains("nope.toml"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
