//! The one set of platform arguments: every command that talks to a contact-center platform
//! flattens [`PlatformArgs`] (`#[command(flatten)]`) and builds its client through
//! [`PlatformArgs::client_config`], which goes through the client's own config lookup
//! ([`ClientConfig::from_lookup`]): the flags (clap has already layered their environment
//! variables under them) win, the secret comes from the environment only.
//!
//! A command adopts it by flattening the struct in place of its own `--base-url`, `--region`,
//! `--client-id`, `--rate`, `--redis`, `--redis-key` and `--give-up-after` flags, then calling
//! [`PlatformArgs::platform`] with the command's own give-up default.
//!
//! This is also the one place that names the platforms: [`Platform`] is a configured platform,
//! and a job hands it a job generic over a seam ([`DirectoryJob`], [`ListJob`]); the platform
//! builds its client and runs the job on it. No job asks which platform it runs on.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use dedupd_core::notification::Channel;
use dedupd_cxone::seams::list::CallingListSink;
use dedupd_cxone::{CxoneClient, CxoneConfig};
use dedupd_genesys::{
    ClientConfig, ENV_BASE_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_REGION,
    ENV_REQUESTS_PER_MINUTE, GenesysClient, RedisBudget,
};
use dedupd_platform::contact_list::ContactListSink;
use dedupd_platform::directory::CustomerDirectory;
use dedupd_platform::messaging::MessageIngress;
use dedupd_platform::notify::NotificationSender;

/// Seconds without any answer from the platform after which a run stops, unless a command or
/// its config says otherwise.
pub const DEFAULT_GIVE_UP_AFTER: u64 = 120;

/// A contact-center platform, configured: which one, where, and who we are on it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Platform {
    /// Genesys Cloud CX.
    Genesys(Box<ClientConfig>),
    /// NICE CXone.
    Cxone(Box<CxoneSetup>),
}

/// NICE CXone, configured: the client's config and what `sync` writes to.
#[derive(Debug, Clone)]
pub struct CxoneSetup {
    /// The client's config (secrets redacted in `Debug`).
    pub config: CxoneConfig,
    /// The skill the calling lists are uploaded for (`sync`; required there).
    pub skill_id: Option<i64>,
    /// The DNC group do-not-call numbers go to (`sync`; without one, do-not-call rows are
    /// refused).
    pub dnc_group_id: Option<String>,
}

/// Which platform the flags talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PlatformKind {
    /// Genesys Cloud CX.
    #[default]
    Genesys,
    /// NICE CXone.
    Cxone,
}

/// Days a calling-list upload stays valid (the upload's required `expirationDate`).
pub const CXONE_LIST_EXPIRATION_DAYS: i64 = 365;

/// A job that works on a platform's customer directory, whatever the platform.
pub trait DirectoryJob {
    /// What the job returns.
    type Output;
    /// Checks the job's options against what `D` can do, before anything is contacted.
    fn check<D: CustomerDirectory>(&self) -> anyhow::Result<()> {
        Ok(())
    }
    /// Runs the job on `dir`; `None` in a dry run (nothing is contacted; the job may still use
    /// the directory's capabilities and placement rules, which need no connection).
    fn run<D: CustomerDirectory>(
        self,
        dir: Option<&D>,
    ) -> impl Future<Output = anyhow::Result<Self::Output>>;
}

/// A job that works on a platform's contact lists, whatever the platform.
pub trait ListJob {
    /// What the job returns.
    type Output;
    /// Checks the job's options against what `S` can do, before anything is contacted.
    fn check<S: ContactListSink>(&self) -> anyhow::Result<()> {
        Ok(())
    }
    /// Runs the job on `sink`; `None` in a dry run (as for [`DirectoryJob::run`]).
    fn run<S: ContactListSink>(
        self,
        sink: Option<&S>,
    ) -> impl Future<Output = anyhow::Result<Self::Output>>;
}

