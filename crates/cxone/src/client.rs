//! [`CxoneClient`]: discovery, then every DFO and Admin call through the shared request loop
//! ([`dedupd_http_client::HttpClient`]).
//!
//! Connecting is the documented sequence (api-notes §2): OIDC discovery of the issuer
//! (`token_endpoint`), the access-key password grant with HTTP Basic client auth, the tenant
//! id (configured, or the `id_token`'s `tenantId` claim, decoded without verification as NICE
//! says routing may), then tenant discovery (`/.well-known/cxone-configuration?tenantId=…`)
//! for `api_endpoint`, `area` and `domain`. The DFO base is *built* as NICE's SDK builds it,
//! `https://api-de-{area}.{domain}` (FedRAMP area `na2`: `nicecxone-gov.com`), unless
//! configured.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use dedupd_http_client::{
    Call, HttpClient, HttpConfig, RateBudget, RetryAction, StatsSnapshot, TokenGrant, Unreachable,
    classify_status, classify_transport, redact_url,
};
use reqwest::{Method, Url};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::{CxoneConfig, parse_url};
use crate::error::{CxoneErrorBody, Error};

/// Lifetime assumed when a token answer has no `expires_in`: NICE says "use `expires_in`, do
/// not hard-code it"; without one, the least forgiving guess is a short one.
const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(300);

/// What discovery found out about the tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    /// The tenant id.
    pub tenant_id: String,
    /// Its area (`na1`, `eu1`, …).
    pub area: String,
    /// Its cluster, when discovery said.
    pub cluster: Option<String>,
    /// Its domain (`niceincontact.com`, …).
    pub domain: String,
    /// The Admin/ACD API host.
    pub api_endpoint: Url,
    /// The DFO host (without `/dfo/3.0`).
    pub dfo_base: Url,
}

#[derive(Deserialize)]
struct OidcDiscovery {
    token_endpoint: String,
}

#[derive(Deserialize)]
struct TenantDiscovery {
    #[serde(default)]
    api_endpoint: Option<String>,
    #[serde(default)]
    area: Option<String>,
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    domain: Option<String>,
}

#[derive(Deserialize)]
struct IdTokenClaims {
    #[serde(default, rename = "tenantId")]
    tenant_id: Option<String>,
}

/// A NICE CXone client. Cheap to clone: clones share the token cache, the rate budget, the
/// stats and the reachability circuit.
#[derive(Clone)]
pub struct CxoneClient {
    http: HttpClient<CxoneErrorBody>,
    tenant: Tenant,
    dfo: Url,
    admin: Url,
    /// Customer custom-field idents this client has defined (a definition is an idempotent
    /// upsert; once per client is enough).
    defined: Arc<tokio::sync::Mutex<BTreeSet<String>>>,
}

