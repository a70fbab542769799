//! The one set of platform arguments: every command that talks to a contact-center platform
//! flattens [`PlatformArgs`] (`#[command(flatten)]`) and builds its client through
//! [`PlatformArgs::client_config`], which goes through the client's own config lookup
//! ([`ClientConfig::from_lookup`]): the flags (clap has already layered their environment
//! variables under them) win, the secret comes from the environment only.
//!
//! A command adopts it by flattening the struct in place of its own `--base-url`, `--region`,
//! `--client-id`, `--rate`, `--redis`, `--redis-key` and `--give-up-after` flags, then calling
//! `client_config(dry_run)` and applying the command's own give-up default
//! ([`PlatformArgs::give_up_after`]).

use std::time::Duration;

use clap::Args;
use dedupd_genesys::{
    ClientConfig, ENV_BASE_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_REGION,
    ENV_REQUESTS_PER_MINUTE, RedisBudget,
};

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
