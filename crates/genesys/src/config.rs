//! Where the client talks to and how it behaves: [`Endpoint`], [`ClientConfig`], [`RetryPolicy`],
//! [`RedisBudget`].
//!
//! Configuration is plain data. [`GenesysClient::new`](crate::GenesysClient::new) validates it and
//! turns it into the runtime client. Secrets are [`SecretString`]s and every `Debug` impl here
//! prints them as `[REDACTED]`, so a config can be logged whole.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use reqwest::Url;
use secrecy::SecretString;

use crate::error::Error;
pub(crate) use dedupd_http_client::redact_url;
pub use dedupd_http_client::{RedisBudget, RetryPolicy};

/// Environment variable holding the OAuth client id (required by [`ClientConfig::from_env`]).
pub const ENV_CLIENT_ID: &str = "GENESYS_CLIENT_ID";
/// Environment variable holding the OAuth client secret (required by [`ClientConfig::from_env`]).
pub const ENV_CLIENT_SECRET: &str = "GENESYS_CLIENT_SECRET";
/// Environment variable naming the Genesys Cloud region, e.g. `eu-west-1` (or its domain,
/// `mypurecloud.ie`). Used when [`ENV_BASE_URL`] is unset.
pub const ENV_REGION: &str = "GENESYS_REGION";
/// Environment variable holding a base URL, e.g. the emulator's `http://127.0.0.1:8080`.
/// Takes precedence over [`ENV_REGION`].
pub const ENV_BASE_URL: &str = "GENESYS_BASE_URL";
/// Optional environment variable overriding [`ClientConfig::requests_per_minute`].
pub const ENV_REQUESTS_PER_MINUTE: &str = "GENESYS_REQUESTS_PER_MINUTE";

/// The Genesys Cloud regions and their domains (API host `api.<domain>`, login host
/// `login.<domain>`), from the official SDKs' region tables.
pub const REGIONS: &[(&str, &str)] = &[
    ("us-east-1", "mypurecloud.com"),
    ("us-east-2", "use2.us-gov-pure.cloud"),
    ("us-west-2", "usw2.pure.cloud"),
    ("ca-central-1", "cac1.pure.cloud"),
    ("sa-east-1", "sae1.pure.cloud"),
    ("mx-central-1", "mxc1.pure.cloud"),
    ("eu-west-1", "mypurecloud.ie"),
    ("eu-west-2", "euw2.pure.cloud"),
    ("eu-central-1", "mypurecloud.de"),
    ("eu-central-2", "euc2.pure.cloud"),
    ("me-central-1", "mec1.pure.cloud"),
    ("ap-south-1", "aps1.pure.cloud"),
    ("ap-southeast-1", "apse1.pure.cloud"),
    ("ap-southeast-2", "mypurecloud.com.au"),
    ("ap-northeast-1", "mypurecloud.jp"),
    ("ap-northeast-2", "apne2.pure.cloud"),
    ("ap-northeast-3", "apne3.pure.cloud"),
    ("eusc-de-east-1", "edee1.eusc-pure.cloud"),
];

/// Where the Platform API and the OAuth token endpoint live.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    api: Url,
    login: Url,
}