impl fmt::Debug for CxoneClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CxoneClient")
            .field("tenant", &self.tenant)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl CxoneClient {
    /// Discovers the issuer and the tenant, gets a first token, and builds the client. When
    /// `config.redis` is set, connects to Redis now and shares the rate budget through it.
    pub async fn connect(config: CxoneConfig) -> Result<Self, Error> {
        config.validate()?;
        let budget = RateBudget::configured(config.redis.as_ref(), config.requests_per_minute)
            .await
            .map_err(Error::Budget)?;
        Self::connect_with_budget(config, budget).await
    }

    /// [`CxoneClient::connect`] drawing from an existing budget.
    pub async fn connect_with_budget(
        config: CxoneConfig,
        budget: RateBudget,
    ) -> Result<Self, Error> {
        config.validate()?;
        let plain = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .user_agent(user_agent())
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        let oidc: OidcDiscovery = discover(
            &plain,
            &config,
            join(&config.issuer, ".well-known/openid-configuration")?,
        )
        .await?;
        let token_url = parse_url("token_endpoint", &oidc.token_endpoint)?;
        // `parse_url` adds a trailing '/' to a base; the token endpoint is not a base.
        let token_url = Url::parse(token_url.as_str().trim_end_matches('/'))
            .map_err(|e| Error::Config(format!("token_endpoint: {e}")))?;
        let grant = TokenGrant::password(
            token_url,
            config.client_id.clone(),
            config.client_secret.clone(),
            config.access_key_id.clone(),
            config.access_key_secret.clone(),
            DEFAULT_EXPIRES_IN,
        );
        let http_config = HttpConfig {
            retry: config.retry.clone(),
            request_timeout: config.request_timeout,
            give_up_after: config.give_up_after,
            user_agent: user_agent(),
            display_url: redact_url(config.issuer.as_str()),
        };
        let http = HttpClient::new(http_config, grant, budget)?;
        http.authenticate().await?;
        let tenant_id = match &config.tenant_id {
            Some(t) => t.clone(),
            None => {
                let id_token = http.id_token().await.ok_or_else(|| {
                    Error::Config(
                        "no tenant id configured and the token answer has no id_token".into(),
                    )
                })?;
                tenant_from_id_token(id_token.expose_secret())?
            }
        };
        let mut url = join(&config.issuer, ".well-known/cxone-configuration")?;
        url.query_pairs_mut().append_pair("tenantId", &tenant_id);
        let found: TenantDiscovery = discover(&plain, &config, url).await?;
        let area = found.area.unwrap_or_default();
        let domain = found.domain.unwrap_or_default();
        let api_endpoint = match (&config.api_endpoint, &found.api_endpoint) {
            (Some(u), _) => u.clone(),
            (None, Some(u)) => parse_url("discovered api_endpoint", u)?,
            (None, None) => {
                return Err(Error::Config(
                    "tenant discovery returned no api_endpoint".into(),
                ));
            }
        };
        let dfo_base = match &config.dfo_base {
            Some(u) => u.clone(),
            None => dfo_base_for(&area, &domain)?,
        };
        let dfo = join(&dfo_base, "dfo/3.0")?;
        let admin = join(
            &api_endpoint,
            &format!("inContactAPI/services/{}", config.admin_version),
        )?;
        tracing::info!(
            tenant_id = %tenant_id,
            area = %area,
            dfo = %dfo,
            admin = %admin,
            "Connected to NICE CXone."
        );
        Ok(Self {
            http,
            tenant: Tenant {
                tenant_id,
                area,
                cluster: found.cluster,
                domain,
                api_endpoint,
                dfo_base,
            },
            dfo,
            admin,
            defined: Arc::default(),
        })
    }

    /// Makes sure a `text` customer custom field exists for each ident (CXone refuses values
    /// of undefined fields).
    pub async fn ensure_custom_fields(&self, idents: &[&str]) -> Result<(), Error> {
        let mut defined = self.defined.lock().await;
        for ident in idents {
            if defined.contains(*ident) {
                continue;
            }
            self.dfo()
                .define_custom_field(&crate::CustomFieldDefinition {
                    ident: (*ident).to_owned(),
                    label: (*ident).to_owned(),
                    kind: "text",
                })
                .await?;
            defined.insert((*ident).to_owned());
        }
        Ok(())
    }

    /// What discovery found.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// Counters so far: API calls, retries, 429s, budget wait, tokens, …
    pub fn stats(&self) -> StatsSnapshot {
        self.http.stats()
    }

    /// The rate budget this client draws from.
    pub fn budget(&self) -> &RateBudget {
        self.http.budget()
    }

    /// Why the client gave up on the platform, once it has.
    pub fn unreachable(&self) -> Option<Unreachable> {
        self.http.unreachable()
    }

    /// Typed DFO endpoints.
    pub fn dfo(&self) -> crate::DfoApi<'_> {
        crate::DfoApi { client: self }
    }

    /// Typed Admin endpoints (calling lists, DNC groups).
    pub fn admin(&self) -> crate::AdminApi<'_> {
        crate::AdminApi { client: self }
    }

    pub(crate) async fn dfo_json<T: DeserializeOwned>(&self, call: Call) -> Result<T, Error> {
        self.http.json(&self.dfo, call).await
    }

    pub(crate) async fn dfo_unit(&self, call: Call) -> Result<(), Error> {
        self.http.unit(&self.dfo, call).await
    }

    pub(crate) async fn admin_json<T: DeserializeOwned>(&self, call: Call) -> Result<T, Error> {
        self.http.json(&self.admin, call).await
    }

    pub(crate) async fn admin_unit(&self, call: Call) -> Result<(), Error> {
        self.http.unit(&self.admin, call).await
    }
}

