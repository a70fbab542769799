//! How a CXone emulator instance behaves.

use std::time::Duration;

use crate::config::{FaultProfile, RateLimitScope};

/// The one tenant the emulator serves, as tenant discovery reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CxoneTenant {
    /// `tenantId` (in the `id_token` and the discovery answer).
    pub tenant_id: String,
    /// `area`, e.g. `na1`.
    pub area: String,
    /// `cluster`, e.g. `C32`.
    pub cluster: String,
    /// `domain`. The default, `cxone-emulator.invalid`, is a reserved name that never resolves:
    /// a client that builds `https://api-de-{area}.{domain}` instead of using its DFO base
    /// override fails at once instead of reaching a real host.
    pub domain: String,
}

impl Default for CxoneTenant {
    fn default() -> Self {
        CxoneTenant {
            tenant_id: "11eb0c8f-0000-4000-8000-00000000e0e1".to_owned(),
            area: "na1".to_owned(),
            cluster: "C32".to_owned(),
            domain: "cxone-emulator.invalid".to_owned(),
        }
    }
}

/// What a second `POST /dfo/3.0/channels/{channelId}/messages` with an `idOnExternalPlatform`
/// already stored on that channel does (not established on the platform, api-notes §9.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InboundRepeat {
    /// It creates a second message (the least forgiving behaviour, the default): the platform
    /// does not deduplicate, the caller must look before re-posting.
    #[default]
    Duplicate,
    /// It is refused with 409 and nothing is stored.
    Reject,
}

/// What an upload does with an external id the calling list already holds (not established,
/// lists-notes §2.3 and §6.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UploadRepeat {
    /// A second record is appended: the list then holds a duplicate (the least forgiving
    /// behaviour, the default), whatever `forceOverwrite` says.
    #[default]
    Duplicate,
    /// The new record replaces every stored record with that external id.
    Replace,
}

/// How a CXone emulator instance behaves. `Default`: 300 requests per minute per token, 429s
/// for an exhausted budget without `Retry-After`, 1 h access tokens and 2 h refresh tokens,
/// client `dedupd-demo` / `dedupd-demo-secret`, access key `dedupd-demo-key` /
/// `dedupd-demo-key-secret`, the [`CxoneTenant`] default, no faults, seed 0, pages of at most
/// 100, upload jobs complete on their second status read.
#[derive(Debug, Clone)]
pub struct CxoneEmulatorConfig {
    /// Requests allowed in any 60 s sliding window (NICE publishes no number; api-notes §6).
    pub rate_limit_per_minute: u32,
    /// What one budget covers: each token (default) or all tokens of one client together.
    pub rate_limit_scope: RateLimitScope,
    /// Whether a 429 for an exhausted budget carries `Retry-After` (default false: a live
    /// integrator reports that CXone sends no reliable one, lists-notes §5). Injected 429s
    /// follow their rule (`retry_after_secs`, 0 = none) or the `x-emulator-fault` header.
    pub retry_after_on_budget: bool,
    /// `expires_in` of access tokens (a fault profile's `token_ttl_secs` overrides it).
    pub token_ttl: Duration,
    /// Lifetime of refresh tokens; each is single-use (a refresh returns a new one).
    pub refresh_token_ttl: Duration,
    /// `(client_id, client_secret)` of registered applications (HTTP Basic, or form fields).
    pub clients: Vec<(String, String)>,
    /// `(access key id, access key secret)` pairs: the password grant's `username` / `password`.
    pub access_keys: Vec<(String, String)>,
    /// The tenant.
    pub tenant: CxoneTenant,
    /// The issuer and API base the discovery documents name. `None`: the bound address,
    /// `http://127.0.0.1:PORT`.
    pub public_url: Option<String>,
    /// Faults to inject.
    pub faults: FaultProfile,
    /// Seed of the fault and id generators (a profile's `seed` overrides it).
    pub seed: u64,
    /// Largest page: customers (`size`), list downloads and DNC records (`top`); message and
    /// thread searches return at most this many items.
    pub max_page_size: usize,
    /// A repeated BYOC inbound message id.
    pub inbound_repeat: InboundRepeat,
    /// A re-uploaded external id.
    pub upload_repeat: UploadRepeat,
    /// How many status reads of an upload job say "not complete" before one says complete
    /// (and the records appear in the list). 0: the upload is applied at once.
    pub upload_job_polls: u32,
    /// Admin (`/inContactAPI/…`) requests without `Accept: application/json` get 406 and a
    /// non-JSON body, as integrators report (lists-notes §5). Default true.
    pub admin_requires_accept_json: bool,
    /// A connection that has not sent a whole request head in this time is closed (10 s).
    pub header_timeout: Duration,
    /// Most connections open at once (1024).
    pub max_connections: usize,
}

impl Default for CxoneEmulatorConfig {
    fn default() -> Self {
        CxoneEmulatorConfig {
            rate_limit_per_minute: 300,
            rate_limit_scope: RateLimitScope::default(),
            retry_after_on_budget: false,
            token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(7200),
            clients: vec![("dedupd-demo".to_owned(), "dedupd-demo-secret".to_owned())],
            access_keys: vec![(
                "dedupd-demo-key".to_owned(),
                "dedupd-demo-key-secret".to_owned(),
            )],
            tenant: CxoneTenant::default(),
            public_url: None,
            faults: FaultProfile::default(),
            seed: 0,
            max_page_size: 100,
            inbound_repeat: InboundRepeat::default(),
            upload_repeat: UploadRepeat::default(),
            upload_job_polls: 1,
            admin_requires_accept_json: true,
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}