impl Endpoint {
    /// The endpoint of a Genesys Cloud region, by name (`eu-west-1`) or by domain
    /// (`mypurecloud.ie`); see [`REGIONS`].
    pub fn region(name_or_domain: &str) -> Result<Self, Error> {
        let wanted = name_or_domain.trim().to_ascii_lowercase();
        let (_, domain) = REGIONS
            .iter()
            .find(|(name, domain)| *name == wanted || *domain == wanted)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown Genesys Cloud region `{name_or_domain}`; expected one of: {}",
                    REGIONS
                        .iter()
                        .map(|(name, _)| *name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        let api = Url::parse(&format!("https://api.{domain}/"))
            .map_err(|e| Error::Config(format!("bad region URL: {e}")))?;
        let login = Url::parse(&format!("https://login.{domain}/"))
            .map_err(|e| Error::Config(format!("bad region URL: {e}")))?;
        Ok(Self { api, login })
    }

    /// An endpoint at an arbitrary base URL, such as the emulator's.
    ///
    /// As the official SDKs do, a host starting with `api.` gets its token from the matching
    /// `login.` host; any other host serves `POST /oauth/token` itself.
    pub fn base_url(url: &str) -> Result<Self, Error> {
        let mut api = Url::parse(url.trim())
            .map_err(|e| Error::Config(format!("bad base URL `{url}`: {e}")))?;
        if !matches!(api.scheme(), "http" | "https") || api.cannot_be_a_base() {
            return Err(Error::Config(format!(
                "bad base URL `{url}`: expected an http:// or https:// URL"
            )));
        }
        if !api.path().ends_with('/') {
            let path = format!("{}/", api.path());
            api.set_path(&path);
        }
        api.set_query(None);
        api.set_fragment(None);
        let mut login = api.clone();
        if let Some(rest) = api.host_str().and_then(|h| h.strip_prefix("api.")) {
            login
                .set_host(Some(&format!("login.{rest}")))
                .map_err(|e| Error::Config(format!("bad base URL `{url}`: {e}")))?;
        }
        Ok(Self { api, login })
    }

    /// Base of the Platform API (`https://api.<domain>/`).
    pub fn api_base(&self) -> &Url {
        &self.api
    }

    /// Base of the OAuth service (`https://login.<domain>/`).
    pub fn login_base(&self) -> &Url {
        &self.login
    }

    /// The token endpoint, `<login base>oauth/token`.
    pub fn token_url(&self) -> Url {
        // Joining a relative path onto a base ending in '/' cannot fail.
        self.login
            .join("oauth/token")
            .unwrap_or_else(|_| self.login.clone())
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("api", &self.api.as_str())
            .field("login", &self.login.as_str())
            .finish()
    }
}

impl FromStr for Endpoint {
    type Err = Error;

    /// A URL (`http://…`, `https://…`) or a region name/domain.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains("://") {
            Self::base_url(s)
        } else {
            Self::region(s)
        }
    }
}

/// A rate budget shared across processes through Redis.
/// Everything [`GenesysClient::new`](crate::GenesysClient::new) needs.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Where to send requests.
    pub endpoint: Endpoint,
    /// OAuth client id (client credentials grant).
    pub client_id: String,
    /// OAuth client secret. Never logged; `Debug` prints `[REDACTED]`.
    pub client_secret: SecretString,
    /// The org's API budget in requests per minute (Genesys' default is 300 per
    /// client-credentials token). The client spaces requests evenly at slightly under this rate
    /// (see [`RateBudget`](crate::RateBudget)), so it never causes a 429 by itself.
    pub requests_per_minute: u32,
    /// Share the budget with other processes through Redis. `None`: the budget is shared by
    /// all clones of one client in this process only.
    pub redis: Option<RedisBudget>,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Timeout of one HTTP attempt (connect + send + receive).
    pub request_timeout: Duration,
    /// Give up on the platform when no request (of any clone of the client) has had an answer
    /// for this long while requests kept failing (connect errors, timeouts, 5xx, 429): from then
    /// on every call fails at once with [`Error::Unreachable`]. An answer is a 2xx or a
    /// definitive refusal (4xx). `None` (the default): never give up; each request retries
    /// within [`ClientConfig::retry`] only. Meant for one client per run (`sync`,
    /// `merge apply`), not for a long-lived server.
    pub give_up_after: Option<Duration>,
}

impl ClientConfig {
    /// Default [`ClientConfig::requests_per_minute`]: Genesys' default per-token limit.
    pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 300;
    /// Default [`ClientConfig::request_timeout`].
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
    /// The [`ClientConfig::give_up_after`] of runs (`dedupd sync`, `dedupd merge apply`) unless
    /// told otherwise: two minutes without any answer. A library client never gives up unless
    /// it is set.
    pub const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(120);