fn user_agent() -> String {
    concat!("dedupd-cxone/", env!("CARGO_PKG_VERSION")).to_owned()
}

fn join(base: &Url, rest: &str) -> Result<Url, Error> {
    let mut url = base.clone();
    let path = format!("{}/{rest}", base.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url)
}

/// `https://api-de-{area}.{domain}`, as NICE's SDK builds it (FedRAMP `na2`:
/// `nicecxone-gov.com`).
pub fn dfo_base_for(area: &str, domain: &str) -> Result<Url, Error> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    let domain = if area == "na2" {
        "nicecxone-gov.com"
    } else {
        domain
    };
    if !ok(area) || !ok(domain) {
        return Err(Error::Config(format!(
            "cannot build the DFO host from area `{area}` and domain `{domain}`"
        )));
    }
    parse_url("DFO base", &format!("https://api-de-{area}.{domain}"))
}

/// The `tenantId` claim of an `id_token` (a JWT), read without verifying it: NICE documents
/// it for routing only.
pub fn tenant_from_id_token(id_token: &str) -> Result<String, Error> {
    let bad = || Error::Config("the id_token carries no readable tenantId claim".into());
    let payload = id_token.split('.').nth(1).ok_or_else(bad)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| bad())?;
    let claims: IdTokenClaims = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    claims
        .tenant_id
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(bad)
}

/// GETs an unauthenticated discovery document, retrying what may pass within the policy.
async fn discover<T: DeserializeOwned>(
    http: &reqwest::Client,
    config: &CxoneConfig,
    url: Url,
) -> Result<T, Error> {
    let started = Instant::now();
    let path = url.path().to_owned();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let (action, error) = match http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
        {
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                let body = response
                    .bytes()
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                if status.is_success() {
                    return serde_json::from_slice(&body).map_err(|source| Error::Decode {
                        method: Method::GET,
                        path,
                        status,
                        source,
                    });
                }
                let parsed: CxoneErrorBody = serde_json::from_slice(&body).unwrap_or_default();
                (
                    classify_status(status, &headers, true),
                    Error::Api(Box::new(crate::error::ApiError {
                        method: Method::GET,
                        path: path.clone(),
                        status,
                        body: parsed,
                        retry_after: dedupd_http_client::parse_retry_after(&headers),
                        attempts,
                    })),
                )
            }
            Err(source) => {
                let action = classify_transport(&source, true);
                let transient = matches!(action, RetryAction::Retry { .. });
                (
                    action,
                    Error::Transport {
                        method: Method::GET,
                        path: path.clone(),
                        attempts,
                        transient,
                        source,
                    },
                )
            }
        };
        let RetryAction::Retry { retry_after, .. } = action else {
            return Err(error);
        };
        let delay = config.retry.delay_for(attempts, retry_after);
        if !config.retry.allows(attempts, started.elapsed(), delay) {
            return Err(error);
        }
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dfo_host_is_built_as_nice_s_sdk_builds_it() {
        assert_eq!(
            dfo_base_for("na1", "niceincontact.com").unwrap().as_str(),
            "https://api-de-na1.niceincontact.com/"
        );
        assert_eq!(
            dfo_base_for("na2", "whatever.com").unwrap().as_str(),
            "https://api-de-na2.nicecxone-gov.com/"
        );
        assert!(dfo_base_for("", "x.com").is_err());
        assert!(dfo_base_for("na1", "evil.com/path").is_err());
    }

    #[test]
    fn the_tenant_comes_from_the_id_token_claim() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"iss":"x","tenantId":"11eb-1","area":"na1"}"#);
        assert_eq!(
            tenant_from_id_token(&format!("h.{payload}.s")).unwrap(),
            "11eb-1"
        );
        assert!(tenant_from_id_token("nonsense").is_err());
        assert!(tenant_from_id_token("a.!!!.c").is_err());
        let empty = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"iss":"x"}"#);
        assert!(tenant_from_id_token(&format!("h.{empty}.s")).is_err());
    }
}
