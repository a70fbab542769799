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
}

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
        }
    }

    /// The API budget we may use, requests per minute.
    pub fn requests_per_minute(&self) -> u32 {
        match self {
            Platform::Genesys(c) => c.requests_per_minute,
        }
    }

    /// The Redis shared with other dedupd processes (budget, merge locks), if any.
    pub fn shared_redis(&self) -> Option<&str> {
        match self {
            Platform::Genesys(c) => c.redis.as_ref().map(|r| r.url.as_str()),
        }
    }

    /// Who we are on the platform (the OAuth client id): it namespaces what dedupd shares
    /// between processes, such as lock keys. Not a secret.
    pub fn account(&self) -> &str {
        match self {
            Platform::Genesys(c) => &c.client_id,
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

    /// Tuned for one attempt of the relay: `timeout` per request and a few quick retries (429
    /// with `Retry-After`, 5xx on reads); the relay's own backoff does the rest.
    pub fn for_relay(self, timeout: Duration) -> Platform {
        match self {
            Platform::Genesys(mut c) => {
                c.request_timeout = timeout;
                c.retry = dedupd_genesys::RetryPolicy {
                    base_delay: Duration::from_millis(200),
                    max_delay: Duration::from_secs(5),
                    max_total: Duration::from_secs(15),
                    max_attempts: 3,
                };
                Platform::Genesys(c)
            }
        }
    }

    /// The platform's inbound messaging, for the gateway's forwarder. `channel` is where
    /// messages go in (Genesys Cloud: the Open Messaging integration id).
    pub async fn message_ingress(&self, channel: &str) -> anyhow::Result<Arc<dyn MessageIngress>> {
        match self {
            Platform::Genesys(c) => Ok(Arc::new(
                dedupd_genesys::seams::messaging::OpenMessagingIngress::new(
                    genesys(c).await?,
                    channel.to_owned(),
                ),
            )),
        }
    }

    /// The platform's sender of notifications. `from` says, per channel, who they come from
    /// (Genesys Cloud agentless messages: the sender address or number).
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
        }
    }
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
    })
}

/// Where the platform is, who we are on it, and how much of its API budget we may use.
#[derive(Debug, Clone, Args)]
pub struct PlatformArgs {
    /// API base URL (e.g. the emulator's http://127.0.0.1:8787); wins over --region.
    #[arg(long, env = "GENESYS_BASE_URL")]
    pub base_url: Option<String>,
    /// Genesys Cloud region (us-east-1, eu-west-1, …) or its domain (mypurecloud.ie).
    #[arg(long, alias = "org", env = "GENESYS_REGION")]
    pub region: Option<String>,
    /// OAuth client id (client credentials grant); the secret comes from GENESYS_CLIENT_SECRET.
    #[arg(long, env = "GENESYS_CLIENT_ID", default_value = "")]
    pub client_id: String,
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
        let id = some(&Some(self.client_id.clone()));
        if !dry_run {
            // Say which flag is missing, as clap would, before the client's own lookup does.
            anyhow::ensure!(
                base_url.is_some() || region.is_some(),
                "say where the platform is: --base-url (or GENESYS_BASE_URL) or --region (or GENESYS_REGION)"
            );
            anyhow::ensure!(
                id.is_some(),
                "--client-id (or GENESYS_CLIENT_ID) is required"
            );
            anyhow::ensure!(
                env(ENV_CLIENT_SECRET).is_some_and(|s| !s.is_empty()),
                "GENESYS_CLIENT_SECRET is not set (the client secret is read from the environment only)"
            );
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
            key: self
                .redis_key
                .clone()
                .unwrap_or_else(|| format!("dedupd:{{budget}}:{}", self.client_id)),
        });
        Ok(config)
    }

    /// The platform these flags configure, with the give-up time the flag sets, else
    /// `give_up_default` seconds (0 = never). A dry run needs no endpoint, id or secret.
    pub fn platform(&self, dry_run: bool, give_up_default: u64) -> anyhow::Result<Platform> {
        let mut config = self.client_config(dry_run)?;
        config.give_up_after = self.give_up_after(give_up_default);
        Ok(Platform::Genesys(Box::new(config)))
    }

    /// Checks where the platform is (the base URL or region), before anything needs the
    /// secret.
    pub fn check_endpoint(&self) -> anyhow::Result<()> {
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
            base_url: None,
            region: Some("eu-west-1".into()),
            client_id: "id-1".into(),
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
        assert!(err(&args(), None).contains("GENESYS_CLIENT_SECRET is not set"));
        let mut no_id = args();
        no_id.client_id = String::new();
        assert!(err(&no_id, Some("s")).contains("--client-id"));
        let mut nowhere = args();
        nowhere.region = None;
        assert!(err(&nowhere, Some("s")).contains("--base-url"));
        let mut a = args();
        a.region = None;
        a.client_id = String::new();
        assert!(a.client_config_with(true, |_| None).is_ok());
        assert!(a.client_config_with(false, |_| Some("s".into())).is_err());
    }

    #[test]
    fn give_up_after_zero_is_never() {
        let mut a = args();
        assert_eq!(a.give_up_after(120), Some(Duration::from_secs(120)));
        a.give_up_after = Some(0);
        assert_eq!(a.give_up_after(120), None);
    }
}