impl Platform {
    /// Names the platform's customer directory as the input of a plan read from it.
    pub fn directory_label(&self) -> &'static str {
        match self {
            Platform::Genesys(_) => "genesys:externalcontacts",
            Platform::Cxone(_) => "cxone:customers",
        }
    }

    /// The API budget we may use, requests per minute.
    pub fn requests_per_minute(&self) -> u32 {
        match self {
            Platform::Genesys(c) => c.requests_per_minute,
            Platform::Cxone(c) => c.config.requests_per_minute,
        }
    }

    /// The Redis shared with other dedupd processes (budget, merge locks), if any.
    pub fn shared_redis(&self) -> Option<&str> {
        match self {
            Platform::Genesys(c) => c.redis.as_ref().map(|r| r.url.as_str()),
            Platform::Cxone(c) => c.config.redis.as_ref().map(|r| r.url.as_str()),
        }
    }

    /// Who we are on the platform (the OAuth client id; on CXone the tenant when it is
    /// configured): it namespaces what dedupd shares between processes, such as lock keys.
    /// Not a secret.
    pub fn account(&self) -> &str {
        match self {
            Platform::Genesys(c) => &c.client_id,
            Platform::Cxone(c) => c.config.tenant_id.as_deref().unwrap_or(&c.config.client_id),
        }
    }

    /// Runs `job` on the platform's customer directory (`dry_run`: without connecting).
    pub async fn run_directory<J: DirectoryJob>(
        &self,
        dry_run: bool,
        job: J,
    ) -> anyhow::Result<J::Output> {
        match self {
            Platform::Genesys(c) => {
                job.check::<GenesysClient>()?;
                if dry_run {
                    job.run(None::<&GenesysClient>).await
                } else {
                    job.run(Some(&genesys(c).await?)).await
                }
            }
            Platform::Cxone(c) => {
                job.check::<CxoneClient>()?;
                if dry_run {
                    job.run(None::<&CxoneClient>).await
                } else {
                    job.run(Some(&cxone(&c.config).await?)).await
                }
            }
        }
    }

    /// Runs `job` on the platform's contact lists (`dry_run`: without connecting).
    pub async fn run_list<J: ListJob>(&self, dry_run: bool, job: J) -> anyhow::Result<J::Output> {
        match self {
            Platform::Genesys(c) => {
                job.check::<GenesysClient>()?;
                if dry_run {
                    job.run(None::<&GenesysClient>).await
                } else {
                    job.run(Some(&genesys(c).await?)).await
                }
            }
            Platform::Cxone(c) => {
                job.check::<CallingListSink>()?;
                if dry_run {
                    return job.run(None::<&CallingListSink>).await;
                }
                let skill = c.skill_id.context(
                    "CXone calling lists are uploaded for a skill: --skill-id (or CXONE_SKILL_ID) is required",
                )?;
                let expires = (chrono::Utc::now()
                    + chrono::Duration::days(CXONE_LIST_EXPIRATION_DAYS))
                .format("%Y-%m-%d")
                .to_string();
                let sink = CallingListSink::new(
                    cxone(&c.config).await?,
                    skill,
                    c.dnc_group_id.clone(),
                    expires,
                );
                job.run(Some(&sink)).await
            }
        }
    }
}

impl Platform {
    /// Genesys Cloud configured from the environment alone (`GENESYS_CLIENT_ID`,
    /// `GENESYS_CLIENT_SECRET`, `GENESYS_BASE_URL` or `GENESYS_REGION`, …): for what a config
    /// file names by type, such as a notification provider.
    pub fn genesys_from_env() -> anyhow::Result<Platform> {
        Ok(Platform::Genesys(Box::new(ClientConfig::from_env()?)))
    }

    /// NICE CXone configured from the environment alone (`CXONE_CLIENT_ID`,
    /// `CXONE_CLIENT_SECRET`, `CXONE_ACCESS_KEY_ID`, `CXONE_ACCESS_KEY_SECRET`,
    /// `CXONE_TENANT_ID` or `CXONE_ISSUER` / `CXONE_API_ENDPOINT` / `CXONE_DFO_BASE` for a
    /// stand-in): for what a config file names by type, such as a notification provider.
    pub fn cxone_from_env() -> anyhow::Result<Platform> {
        Ok(Platform::Cxone(Box::new(CxoneSetup {
            config: CxoneConfig::from_env()?,
            skill_id: None,
            dnc_group_id: None,
        })))
    }

