//! [`GenesysClient`]: the Genesys Cloud Platform API over the shared request loop
//! ([`dedupd_http_client::HttpClient`]): client-credentials tokens from the login host, requests
//! to the API host. Typed endpoints only describe the request ([`Call`]).

use std::fmt;

use dedupd_http_client::{HttpClient, HttpConfig, RateBudget, StatsSnapshot, TokenGrant};
use serde::de::DeserializeOwned;

pub(crate) use dedupd_http_client::{Call, path};

use crate::config::{ClientConfig, Endpoint, redact_url};
use crate::error::{Error, ErrorBody, Unreachable};

/// Lifetime assumed when the token response has no `expires_in` (Genesys' default, 24 h).
const DEFAULT_EXPIRES_IN: std::time::Duration = std::time::Duration::from_secs(86_400);

/// A Genesys Cloud Platform API v2 client. Cheap to clone: clones share the token cache, the
/// rate budget, the stats and the reachability circuit
/// ([`ClientConfig::give_up_after`]), so give every worker task a clone.
#[derive(Clone)]
pub struct GenesysClient {
    http: HttpClient<ErrorBody>,
    endpoint: Endpoint,
}

impl fmt::Debug for GenesysClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenesysClient")
            .field("endpoint", &self.endpoint)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl GenesysClient {
    /// Builds a client. When `config.redis` is set, connects to Redis now (so a missing Redis
    /// fails here) and shares the rate budget through it; otherwise the budget is in-process.
    pub async fn new(config: ClientConfig) -> Result<Self, Error> {
        config.validate()?;
        let budget = RateBudget::configured(config.redis.as_ref(), config.requests_per_minute)
            .await
            .map_err(Error::Budget)?;
        Self::with_budget(config, budget)
    }

    /// Builds a client drawing from an existing budget (e.g. one shared by clients of several
    /// OAuth clients of one org). `config.requests_per_minute` and `config.redis` are ignored.
    pub fn with_budget(config: ClientConfig, budget: RateBudget) -> Result<Self, Error> {
        config.validate()?;
        let http_config = HttpConfig {
            retry: config.retry.clone(),
            request_timeout: config.request_timeout,
            give_up_after: config.give_up_after,
            user_agent: concat!("dedupd-genesys/", env!("CARGO_PKG_VERSION")).to_owned(),
            display_url: redact_url(config.endpoint.api_base().as_str()),
        };
        let grant = TokenGrant::client_credentials(
            config.endpoint.token_url(),
            config.client_id.clone(),
            config.client_secret.clone(),
            DEFAULT_EXPIRES_IN,
        );
        Ok(Self {
            http: HttpClient::new(http_config, grant, budget)?,
            endpoint: config.endpoint,
        })
    }

    /// Counters so far: API calls, retries, 429s, budget wait, tokens, …
    pub fn stats(&self) -> StatsSnapshot {
        self.http.stats()
    }

    /// Where this client sends requests.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The rate budget this client draws from (clone it to share it with another client).
    pub fn budget(&self) -> &RateBudget {
        self.http.budget()
    }

    /// Why the client gave up on the platform, once it has ([`ClientConfig::give_up_after`]):
    /// from then on every call fails at once with [`Error::Unreachable`]. Callers check it to
    /// stop scheduling work.
    pub fn unreachable(&self) -> Option<Unreachable> {
        self.http.unreachable()
    }

    /// Gets a token now (if none is cached): checks the credentials before real work starts.
    pub async fn authenticate(&self) -> Result<(), Error> {
        self.http.authenticate().await
    }

    /// Sends a request and decodes a JSON response.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T, Error> {
        self.http.json(self.endpoint.api_base(), call).await
    }

    /// Sends a request whose response body does not matter (202, 204, `Empty`).
    pub(crate) async fn unit(&self, call: Call) -> Result<(), Error> {
        self.http.unit(self.endpoint.api_base(), call).await
    }
}
