//! Where the CXone client talks to and how it behaves: [`CxoneConfig`].
//!
//! Secrets are [`SecretString`]s and `Debug` prints them as `[REDACTED]`, so a config can be
//! logged whole. Nothing here is read from anywhere but the environment (or a lookup standing
//! in for it).

use std::time::Duration;

pub use dedupd_http_client::RedisBudget;
use dedupd_http_client::{RetryPolicy, redact_url};
use reqwest::Url;
use secrecy::SecretString;

use crate::error::Error;

/// OAuth client id of the registered back-end application (required).
pub const ENV_CLIENT_ID: &str = "CXONE_CLIENT_ID";
/// OAuth client secret of the application (required).
pub const ENV_CLIENT_SECRET: &str = "CXONE_CLIENT_SECRET";
/// Access key id of the API user (required; the password grant's `username`).
pub const ENV_ACCESS_KEY_ID: &str = "CXONE_ACCESS_KEY_ID";
/// Access key secret of the API user (required; the password grant's `password`).
pub const ENV_ACCESS_KEY_SECRET: &str = "CXONE_ACCESS_KEY_SECRET";
/// The tenant id (optional: read from the `id_token`'s `tenantId` claim when unset).
pub const ENV_TENANT_ID: &str = "CXONE_TENANT_ID";
/// The OIDC issuer (optional; default [`DEFAULT_ISSUER`]; the FedRAMP issuer is
/// `https://cxone-gov.niceincontact.com`; a stand-in's base URL for the emulator).
pub const ENV_ISSUER: &str = "CXONE_ISSUER";
/// Overrides the `api_endpoint` tenant discovery returns (a stand-in's base URL).
pub const ENV_API_ENDPOINT: &str = "CXONE_API_ENDPOINT";
/// Overrides the DFO base `https://api-de-{area}.{domain}` (a stand-in's base URL; `/dfo/3.0`
/// is appended).
pub const ENV_DFO_BASE: &str = "CXONE_DFO_BASE";
/// Optional: the tenant's request budget per minute (NICE publishes none; default
/// [`CxoneConfig::DEFAULT_REQUESTS_PER_MINUTE`]).
pub const ENV_REQUESTS_PER_MINUTE: &str = "CXONE_REQUESTS_PER_MINUTE";

/// NICE's global issuer (api-notes §2).
pub const DEFAULT_ISSUER: &str = "https://cxone.niceincontact.com";
/// The Admin API version of the calling-list and DNC family (lists-notes §4: the
/// best-evidenced one).
pub const DEFAULT_ADMIN_VERSION: &str = "v30.0";

/// A rate budget shared across processes through Redis.
/// Everything [`CxoneClient::connect`](crate::CxoneClient::connect) needs.
#[derive(Clone, Debug)]
pub struct CxoneConfig {
    /// The OIDC issuer: discovery, token endpoint, tenant discovery.
    pub issuer: Url,
    /// OAuth client id of the application (HTTP Basic on the token endpoint).
    pub client_id: String,
    /// OAuth client secret. `Debug` prints `[REDACTED]`.
    pub client_secret: SecretString,
    /// Access key id of the API user.
    pub access_key_id: String,
    /// Access key secret. `Debug` prints `[REDACTED]`.
    pub access_key_secret: SecretString,
    /// The tenant; `None`: read from the `id_token`.
    pub tenant_id: Option<String>,
    /// Replaces the discovered `api_endpoint` (Admin API host).
    pub api_endpoint: Option<Url>,
    /// Replaces the DFO base built from discovery (`https://api-de-{area}.{domain}`).
    pub dfo_base: Option<Url>,
    /// Version segment of the Admin lists and DNC paths.
    pub admin_version: String,
    /// The tenant's request budget per minute.
    pub requests_per_minute: u32,
    /// Share the budget with other processes through Redis.
    pub redis: Option<RedisBudget>,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Timeout of one HTTP attempt.
    pub request_timeout: Duration,
    /// Give up on the platform after this long without any answer (`None`: never).
    pub give_up_after: Option<Duration>,
}