    /// Tuned for one attempt of the relay: `timeout` per request and a few quick retries (429
    /// with `Retry-After`, 5xx on reads); the relay's own backoff does the rest.
    pub fn for_relay(self, timeout: Duration) -> Platform {
        match self {
            Platform::Genesys(mut c) => {
                c.request_timeout = timeout;
                c.retry = relay_retry();
                Platform::Genesys(c)
            }
            Platform::Cxone(mut c) => {
                c.config.request_timeout = timeout;
                c.config.retry = relay_retry();
                Platform::Cxone(c)
            }
        }
    }

    /// The platform's inbound messaging, for the gateway's forwarder. `channel` is where
    /// messages go in (Genesys Cloud: the Open Messaging integration id; CXone: the DFO
    /// channel id of a BYOC channel).
    pub async fn message_ingress(&self, channel: &str) -> anyhow::Result<Arc<dyn MessageIngress>> {
        match self {
            Platform::Genesys(c) => Ok(Arc::new(
                dedupd_genesys::seams::messaging::OpenMessagingIngress::new(
                    genesys(c).await?,
                    channel.to_owned(),
                ),
            )),
            Platform::Cxone(c) => Ok(Arc::new(dedupd_cxone::seams::messaging::ByocIngress::new(
                cxone(&c.config).await?,
                channel.to_owned(),
            ))),
        }
    }

    /// The platform's sender of notifications. `from` says, per channel, who they come from
    /// (Genesys Cloud agentless messages: the sender address or number; CXone: the DFO
    /// channel id).
    pub async fn notification_sender(
        &self,
        from: &BTreeMap<Channel, String>,
    ) -> anyhow::Result<Arc<dyn NotificationSender>> {
        match self {
            Platform::Genesys(c) => Ok(Arc::new(
                dedupd_genesys::seams::notify::AgentlessSender::new(
                    genesys(c).await?,
                    from.clone(),
                ),
            )),
            Platform::Cxone(c) => Ok(Arc::new(dedupd_cxone::seams::notify::DfoSender::new(
                cxone(&c.config).await?,
                from.clone(),
            ))),
        }
    }
}

/// One attempt of the relay: a few quick retries (429 with `Retry-After`, 5xx on reads); the
/// relay's own backoff does the rest.
fn relay_retry() -> dedupd_genesys::RetryPolicy {
    dedupd_genesys::RetryPolicy {
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(5),
        max_total: Duration::from_secs(15),
        max_attempts: 3,
    }
}

async fn cxone(config: &CxoneConfig) -> anyhow::Result<CxoneClient> {
    CxoneClient::connect(config.clone())
        .await
        .context("cannot set up the NICE CXone client")
}

async fn genesys(config: &ClientConfig) -> anyhow::Result<GenesysClient> {
    GenesysClient::new(config.clone())
        .await
        .context("cannot set up the Genesys Cloud client")
}

/// Whether a run failed because the platform was unreachable (the CLI then exits 3: run again
/// later), whichever platform's error says so.
pub fn is_unreachable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<dedupd_platform::PlatformError>()
            .is_some_and(|p| p.kind == dedupd_platform::ErrorKind::Unreachable)
            || c.downcast_ref::<dedupd_genesys::Error>()
                .is_some_and(dedupd_genesys::Error::is_unreachable)
            || c.downcast_ref::<dedupd_cxone::Error>()
                .is_some_and(|e| matches!(e, dedupd_cxone::Error::Unreachable(_)))
    })
}