    /// A config with defaults for everything but the endpoint and credentials.
    pub fn new(
        endpoint: Endpoint,
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
    ) -> Self {
        Self {
            endpoint,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            requests_per_minute: Self::DEFAULT_REQUESTS_PER_MINUTE,
            redis: None,
            retry: RetryPolicy::default(),
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            give_up_after: None,
        }
    }

    /// Reads the config from the process environment:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `GENESYS_CLIENT_ID` | OAuth client id (required) |
    /// | `GENESYS_CLIENT_SECRET` | OAuth client secret (required) |
    /// | `GENESYS_BASE_URL` | base URL, e.g. the emulator's; wins over the region |
    /// | `GENESYS_REGION` | region name (`eu-west-1`) or domain (`mypurecloud.ie`) |
    /// | `GENESYS_REQUESTS_PER_MINUTE` | optional, default 300 |
    ///
    /// One of `GENESYS_BASE_URL` and `GENESYS_REGION` is required: there is deliberately no
    /// default region, so a misconfigured test can never reach a production org.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`ClientConfig::from_env`] with a custom variable lookup (for tests and for callers that
    /// layer a config file over the environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let client_id = get(ENV_CLIENT_ID)
            .ok_or_else(|| Error::Config(format!("{ENV_CLIENT_ID} is not set")))?;
        let client_secret = get(ENV_CLIENT_SECRET)
            .ok_or_else(|| Error::Config(format!("{ENV_CLIENT_SECRET} is not set")))?;
        let endpoint = match (get(ENV_BASE_URL), get(ENV_REGION)) {
            (Some(url), _) => Endpoint::base_url(&url)?,
            (None, Some(region)) => Endpoint::region(&region)?,
            (None, None) => {
                return Err(Error::Config(format!(
                    "set {ENV_REGION} (e.g. eu-west-1) or {ENV_BASE_URL}"
                )));
            }
        };
        let mut config = Self::new(
            endpoint,
            client_id.trim(),
            SecretString::from(client_secret),
        );
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
        if self.requests_per_minute == 0 {
            return Err(Error::Config(
                "requests_per_minute must be at least 1".into(),
            ));
        }
        if self.retry.max_attempts == 0 {
            return Err(Error::Config(
                "retry.max_attempts must be at least 1".into(),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(Error::Config("request_timeout must be positive".into()));
        }
        if self.give_up_after.is_some_and(|d| d.is_zero()) {
            return Err(Error::Config(
                "give_up_after must be positive (None never gives up)".into(),
            ));
        }
        if let Some(redis) = &self.redis
            && redis.key.is_empty()
        {
            return Err(Error::Config("redis budget key is empty".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    #[test]
    fn every_region_maps_to_api_and_login_hosts() {
        for (name, domain) in REGIONS {
            let ep = Endpoint::region(name).unwrap();
            assert_eq!(ep.api_base().as_str(), format!("https://api.{domain}/"));
            assert_eq!(
                ep.token_url().as_str(),
                format!("https://login.{domain}/oauth/token")
            );
            assert_eq!(Endpoint::region(domain).unwrap(), ep);
        }
        assert_eq!(
            Endpoint::region("eu-central-1")
                .unwrap()
                .api_base()
                .as_str(),
            "https://api.mypurecloud.de/"
        );
        assert!(Endpoint::region("mars-north-1").is_err());
    }

    #[test]
    fn base_url_serves_its_own_token_endpoint_unless_it_is_an_api_host() {
        let emu = Endpoint::base_url("http://127.0.0.1:4567").unwrap();
        assert_eq!(emu.api_base().as_str(), "http://127.0.0.1:4567/");
        assert_eq!(
            emu.token_url().as_str(),
            "http://127.0.0.1:4567/oauth/token"
        );

        let prefixed = Endpoint::base_url("http://localhost:9/genesys").unwrap();
        assert_eq!(prefixed.api_base().as_str(), "http://localhost:9/genesys/");
        assert_eq!(
            prefixed.token_url().as_str(),
            "http://localhost:9/genesys/oauth/token"
        );

        let real = Endpoint::base_url("https://api.mypurecloud.ie").unwrap();
        assert_eq!(
            real.token_url().as_str(),
            "https://login.mypurecloud.ie/oauth/token"
        );
        assert!(Endpoint::base_url("ftp://x").is_err());
        assert!(Endpoint::base_url("not a url").is_err());
        assert_eq!(
            "eu-west-2".parse::<Endpoint>().unwrap(),
            Endpoint::region("eu-west-2").unwrap()
        );
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn from_env_reads_documented_variables() {
        let config = ClientConfig::from_lookup(env(&[
            (ENV_CLIENT_ID, "my-id"),
            (ENV_CLIENT_SECRET, "s3cr3t"),
            (ENV_REGION, "ap-northeast-1"),
            (ENV_REQUESTS_PER_MINUTE, "120"),
        ]))
        .unwrap();
        assert_eq!(config.client_id, "my-id");
        assert_eq!(config.client_secret.expose_secret(), "s3cr3t");
        assert_eq!(
            config.endpoint.api_base().as_str(),
            "https://api.mypurecloud.jp/"
        );
        assert_eq!(config.requests_per_minute, 120);

        let emu = ClientConfig::from_lookup(env(&[
            (ENV_CLIENT_ID, "id"),
            (ENV_CLIENT_SECRET, "s"),
            (ENV_REGION, "eu-west-1"),
            (ENV_BASE_URL, "http://127.0.0.1:1234"),
        ]))
        .unwrap();
        assert_eq!(emu.endpoint.api_base().as_str(), "http://127.0.0.1:1234/");
        assert_eq!(emu.requests_per_minute, 300);
    }

    #[test]
    fn from_env_names_what_is_missing() {
        let err = ClientConfig::from_lookup(env(&[(ENV_CLIENT_ID, "id")])).unwrap_err();
        assert!(err.to_string().contains(ENV_CLIENT_SECRET), "{err}");
        let err =
            ClientConfig::from_lookup(env(&[(ENV_CLIENT_ID, "id"), (ENV_CLIENT_SECRET, "s")]))
                .unwrap_err();
        assert!(err.to_string().contains(ENV_REGION), "{err}");
        let err = ClientConfig::from_lookup(env(&[
            (ENV_CLIENT_ID, "id"),
            (ENV_CLIENT_SECRET, "s"),
            (ENV_REGION, "eu-west-1"),
            (ENV_REQUESTS_PER_MINUTE, "lots"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains(ENV_REQUESTS_PER_MINUTE), "{err}");
    }

    #[test]
    fn debug_redacts_secrets() {
        let mut config = ClientConfig::new(
            Endpoint::region("us-east-1").unwrap(),
            "client-id",
            SecretString::from("very-secret-value"),
        );
        config.redis = Some(RedisBudget {
            url: "redis://:redis-password@localhost:6379/0".into(),
            key: "dedupd:{org}:budget".into(),
        });
        let printed = format!("{config:?}");
        assert!(!printed.contains("very-secret-value"), "{printed}");
        assert!(!printed.contains("redis-password"), "{printed}");
        assert!(printed.contains("REDACTED"), "{printed}");
        assert!(printed.contains("dedupd:{org}:budget"), "{printed}");
    }

    #[test]
    fn validate_rejects_nonsense() {
        let base = ClientConfig::new(Endpoint::region("us-east-1").unwrap(), "id", "s".to_owned());
        assert!(base.validate().is_ok());
        let mut c = base.clone();
        c.requests_per_minute = 0;
        assert!(c.validate().is_err());
        let mut c = base.clone();
        c.retry.max_attempts = 0;
        assert!(c.validate().is_err());
        let mut c = base.clone();
        c.give_up_after = Some(Duration::ZERO);
        assert!(c.validate().is_err());
        let mut c = base;
        c.client_id = " ".into();
        assert!(c.validate().is_err());
    }
}