impl CxoneConfig {
    /// NICE publishes no request rate for DFO or the Admin API (api-notes §6): a conservative
    /// default, to be set per tenant.
    pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 300;
    /// Default [`CxoneConfig::request_timeout`].
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

    /// A config with defaults for everything but the issuer and the credentials.
    pub fn new(
        issuer: Url,
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
        access_key_id: impl Into<String>,
        access_key_secret: impl Into<SecretString>,
    ) -> Self {
        Self {
            issuer,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            access_key_id: access_key_id.into(),
            access_key_secret: access_key_secret.into(),
            tenant_id: None,
            api_endpoint: None,
            dfo_base: None,
            admin_version: DEFAULT_ADMIN_VERSION.to_owned(),
            requests_per_minute: Self::DEFAULT_REQUESTS_PER_MINUTE,
            redis: None,
            retry: RetryPolicy::default(),
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            give_up_after: None,
        }
    }

    /// A config for a stand-in serving everything on one base URL (the emulator): issuer,
    /// API endpoint and DFO base are all `base`.
    pub fn stand_in(
        base: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
        access_key_id: impl Into<String>,
        access_key_secret: impl Into<SecretString>,
    ) -> Result<Self, Error> {
        let url = parse_url("stand-in base URL", base)?;
        let mut config = Self::new(
            url.clone(),
            client_id,
            client_secret,
            access_key_id,
            access_key_secret,
        );
        config.api_endpoint = Some(url.clone());
        config.dfo_base = Some(url);
        Ok(config)
    }

    /// Reads the config from the process environment (see the `ENV_*` constants).
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`CxoneConfig::from_env`] with a custom variable lookup.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        // Every missing variable is named at once, so one attempt finds them all.
        let required = [
            ENV_CLIENT_ID,
            ENV_CLIENT_SECRET,
            ENV_ACCESS_KEY_ID,
            ENV_ACCESS_KEY_SECRET,
        ];
        let missing: Vec<&str> = required
            .into_iter()
            .filter(|name| get(name).is_none())
            .collect();
        match missing.as_slice() {
            [] => {}
            [one] => return Err(Error::Config(format!("{one} is not set"))),
            several => {
                return Err(Error::Config(format!("{} are not set", several.join(", "))));
            }
        }
        let need = |name: &str| get(name).unwrap_or_default();
        let client_id = need(ENV_CLIENT_ID);
        let client_secret = need(ENV_CLIENT_SECRET);
        let key_id = need(ENV_ACCESS_KEY_ID);
        let key_secret = need(ENV_ACCESS_KEY_SECRET);
        let issuer = match get(ENV_ISSUER) {
            Some(v) => parse_url(ENV_ISSUER, &v)?,
            None => parse_url("default issuer", DEFAULT_ISSUER)?,
        };
        let mut config = Self::new(
            issuer,
            client_id.trim(),
            SecretString::from(client_secret),
            key_id.trim(),
            SecretString::from(key_secret),
        );
        config.tenant_id = get(ENV_TENANT_ID).map(|t| t.trim().to_owned());
        config.api_endpoint = get(ENV_API_ENDPOINT)
            .map(|v| parse_url(ENV_API_ENDPOINT, &v))
            .transpose()?;
        config.dfo_base = get(ENV_DFO_BASE)
            .map(|v| parse_url(ENV_DFO_BASE, &v))
            .transpose()?;
        if let Some(rpm) = get(ENV_REQUESTS_PER_MINUTE) {
            config.requests_per_minute = rpm.trim().parse().map_err(|_| {
                Error::Config(format!(
                    "{ENV_REQUESTS_PER_MINUTE} must be a positive integer, got `{rpm}`"
                ))
            })?;
        }
        Ok(config)
    }

    /// Checks invariants that the types do not carry.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.client_id.trim().is_empty() {
            return Err(Error::Config("client id is empty".into()));
        }
        if self.access_key_id.trim().is_empty() {
            return Err(Error::Config("access key id is empty".into()));
        }
        if self.requests_per_minute == 0 {
            return Err(Error::Config(
                "requests_per_minute must be at least 1".into(),
            ));
        }
        if self.admin_version.is_empty() || self.admin_version.contains('/') {
            return Err(Error::Config("admin_version must be like v30.0".into()));
        }
        if let Some(redis) = &self.redis
            && redis.key.is_empty()
        {
            return Err(Error::Config("redis budget key is empty".into()));
        }
        Ok(())
    }
}