/// Where the platform is, who we are on it, and how much of its API budget we may use.
///
/// Genesys Cloud (the default) takes its credentials from `--client-id` and
/// `GENESYS_CLIENT_SECRET`; NICE CXone (`--platform cxone`) from the environment alone
/// (`CXONE_CLIENT_ID`, `CXONE_CLIENT_SECRET`, `CXONE_ACCESS_KEY_ID`,
/// `CXONE_ACCESS_KEY_SECRET`, `CXONE_TENANT_ID`), with `--base-url` standing for the issuer,
/// the API endpoint and the DFO base of a stand-in (the emulator).
#[derive(Debug, Clone, Args)]
pub struct PlatformArgs {
    /// The contact-center platform.
    #[arg(
        long = "platform",
        value_enum,
        env = "DEDUPD_PLATFORM",
        default_value_t = PlatformKind::Genesys
    )]
    pub kind: PlatformKind,
    /// API base URL (e.g. the emulator's http://127.0.0.1:8787); wins over --region.
    #[arg(long, env = "GENESYS_BASE_URL")]
    pub base_url: Option<String>,
    /// Genesys Cloud region (us-east-1, eu-west-1, …) or its domain (mypurecloud.ie).
    #[arg(long, alias = "org", env = "GENESYS_REGION")]
    pub region: Option<String>,
    /// OAuth client id (client credentials grant); the secret comes from GENESYS_CLIENT_SECRET.
    #[arg(long, env = "GENESYS_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The org's API budget, requests per minute (shared by all workers; see --redis).
    #[arg(
        long,
        alias = "requests-per-minute",
        env = "GENESYS_REQUESTS_PER_MINUTE",
        default_value_t = 300
    )]
    pub rate: u32,
    /// Share the budget (and, for merge apply, the contact locks) with other dedupd processes
    /// through this Redis.
    #[arg(long, env = "DEDUPD_REDIS_URL")]
    pub redis: Option<String>,
    /// Redis key of the shared budget (one per org) [default: dedupd:{budget}:<client id>].
    #[arg(long)]
    pub redis_key: Option<String>,
    /// Seconds without any answer from the platform (connect errors, timeouts, 5xx, 429)
    /// after which the run stops, keeps what was done and exits 3; 0 = never
    /// [default: the command's; sync: [sync] give_up_after of the config, else 120].
    #[arg(long, value_name = "SECONDS", env = "DEDUPD_GIVE_UP_AFTER")]
    pub give_up_after: Option<u64>,
    /// CXone `sync`: the skill the calling list is uploaded for (never started by an upload).
    #[arg(long, env = "CXONE_SKILL_ID")]
    pub skill_id: Option<i64>,
    /// CXone `sync`: the DNC group do-not-call numbers are added to (they stay off the list;
    /// without a group, do-not-call contacts are refused).
    #[arg(long, env = "CXONE_DNC_GROUP_ID")]
    pub dnc_group_id: Option<String>,
}

/// Stands in for what a dry run never uses (it contacts nothing).
const DRY_RUN_BASE_URL: &str = "http://127.0.0.1:9";

impl PlatformArgs {
    /// The client config: flags first, the secret from the environment. A dry run needs no
    /// endpoint, id or secret.
    pub fn client_config(&self, dry_run: bool) -> anyhow::Result<ClientConfig> {
        self.client_config_with(dry_run, |name| std::env::var(name).ok())
    }

