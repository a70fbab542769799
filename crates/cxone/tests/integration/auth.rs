//! Discovery, the password grant, tenant discovery, short-lived tokens, redaction.

use std::time::Duration;

use dedupd_cxone::{CxoneClient, CxoneConfig, Error};
use dedupd_emulator::cxone::CxoneEmulatorConfig;
use dedupd_platform::Session;

use crate::common::*;

#[tokio::test]
async fn connect_discovers_the_issuer_and_the_tenant_from_the_id_token() {
    let emu = default_emulator().await;
    let mut config = config_for(&emu);
    config.tenant_id = None; // read from the id_token's tenantId claim
    config.dfo_base = None; // built from discovery: a host that never resolves
    // Without the override the DFO host is `api-de-na1.cxone-emulator.invalid`: connect
    // still succeeds (no DFO call yet) and the tenant is the emulator's.
    let client = CxoneClient::connect(config.clone()).await.unwrap();
    assert_eq!(client.tenant().tenant_id, TENANT);
    assert_eq!(client.tenant().area, "na1");
    assert_eq!(
        client.tenant().dfo_base.as_str(),
        "https://api-de-na1.cxone-emulator.invalid/"
    );
    assert_eq!(
        client.tenant().api_endpoint.as_str().trim_end_matches('/'),
        emu.base_url().trim_end_matches('/')
    );
    assert_eq!(emu.state().stats().token_requests, 1);
    assert_eq!(client.stats().token_requests, 1);

    // With the override the DFO answers.
    config.dfo_base = Some(config.issuer.clone());
    let client = CxoneClient::connect(config).await.unwrap();
    let channels = client.dfo().channels().await.unwrap();
    assert!(channels.iter().any(|c| c.id == CHANNEL));
}

#[tokio::test]
async fn a_wrong_access_key_is_an_auth_error_and_is_not_retried() {
    let emu = default_emulator().await;
    let mut config = config_for(&emu);
    config.access_key_secret = "not-the-secret".to_owned().into();
    let err = CxoneClient::connect(config).await.unwrap_err();
    let Error::Token(api) = &err else {
        panic!("expected a token error, got {err:?}");
    };
    assert_eq!(api.status.as_u16(), 400);
    assert_eq!(api.path, "/auth/token");
    assert_eq!(api.body.error_code(), Some("invalid_grant"));
    assert_eq!(
        emu.state().stats().token_requests,
        1,
        "a refusal is not retried"
    );
    let shown = err.to_string();
    assert!(
        shown.contains("POST /auth/token") && shown.contains("invalid_grant"),
        "{shown}"
    );
    assert!(!shown.contains("not-the-secret"), "{shown}");
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_too() {
    let emu = default_emulator().await;
    let mut config = config_for(&emu);
    config.client_secret = "wrong".to_owned().into();
    let err = CxoneClient::connect(config).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(401));
    assert!(matches!(err, Error::Token(_)));
}

#[tokio::test]
async fn an_unknown_tenant_is_a_404_naming_the_discovery_path() {
    let emu = default_emulator().await;
    let mut config = config_for(&emu);
    config.tenant_id = Some("00000000-0000-0000-0000-000000000000".into());
    let err = CxoneClient::connect(config).await.unwrap_err();
    let Error::Api(api) = &err else {
        panic!("expected an API error, got {err:?}");
    };
    assert_eq!(api.status.as_u16(), 404);
    assert_eq!(api.path, "/.well-known/cxone-configuration");
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_on_401_and_the_call_goes_through() {
    let emu = emulator(CxoneEmulatorConfig {
        token_ttl: Duration::from_secs(30),
        ..CxoneEmulatorConfig::default()
    })
    .await;
    let client = client_for(&emu).await;
    client.dfo().channels().await.unwrap();
    emu.state().advance_clock(Duration::from_secs(31)); // the emulator's clock, not ours
    let channels = client.dfo().channels().await.unwrap();
    assert!(!channels.is_empty());
    let stats = client.stats();
    assert_eq!(stats.token_refreshes_on_401, 1);
    assert_eq!(stats.token_requests, 2);
    assert_eq!(stats.retries, 0, "a 401 re-send is not a retry");
    assert_eq!(client.usage().token_requests, 2);
}

#[tokio::test]
async fn concurrent_calls_after_a_revocation_share_one_renewal() {
    let emu = default_emulator().await;
    let client = client_for(&emu).await;
    emu.state().revoke_tokens();
    let calls = (0..8).map(|_| {
        let c = client.clone();
        async move { c.dfo().channels().await }
    });
    for r in futures_util::future::join_all(calls).await {
        r.unwrap();
    }
    assert_eq!(
        client.stats().token_requests,
        2,
        "one renewal for eight 401s"
    );
}

#[tokio::test]
async fn secrets_never_show_in_debug() {
    let emu = default_emulator().await;
    let config = config_for(&emu);
    let client = CxoneClient::connect(config.clone()).await.unwrap();
    for printed in [format!("{config:?}"), format!("{client:?}")] {
        for secret in [CLIENT_SECRET, KEY_SECRET] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("REDACTED"), "{printed}");
    }
    let from_env = CxoneConfig::from_lookup(|name| match name {
        "CXONE_CLIENT_ID" => Some(CLIENT_ID.into()),
        "CXONE_CLIENT_SECRET" => Some(CLIENT_SECRET.into()),
        "CXONE_ACCESS_KEY_ID" => Some(KEY_ID.into()),
        "CXONE_ACCESS_KEY_SECRET" => Some(KEY_SECRET.into()),
        _ => None,
    })
    .unwrap();
    let printed = format!("{from_env:?}");
    assert!(
        !printed.contains(CLIENT_SECRET) && !printed.contains(KEY_SECRET),
        "{printed}"
    );
}