/// An http(s) URL whose path ends in `/`, without query or fragment.
pub(crate) fn parse_url(what: &str, raw: &str) -> Result<Url, Error> {
    let mut url = Url::parse(raw.trim())
        .map_err(|e| Error::Config(format!("{what}: bad URL `{}`: {e}", redact_url(raw))))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Error::Config(format!(
            "{what}: expected an http:// or https:// URL"
        )));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const FULL: &[(&str, &str)] = &[
        (ENV_CLIENT_ID, "app"),
        (ENV_CLIENT_SECRET, "app-secret"),
        (ENV_ACCESS_KEY_ID, "key"),
        (ENV_ACCESS_KEY_SECRET, "key-secret"),
        (ENV_TENANT_ID, "t-1"),
    ];

    #[test]
    fn from_env_reads_documented_variables_with_the_real_issuer_by_default() {
        let c = CxoneConfig::from_lookup(env(FULL)).unwrap();
        assert_eq!(c.issuer.as_str(), "https://cxone.niceincontact.com/");
        assert_eq!(c.client_id, "app");
        assert_eq!(c.client_secret.expose_secret(), "app-secret");
        assert_eq!(c.access_key_secret.expose_secret(), "key-secret");
        assert_eq!(c.tenant_id.as_deref(), Some("t-1"));
        assert_eq!(c.admin_version, "v30.0");
        assert!(c.api_endpoint.is_none() && c.dfo_base.is_none());

        let mut with = FULL.to_vec();
        with.push((ENV_ISSUER, "http://127.0.0.1:9"));
        with.push((ENV_DFO_BASE, "http://127.0.0.1:9"));
        with.push((ENV_REQUESTS_PER_MINUTE, "60"));
        let c = CxoneConfig::from_lookup(env(&with)).unwrap();
        assert_eq!(c.issuer.as_str(), "http://127.0.0.1:9/");
        assert_eq!(c.dfo_base.unwrap().as_str(), "http://127.0.0.1:9/");
        assert_eq!(c.requests_per_minute, 60);
    }

    #[test]
    fn from_env_names_what_is_missing_or_wrong() {
        for missing in [
            ENV_CLIENT_ID,
            ENV_CLIENT_SECRET,
            ENV_ACCESS_KEY_ID,
            ENV_ACCESS_KEY_SECRET,
        ] {
            let pairs: Vec<_> = FULL
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let err = CxoneConfig::from_lookup(env(&pairs))
                .unwrap_err()
                .to_string();
            assert!(err.contains(missing), "{err}");
        }
        let mut bad = FULL.to_vec();
        bad.push((ENV_REQUESTS_PER_MINUTE, "lots"));
        let err = CxoneConfig::from_lookup(env(&bad)).unwrap_err().to_string();
        assert!(err.contains(ENV_REQUESTS_PER_MINUTE), "{err}");
        let mut bad = FULL.to_vec();
        bad.push((ENV_ISSUER, "ftp://x"));
        assert!(CxoneConfig::from_lookup(env(&bad)).is_err());
    }

    #[test]
    fn debug_redacts_secrets() {
        let mut c = CxoneConfig::from_lookup(env(FULL)).unwrap();
        c.redis = Some(RedisBudget {
            url: "redis://:hunter2@localhost:6379".into(),
            key: "k".into(),
        });
        let printed = format!("{c:?}");
        for secret in ["app-secret", "key-secret", "hunter2"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("REDACTED"), "{printed}");
    }
}