    /// [`PlatformArgs::client_config`] with the environment given (for tests).
    pub fn client_config_with(
        &self,
        dry_run: bool,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<ClientConfig> {
        let some = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        let (base_url, region) = (some(&self.base_url), some(&self.region));
        let id = some(&self.client_id);
        if !dry_run {
            // Name everything that is missing at once, as clap would, before the client's own
            // lookup does.
            let mut missing = Vec::new();
            if base_url.is_none() && region.is_none() {
                missing.push("where the platform is: --base-url (or GENESYS_BASE_URL) or --region (or GENESYS_REGION)");
            }
            if id.is_none() {
                missing.push("--client-id (or GENESYS_CLIENT_ID)");
            }
            if env(ENV_CLIENT_SECRET).is_none_or(|s| s.is_empty()) {
                missing.push(
                    "GENESYS_CLIENT_SECRET (the client secret is read from the environment only)",
                );
            }
            anyhow::ensure!(missing.is_empty(), "missing: {}", missing.join("; "));
        }
        let rate = self.rate.to_string();
        let lookup = |name: &str| -> Option<String> {
            match name {
                ENV_BASE_URL => base_url
                    .clone()
                    .or_else(|| (dry_run && region.is_none()).then(|| DRY_RUN_BASE_URL.into())),
                ENV_REGION => region.clone(),
                ENV_CLIENT_ID => id.clone().or_else(|| dry_run.then(|| "dry-run".into())),
                ENV_CLIENT_SECRET => env(name)
                    .filter(|s| !s.is_empty())
                    .or_else(|| dry_run.then(|| "dry-run".into())),
                ENV_REQUESTS_PER_MINUTE => Some(rate.clone()),
                _ => None,
            }
        };
        let mut config = ClientConfig::from_lookup(lookup)?;
        config.redis = self.redis.clone().map(|url| RedisBudget {
            url,
            key: self.redis_key.clone().unwrap_or_else(|| {
                format!(
                    "dedupd:{{budget}}:{}",
                    self.client_id.as_deref().unwrap_or("")
                )
            }),
        });
        Ok(config)
    }

    /// The platform these flags configure, with the give-up time the flag sets, else
    /// `give_up_default` seconds (0 = never). A dry run needs no endpoint, id or secret.
    pub fn platform(&self, dry_run: bool, give_up_default: u64) -> anyhow::Result<Platform> {
        self.platform_with(dry_run, give_up_default, |name| std::env::var(name).ok())
    }

    /// [`PlatformArgs::platform`] with the environment given (for tests).
    pub fn platform_with(
        &self,
        dry_run: bool,
        give_up_default: u64,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Platform> {
        match self.kind {
            PlatformKind::Genesys => {
                let mut config = self.client_config_with(dry_run, env)?;
                config.give_up_after = self.give_up_after(give_up_default);
                Ok(Platform::Genesys(Box::new(config)))
            }
            PlatformKind::Cxone => {
                let mut config = self.cxone_config_with(dry_run, env)?;
                config.give_up_after = self.give_up_after(give_up_default);
                Ok(Platform::Cxone(Box::new(CxoneSetup {
                    config,
                    skill_id: self.skill_id,
                    dnc_group_id: self.dnc_group_id.clone().filter(|g| !g.trim().is_empty()),
                })))
            }
        }
    }

    /// The CXone client config: credentials from the environment (a dry run needs none),
    /// `--base-url` as the stand-in's one base URL, `CXONE_REQUESTS_PER_MINUTE` else `--rate`.
    fn cxone_config_with(
        &self,
        dry_run: bool,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<CxoneConfig> {
        use dedupd_cxone::{
            ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET, ENV_API_ENDPOINT, ENV_CLIENT_ID,
            ENV_CLIENT_SECRET, ENV_DFO_BASE, ENV_ISSUER, ENV_REQUESTS_PER_MINUTE,
        };
        let base = self.base_url.clone().filter(|s| !s.trim().is_empty());
        let rate = self.rate.to_string();
        let lookup = |name: &str| -> Option<String> {
            let set = env(name).filter(|v| !v.trim().is_empty());
            match name {
                ENV_ISSUER | ENV_API_ENDPOINT | ENV_DFO_BASE => base
                    .clone()
                    .or(set)
                    .or_else(|| dry_run.then(|| DRY_RUN_BASE_URL.into())),
                ENV_CLIENT_ID | ENV_CLIENT_SECRET | ENV_ACCESS_KEY_ID | ENV_ACCESS_KEY_SECRET => {
                    set.or_else(|| dry_run.then(|| "dry-run".into()))
                }
                ENV_REQUESTS_PER_MINUTE => set.or_else(|| Some(rate.clone())),
                _ => set,
            }
        };
        let mut config = CxoneConfig::from_lookup(lookup)
            .context("NICE CXone credentials are read from the environment")?;
        config.redis = self.redis.clone().map(|url| dedupd_cxone::RedisBudget {
            url,
            key: self.redis_key.clone().unwrap_or_else(|| {
                format!(
                    "dedupd:{{budget}}:cxone:{}",
                    config.tenant_id.as_deref().unwrap_or(&config.client_id)
                )
            }),
        });
        Ok(config)
    }

    /// Checks where the platform is (the base URL or region), before anything needs the
    /// secret.
    pub fn check_endpoint(&self) -> anyhow::Result<()> {
        if self.kind == PlatformKind::Cxone {
            if let Some(url) = &self.base_url {
                CxoneConfig::stand_in(url, "-", "-", "-", "-")?;
            }
            return Ok(());
        }
        match (&self.base_url, &self.region) {
            (Some(url), _) => drop(dedupd_genesys::Endpoint::base_url(url)?),
            (None, Some(r)) => drop(dedupd_genesys::Endpoint::region(r)?),
            (None, None) => {}
        }
        Ok(())
    }

    /// The give-up time: the flag, else `default` seconds; 0 = never.
    pub fn give_up_after(&self, default: u64) -> Option<Duration> {
        let secs = self.give_up_after.unwrap_or(default);
        (secs > 0).then(|| Duration::from_secs(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> PlatformArgs {
        PlatformArgs {
            kind: PlatformKind::Genesys,
            skill_id: None,
            dnc_group_id: None,
            base_url: None,
            region: Some("eu-west-1".into()),
            client_id: Some("id-1".into()),
            rate: 120,
            redis: Some("redis://127.0.0.1:6379".into()),
            redis_key: None,
            give_up_after: None,
        }
    }

    #[test]
    fn flags_build_the_config_and_the_secret_comes_from_the_environment() {
        let c = args()
            .client_config_with(false, |n| (n == ENV_CLIENT_SECRET).then(|| "s".into()))
            .unwrap();
        assert_eq!(c.client_id, "id-1");
        assert_eq!(c.requests_per_minute, 120);
        assert!(c.endpoint.api_base().as_str().contains("mypurecloud.ie"));
        assert_eq!(c.redis.unwrap().key, "dedupd:{budget}:id-1");
    }

    #[test]
    fn a_real_run_needs_the_secret_and_a_dry_run_needs_nothing() {
        let err = |a: &PlatformArgs, env: Option<&str>| {
            a.client_config_with(false, |_| env.map(str::to_owned))
                .unwrap_err()
                .to_string()
        };
        assert!(err(&args(), None).contains("missing: GENESYS_CLIENT_SECRET"));
        let mut no_id = args();
        no_id.client_id = None;
        assert!(err(&no_id, Some("s")).contains("--client-id"));
        let mut nowhere = args();
        nowhere.region = None;
        assert!(err(&nowhere, Some("s")).contains("--base-url"));
        let mut a = args();
        a.region = None;
        a.client_id = None;
        assert!(a.client_config_with(true, |_| None).is_ok());
        assert!(a.client_config_with(false, |_| Some("s".into())).is_err());
        // Everything missing is named in one message.
        let all = err(&a, None);
        for name in ["--base-url", "--client-id", "GENESYS_CLIENT_SECRET"] {
            assert!(all.contains(name), "{all}");
        }
    }

    #[test]
    fn cxone_reads_its_credentials_from_the_environment_and_redacts_them() {
        let mut a = args();
        a.kind = PlatformKind::Cxone;
        a.base_url = Some("http://127.0.0.1:8788".into());
        a.skill_id = Some(42);
        a.dnc_group_id = Some("7".into());
        let env = |n: &str| {
            let v = match n {
                "CXONE_CLIENT_ID" => "app",
                "CXONE_CLIENT_SECRET" => "app-secret-1",
                "CXONE_ACCESS_KEY_ID" => "key",
                "CXONE_ACCESS_KEY_SECRET" => "key-secret-1",
                _ => return None,
            };
            Some(v.to_owned())
        };
        let p = a.platform_with(false, 0, env).unwrap();
        let Platform::Cxone(c) = &p else {
            panic!("not CXone: {p:?}")
        };
        assert_eq!(c.config.issuer.as_str(), "http://127.0.0.1:8788/");
        assert_eq!(
            c.config.dfo_base.as_ref().unwrap().as_str(),
            "http://127.0.0.1:8788/"
        );
        assert_eq!(c.config.requests_per_minute, 120);
        assert_eq!(
            (c.skill_id, c.dnc_group_id.as_deref()),
            (Some(42), Some("7"))
        );
        assert_eq!(p.account(), "app");
        assert_eq!(p.directory_label(), "cxone:customers");
        let printed = format!("{p:?}");
        assert!(!printed.contains("secret-1"), "{printed}");

        // A real run names the missing variable; a dry run needs none.
        let err = a.platform_with(false, 0, |_| None).unwrap_err();
        assert!(format!("{err:#}").contains("CXONE_CLIENT_ID"), "{err:#}");
        a.base_url = None;
        assert!(a.platform_with(true, 0, |_| None).is_ok());
    }

    #[test]
    fn give_up_after_zero_is_never() {
        let mut a = args();
        assert_eq!(a.give_up_after(120), Some(Duration::from_secs(120)));
        a.give_up_after = Some(0);
        assert_eq!(a.give_up_after(120), None);
    }
}
