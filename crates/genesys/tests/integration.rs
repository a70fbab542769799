//! The client against the real emulator over HTTP, in process, on an ephemeral port.
//!
//! Every test starts its own emulator with a high rate limit (so the suite stays fast) and
//! asserts on counts (the emulator's stats and the client's), never on durations.
//! The Redis test reads `REDIS_URL` (default `redis://127.0.0.1:6379`); without Redis it is
//! skipped with a note, except under `CI=true`, where a missing Redis fails it.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dedupd_emulator::{EmulatorConfig, FaultKind, FaultProfile, FaultRule, RunningEmulator};
use dedupd_genesys::{
    AddContactsOptions, ClientConfig, ContactIdentifier, ContactList, Endpoint, Error,
    ExternalContact, GenesysClient, IdentifierType, OpenIdType, OpenInboundChannel,
    OpenInboundMessage, OpenMessagingFrom, PatchAction, PatchChange, PhoneNumber, RateBudget,
    RetryPolicy, SearchQuery, SecretString, WritableDialerContact,
};
use futures_util::TryStreamExt;

const CLIENT_ID: &str = "it-client";
const CLIENT_SECRET: &str = "it-S3cr3t-never-in-logs";
const OTHER_CLIENT_ID: &str = "it-client-2";
const OTHER_CLIENT_SECRET: &str = "it-S3cr3t-two-never-in-logs";
/// Per token and minute: high enough that tests that are not about the budget never wait long.
const FAST_RATE: u32 = 60_000;

fn emulator_config(faults: FaultProfile) -> EmulatorConfig {
    EmulatorConfig {
        rate_limit_per_minute: FAST_RATE,
        token_ttl: Duration::from_secs(3600),
        clients: vec![
            (CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned()),
            (OTHER_CLIENT_ID.to_owned(), OTHER_CLIENT_SECRET.to_owned()),
        ],
        faults,
        seed: 7,
        ..EmulatorConfig::default()
    }
}

async fn emulator(faults: FaultProfile) -> RunningEmulator {
    RunningEmulator::start(emulator_config(faults))
        .await
        .unwrap()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_total: Duration::from_secs(10),
        max_attempts: 8,
    }
}

fn config_for(emu: &RunningEmulator, retry: RetryPolicy) -> ClientConfig {
    let mut config = ClientConfig::new(
        Endpoint::base_url(&emu.base_url()).unwrap(),
        CLIENT_ID,
        SecretString::from(CLIENT_SECRET),
    );
    config.requests_per_minute = FAST_RATE;
    config.retry = retry;
    config.request_timeout = Duration::from_secs(5);
    config
}

async fn client_for(emu: &RunningEmulator) -> GenesysClient {
    GenesysClient::new(config_for(emu, fast_retry()))
        .await
        .unwrap()
}

fn rule(kind: FaultKind, probability: f64) -> FaultRule {
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

fn faults(rules: Vec<FaultRule>) -> FaultProfile {
    FaultProfile {
        seed: Some(11),
        rules,
        ..FaultProfile::default()
    }
}

const LISTS_ROUTE: &str = "GET /api/v2/outbound/contactlists";
const ADD_ROUTE: &str = "POST /api/v2/outbound/contactlists/{contactListId}/contacts";

fn route_count(emu: &RunningEmulator, route: &str) -> u64 {
    emu.state()
        .stats()
        .requests_by_route
        .get(route)
        .copied()
        .unwrap_or(0)
}

fn status_count(emu: &RunningEmulator, status: u16) -> u64 {
    emu.state()
        .stats()
        .responses_by_status
        .get(&status)
        .copied()
        .unwrap_or(0)
}

async fn new_list(client: &GenesysClient, name: &str) -> String {
    let list = client
        .outbound()
        .create_contact_list(&ContactList::new(
            name,
            vec!["phone".into(), "email".into(), "name".into()],
        ))
        .await
        .unwrap();
    list.id.unwrap()
}

fn contact(list_id: &str, id: &str) -> WritableDialerContact {
    WritableDialerContact {
        id: Some(id.to_owned()),
        contact_list_id: list_id.to_owned(),
        data: BTreeMap::from([
            ("phone".to_owned(), format!("+1415555{:04}", id.len() * 7)),
            ("name".to_owned(), format!("Customer {id}")),
        ]),
        ..WritableDialerContact::default()
    }
}

fn list_ids_in_emulator(emu: &RunningEmulator, list_id: &str) -> Vec<String> {
    emu.state()
        .contact_list_contacts(list_id)
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// Lists contact lists `n` times concurrently; every call must succeed.
async fn list_lists_concurrently(client: &GenesysClient, n: usize) {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .outbound()
                    .list_contact_lists(&Default::default())
                    .await
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_calls_share_one_token_request() {
    let emu = emulator(FaultProfile::default()).await;
    let client = client_for(&emu).await;
    list_lists_concurrently(&client, 50).await;
    assert_eq!(emu.state().stats().token_requests, 1);
    assert_eq!(client.stats().token_requests, 1);
    assert_eq!(route_count(&emu, LISTS_ROUTE), 50);
    assert_eq!(client.stats().api_calls, 50);
}

#[tokio::test]
async fn token_is_renewed_at_80_percent_of_its_lifetime_before_it_expires() {
    let mut config = emulator_config(FaultProfile::default());
    config.token_ttl = Duration::from_secs(3);
    let emu = RunningEmulator::start(config).await.unwrap();
    let client = client_for(&emu).await;
    let lists = client.outbound();

    lists.list_contact_lists(&Default::default()).await.unwrap();
    lists.list_contact_lists(&Default::default()).await.unwrap();
    assert_eq!(emu.state().stats().token_requests, 1, "fresh token reused");

    // Requests until a second token appears: past 80 % of the 3 s lifetime (2.4 s) and before
    // it ends, a proactive renewal is the only way one can, and no request may meet a 401.
    // The client's token clock is its own (std Instant), so this is a condition wait (at most
    // 50 requests, 100 ms apart), not a delay.
    for _ in 0..50 {
        lists.list_contact_lists(&Default::default()).await.unwrap();
        if emu.state().stats().token_requests > 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = emu.state().stats();
    assert_eq!(stats.token_requests, 2);
    assert_eq!(stats.responses_by_status.get(&401), None);
    assert_eq!(client.stats().token_refreshes_on_401, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_is_renewed_once_and_the_request_sent_again() {
    let emu = emulator(FaultProfile::default()).await;
    let client = client_for(&emu).await;
    client
        .outbound()
        .list_contact_lists(&Default::default())
        .await
        .unwrap();
    assert_eq!(emu.state().revoke_tokens(), 1);

    // Ten concurrent callers all meet the 401 of the revoked token; one renewal serves them.
    list_lists_concurrently(&client, 10).await;
    // However many callers met a 401 (those in flight before the first renewal), one token
    // request renewed it, and each 401 was followed by exactly one re-send.
    let stats = emu.state().stats();
    let unauthorized = stats.responses_by_status[&401];
    assert_eq!(stats.token_requests, 2);
    assert!((1..=10).contains(&unauthorized));
    assert_eq!(client.stats().token_refreshes_on_401, unauthorized);
    assert_eq!(route_count(&emu, LISTS_ROUTE), 11 + unauthorized);
    assert_eq!(client.stats().retries, 0, "a 401 re-send is not a retry");
}

#[tokio::test]
async fn wrong_credentials_fail_at_once_without_retrying() {
    let emu = emulator(FaultProfile::default()).await;
    let mut config = config_for(&emu, fast_retry());
    config.client_secret = SecretString::from("wrong");
    let client = GenesysClient::new(config).await.unwrap();
    let error = client.authenticate().await.unwrap_err();
    assert!(matches!(error, Error::Token(_)), "{error:?}");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(401));
    assert!(!error.is_transient());
    assert_eq!(emu.state().stats().token_requests, 1);
    assert_eq!(
        error.error_body().unwrap().code.as_deref(),
        Some("bad.credentials")
    );
}

// ---------------------------------------------------------------------------------------------
// Secrets never appear in logs or Debug output
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The longest run of lowercase hex digits: the emulator's tokens are 64 of them.
fn longest_hex_run(text: &str) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in text.chars() {
        if c.is_ascii_digit() || ('a'..='f').contains(&c) {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

// Current-thread runtime: the thread-local subscriber then sees the client, hyper and the
// in-process emulator alike.
#[tokio::test(flavor = "current_thread")]
async fn secret_and_tokens_never_appear_in_trace_logs_or_debug_output() {
    let buffer = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(buffer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let emu = emulator(faults(vec![{
        // One 5xx and one 429 path exercised too, so retry logging is covered.
        let mut r = rule(FaultKind::ServerError, 0.3);
        r.statuses = Some(vec![503]);
        r
    }]))
    .await;
    let client = client_for(&emu).await;
    let list_id = new_list(&client, "secrets").await;
    client
        .outbound()
        .add_contacts(
            &list_id,
            &[contact(&list_id, "c1"), contact(&list_id, "c2")],
            AddContactsOptions::default(),
        )
        .await
        .unwrap();
    emu.state().revoke_tokens();
    for _ in 0..5 {
        client.outbound().get_contact(&list_id, "c1").await.unwrap();
    }
    let mut bad = config_for(&emu, fast_retry());
    bad.client_secret = SecretString::from("wrong-secret-also-hidden");
    let bad_client = GenesysClient::new(bad.clone()).await.unwrap();
    assert!(bad_client.authenticate().await.is_err());

    let stats = client.stats();
    assert_eq!(stats.token_refreshes_on_401, 1, "{stats:?}");
    assert!(stats.retries > 0, "the 503s were retried: {stats:?}");

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("Retrying a transient failure."),
        "the subscriber captured the client's events"
    );
    for secret in [CLIENT_SECRET, "wrong-secret-also-hidden"] {
        assert!(!logs.contains(secret), "secret leaked into logs");
    }
    assert!(!logs.contains("Bearer "), "authorization header leaked");
    assert!(!logs.contains("Basic "), "authorization header leaked");
    assert!(
        longest_hex_run(&logs) < 64,
        "an access token leaked into the logs"
    );

    let debug = format!(
        "{:?} {:?} {:?}",
        config_for(&emu, fast_retry()),
        bad,
        client
    );
    assert!(!debug.contains(CLIENT_SECRET), "{debug}");
    assert!(!debug.contains("wrong-secret-also-hidden"), "{debug}");
    assert!(debug.contains("REDACTED"), "{debug}");
}

// ---------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn retry_after_of_a_429_wins_and_the_total_retry_cap_ends_the_call() {
    // Every request is answered 429 with Retry-After: 1. With a 5 ms backoff the client would
    // try 8 times within the cap; honouring Retry-After it can only make 3 attempts (t = 0, 1,
    // 2 s) before the next sleep would pass the 2.5 s cap.
    let emu = emulator(faults(vec![{
        let mut r = rule(FaultKind::RateLimitBurst, 1.0);
        r.retry_after_secs = Some(1);
        r
    }]))
    .await;
    let mut retry = fast_retry();
    retry.max_total = Duration::from_millis(2500);
    let client = GenesysClient::new(config_for(&emu, retry)).await.unwrap();
    let error = client
        .outbound()
        .list_contact_lists(&Default::default())
        .await
        .unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(429));
    assert!(error.is_transient());
    assert_eq!(
        error.error_body().unwrap().code.as_deref(),
        Some("too.many.requests.retry.after")
    );
    assert_eq!(route_count(&emu, LISTS_ROUTE), 3);
    let stats = client.stats();
    assert_eq!(
        (stats.api_calls, stats.retries, stats.rate_limited),
        (3, 2, 3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occasional_429s_are_retried_until_success() {
    let emu = emulator(faults(vec![{
        let mut r = rule(FaultKind::RateLimitBurst, 0.3);
        r.retry_after_secs = Some(1);
        r
    }]))
    .await;
    let client = client_for(&emu).await;
    list_lists_concurrently(&client, 12).await;
    let emu_stats = emu.state().stats();
    let stats = client.stats();
    assert!(emu_stats.too_many_requests_sent > 0, "seeded faults fired");
    assert_eq!(stats.rate_limited, emu_stats.too_many_requests_sent);
    assert_eq!(stats.retries, stats.rate_limited);
    assert_eq!(stats.api_calls, 12 + stats.retries);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_and_the_attempt_cap_holds() {
    let emu = emulator(faults(vec![rule(FaultKind::ServerError, 0.3)])).await;
    let client = client_for(&emu).await;
    list_lists_concurrently(&client, 20).await;
    let stats = client.stats();
    let five_xx: u64 = [500, 502, 503].iter().map(|s| status_count(&emu, *s)).sum();
    assert!(five_xx > 0, "seeded faults fired");
    assert_eq!(stats.server_errors, five_xx);
    assert_eq!(stats.retries, five_xx);

    // Always failing: exactly max_attempts requests, then the last error, still transient.
    emu.state()
        .set_faults(faults(vec![rule(FaultKind::ServerError, 1.0)]));
    let mut retry = fast_retry();
    retry.max_attempts = 4;
    let capped = GenesysClient::new(config_for(&emu, retry)).await.unwrap();
    let before = route_count(&emu, LISTS_ROUTE);
    let error = capped
        .outbound()
        .list_contact_lists(&Default::default())
        .await
        .unwrap_err();
    assert!(error.is_transient());
    assert!(error.status().unwrap().is_server_error());
    assert_eq!(route_count(&emu, LISTS_ROUTE) - before, 4);
}

/// With `give_up_after`, a call on a platform that answers nothing (the emulator's outage: 503
/// on everything) ends with `Unreachable` once no request has had an answer for that long,
/// though its retry policy would go on for an hour; from then on the client sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gives_up_on_an_unreachable_platform_and_then_sends_nothing() {
    let emu = emulator(FaultProfile::default()).await;
    let mut retry = fast_retry();
    retry.max_attempts = u32::MAX;
    retry.max_total = Duration::from_secs(3600);
    let mut config = config_for(&emu, retry);
    config.give_up_after = Some(Duration::from_millis(300));
    let client = GenesysClient::new(config).await.unwrap();
    client
        .outbound()
        .list_contact_lists(&Default::default())
        .await
        .unwrap();
    assert_eq!(client.unreachable(), None);

    emu.state().outage_after(0);
    let error = client
        .outbound()
        .list_contact_lists(&Default::default())
        .await
        .unwrap_err();
    assert!(error.is_unreachable() && error.is_transient(), "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "the platform at {} was unreachable for ",
            emu.base_url()
        )) && message.contains("503"),
        "{message}"
    );
    assert!(!message.contains(CLIENT_SECRET));
    assert!(
        route_count(&emu, LISTS_ROUTE) > 2,
        "it retried before giving up"
    );
    assert_eq!(client.unreachable().map(|u| u.to_string()), Some(message));

    // Given up for good: even with the platform back, the next call fails at once, unsent.
    emu.state().end_outage();
    let sent = emu.state().stats().total_requests;
    let again = client
        .clone()
        .outbound()
        .get_contact_list("any")
        .await
        .unwrap_err();
    assert!(again.is_unreachable(), "{again}");
    assert_eq!(emu.state().stats().total_requests, sent);
}

#[tokio::test]
async fn validation_errors_are_never_retried() {
    let emu = emulator(FaultProfile::default()).await;
    let client = client_for(&emu).await;
    let list_id = new_list(&client, "validation").await;

    // A column that is not in the list: 400, one request, no retry.
    let mut bad = contact(&list_id, "c1");
    bad.data.insert("shoe_size".into(), "44".into());
    let error = client
        .outbound()
        .add_contacts(&list_id, &[bad], AddContactsOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(400));
    assert!(!error.is_transient());
    assert_eq!(route_count(&emu, ADD_ROUTE), 1);

    assert_eq!(client.stats().retries, 0);
}

/// A minimal HTTP/1.1 server answering every `/api/v2` request with one fixed status (the
/// emulator never answers 501, the one 5xx that must not be retried). It serves tokens too.
struct StubServer {
    base_url: String,
    api_requests: Arc<Mutex<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl StubServer {
    async fn start(status: u16, reason: &'static str) -> StubServer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let api_requests = Arc::new(Mutex::new(0u64));
        let counter = Arc::clone(&api_requests);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Headers, then as much body as Content-Length says.
                    let (head_end, length) = loop {
                        let Ok(n) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&chunk[..n]);
                        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head =
                                String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (end + 4, length);
                        }
                    };
                    while request.len() < head_end + length {
                        let Ok(n) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            break;
                        }
                        request.extend_from_slice(&chunk[..n]);
                    }
                    let line = String::from_utf8_lossy(&request[..head_end]).to_string();
                    let (status_line, body) = if line.contains(" /oauth/token ") {
                        (
                            "200 OK".to_owned(),
                            r#"{"access_token":"stub-token","token_type":"bearer","expires_in":3600}"#
                                .to_owned(),
                        )
                    } else {
                        *counter.lock().unwrap() += 1;
                        (
                            format!("{status} {reason}"),
                            format!(
                                r#"{{"message":"{reason}","code":"not.implemented","status":{status},"contextId":"stub"}}"#
                            ),
                        )
                    };
                    let response = format!(
                        "HTTP/1.1 {status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        StubServer {
            base_url,
            api_requests,
            task,
        }
    }
}

impl Drop for StubServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn not_implemented_is_never_retried() {
    let stub = StubServer::start(501, "Not Implemented").await;
    let mut config = ClientConfig::new(
        Endpoint::base_url(&stub.base_url).unwrap(),
        CLIENT_ID,
        SecretString::from(CLIENT_SECRET),
    );
    config.requests_per_minute = FAST_RATE;
    config.retry = fast_retry();
    let client = GenesysClient::new(config).await.unwrap();
    let error = client.outbound().get_contact_list("any").await.unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(501));
    assert!(!error.is_transient());
    assert_eq!(*stub.api_requests.lock().unwrap(), 1);
    assert_eq!(client.stats().retries, 0);

    // The same server answering 502 is retried up to the attempt cap.
    let stub = StubServer::start(502, "Bad Gateway").await;
    let mut config = ClientConfig::new(
        Endpoint::base_url(&stub.base_url).unwrap(),
        CLIENT_ID,
        SecretString::from(CLIENT_SECRET),
    );
    config.requests_per_minute = FAST_RATE;
    config.retry = RetryPolicy {
        max_attempts: 3,
        ..fast_retry()
    };
    let client = GenesysClient::new(config).await.unwrap();
    let error = client.outbound().get_contact_list("any").await.unwrap_err();
    assert!(error.is_transient());
    assert_eq!(*stub.api_requests.lock().unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_timeouts_retry_reads_and_report_writes_as_outcome_unknown() {
    // The emulator holds these requests for 3 s; the client gives up on each after 300 ms.
    let emu = emulator(faults(vec![{
        let mut r = rule(FaultKind::Timeout, 1.0);
        r.delay_ms = Some(3000);
        r.paths = vec![
            "/api/v2/externalcontacts/contacts".into(),
            "/api/v2/externalcontacts/contacts/*".into(),
        ];
        r
    }]))
    .await;
    let mut config = config_for(
        &emu,
        RetryPolicy {
            max_attempts: 2,
            ..fast_retry()
        },
    );
    config.request_timeout = Duration::from_millis(300);
    let client = GenesysClient::new(config).await.unwrap();

    let write = client
        .external_contacts()
        .create(&ExternalContact {
            first_name: Some("Slow".into()),
            ..ExternalContact::default()
        })
        .await
        .unwrap_err();
    assert!(write.is_outcome_unknown(), "{write:?}");
    assert_eq!(write.status(), None, "our own timeout, no response");
    assert_eq!(
        route_count(&emu, "POST /api/v2/externalcontacts/contacts"),
        1
    );

    let read = client.external_contacts().get("some-id").await.unwrap_err();
    assert!(read.is_transient(), "{read:?}");
    assert!(matches!(read, Error::Transport { .. }));
    assert_eq!(
        route_count(&emu, "GET /api/v2/externalcontacts/contacts/{contactId}"),
        2,
        "a read is retried after a timeout"
    );
    let stats = client.stats();
    assert_eq!((stats.transport_errors, stats.outcome_unknown), (3, 1));
}

// ---------------------------------------------------------------------------------------------
// 504 whose work was done: outcome unknown
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn gateway_timeout_on_a_create_is_reported_as_outcome_unknown() {
    let emu = emulator(faults(vec![{
        let mut r = rule(FaultKind::GatewayTimeoutApplied, 1.0);
        r.methods = vec!["POST".into()];
        r.paths = vec!["/api/v2/externalcontacts/contacts".into()];
        r
    }]))
    .await;
    let client = client_for(&emu).await;
    let contact = ExternalContact {
        first_name: Some("Ada".into()),
        work_email: Some("ada@example.com".into()),
        ..ExternalContact::default()
    };
    let error = client
        .external_contacts()
        .create(&contact)
        .await
        .unwrap_err();
    assert!(error.is_outcome_unknown(), "{error:?}");
    assert!(!error.is_transient());
    assert_eq!(error.status().map(|s| s.as_u16()), Some(504));
    assert!(
        error.to_string().contains("may have been applied"),
        "{error}"
    );
    assert_eq!(
        route_count(&emu, "POST /api/v2/externalcontacts/contacts"),
        1,
        "a non-idempotent request is never re-sent after a 504"
    );
    assert_eq!(client.stats().outcome_unknown, 1);

    // The work was in fact applied: reconciling finds exactly one contact.
    emu.state().set_faults(FaultProfile::default());
    let found = client
        .external_contacts()
        .lookup_by_identifier(&ContactIdentifier::new(
            IdentifierType::Email,
            "ada@example.com",
        ))
        .await
        .unwrap();
    assert_eq!(found.unwrap().first_name.as_deref(), Some("Ada"));
}

#[tokio::test]
async fn gateway_timeout_on_an_upsert_is_retried_and_never_duplicates() {
    let emu = emulator(faults(vec![{
        let mut r = rule(FaultKind::GatewayTimeoutApplied, 1.0);
        r.methods = vec!["POST".into()];
        r.paths = vec!["/api/v2/outbound/contactlists/*/contacts".into()];
        r
    }]))
    .await;
    let mut retry = fast_retry();
    retry.max_attempts = 3;
    let client = GenesysClient::new(config_for(&emu, retry)).await.unwrap();
    let list_id = new_list(&client, "upsert-504").await;
    let contacts = vec![contact(&list_id, "k1"), contact(&list_id, "k2")];
    let error = client
        .outbound()
        .add_contacts(&list_id, &contacts, AddContactsOptions::default())
        .await
        .unwrap_err();
    // Ids make the upsert idempotent: retried up to the cap, then still "outcome unknown".
    assert!(error.is_outcome_unknown(), "{error:?}");
    assert_eq!(route_count(&emu, ADD_ROUTE), 3);
    assert_eq!(list_ids_in_emulator(&emu, &list_id), vec!["k1", "k2"]);
}

// ---------------------------------------------------------------------------------------------
// Per-record errors of batch calls
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn add_contacts_names_the_rejected_record_and_isolating_rejects_only_it() {
    let emu = emulator(faults(vec![{
        let mut r = rule(FaultKind::RecordFailure, 0.05);
        r.statuses = Some(vec![400]);
        r.paths = vec!["/api/v2/outbound/contactlists/*/contacts".into()];
        r
    }]))
    .await;
    let client = client_for(&emu).await;
    let list_id = new_list(&client, "rejects").await;
    let contacts: Vec<_> = (0..200)
        .map(|i| contact(&list_id, &format!("cust_{i:03}")))
        .collect();

    // The plain call fails as a whole and names a record of the batch.
    let error = client
        .outbound()
        .add_contacts(&list_id, &contacts, AddContactsOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(400));
    let named = error.rejected_entity_ids();
    assert_eq!(named.len(), 1, "{error}");
    assert!(named[0].starts_with("cust_"));
    assert!(list_ids_in_emulator(&emu, &list_id).is_empty(), "atomic");

    // The isolating call puts exactly the bad records aside and writes the rest.
    let report = client
        .outbound()
        .add_contacts_isolating(&list_id, contacts.clone(), AddContactsOptions::default())
        .await
        .unwrap();
    let rejected: HashSet<_> = report
        .rejected
        .iter()
        .map(|r| r.contact.id.clone().unwrap())
        .collect();
    assert!(rejected.contains(&named[0]));
    assert!(!rejected.is_empty() && rejected.len() < 40, "{rejected:?}");
    assert!(report.unconfirmed.is_empty());
    assert_eq!(report.accepted.len() + rejected.len(), 200);
    for r in &report.rejected {
        assert_eq!(r.error.code.as_deref(), Some("invalid.value"));
    }
    let stored = list_ids_in_emulator(&emu, &list_id);
    assert_eq!(stored.len(), report.accepted.len());
    assert!(stored.iter().all(|id| !rejected.contains(id)));
    // Rejects are deterministic per record: sending them alone fails again, each named.
    let again = client
        .outbound()
        .add_contacts(
            &list_id,
            &report.rejected[..1]
                .iter()
                .map(|r| r.contact.clone())
                .collect::<Vec<_>>(),
            AddContactsOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        again.rejected_entity_ids(),
        vec![report.rejected[0].contact.id.clone().unwrap()]
    );

    // An error about the request as a whole (unknown list) is not blamed on the contacts.
    let before = route_count(&emu, ADD_ROUTE);
    let error = client
        .outbound()
        .add_contacts_isolating("no-such-list", contacts, AddContactsOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(404));
    assert_eq!(route_count(&emu, ADD_ROUTE) - before, 1);
}

#[tokio::test]
async fn bulk_external_contact_results_are_parsed_per_entity() {
    let emu = emulator(faults(vec![{
        let mut r = rule(FaultKind::RecordFailure, 0.2);
        r.statuses = Some(vec![400]);
        r.paths = vec!["/api/v2/externalcontacts/bulk/**".into()];
        r
    }]))
    .await;
    let client = client_for(&emu).await;
    let mut contacts: Vec<_> = (0..30)
        .map(|i| ExternalContact {
            first_name: Some(format!("Person{i}")),
            work_email: Some(format!("p{i}@example.com")),
            ..ExternalContact::default()
        })
        .collect();
    // One invalid entity (an e-mail longer than 256 characters is invalid on the platform).
    contacts.push(ExternalContact {
        first_name: Some("Invalid".into()),
        work_email: Some(format!("{}@example.com", "x".repeat(300))),
        ..ExternalContact::default()
    });
    let results = client
        .external_contacts()
        .bulk_add(&contacts)
        .await
        .unwrap();
    assert!(!results.all_succeeded(), "a 200 with failures inside");
    assert_eq!(results.results.len(), 31);
    let error_count = results.error_count as usize;
    let parts = results.partition();
    assert_eq!(parts.rejected.len() + parts.retryable.len(), error_count);
    assert!(!parts.rejected.is_empty());
    assert!(
        parts.retryable.is_empty(),
        "4xx record failures are permanent"
    );
    assert_eq!(parts.succeeded.len() + error_count, 31);
    for failed in &parts.rejected {
        let error = failed.error.as_ref().unwrap();
        assert!(error.code.is_some() && error.message.is_some());
        // A failed add has no id: the echoed entity is how it is matched to the request.
        assert!(error.entity.is_some());
    }
    let created: Vec<String> = parts
        .succeeded
        .iter()
        .map(|r| r.id.clone().unwrap())
        .collect();

    // Fetch: per-entity results, unknown ids reported as not found.
    emu.state().set_faults(FaultProfile::default());
    let mut ids = created.clone();
    ids.push("no-such-contact".into());
    let fetched = client.external_contacts().bulk_fetch(&ids).await.unwrap();
    let parts = fetched.partition();
    assert_eq!(parts.succeeded.len(), created.len());
    assert_eq!(parts.rejected.len(), 1);
    assert_eq!(parts.rejected[0].id.as_deref(), Some("no-such-contact"));
    assert_eq!(parts.rejected[0].error.as_ref().unwrap().status, Some(404));

    // Update and remove with transient per-record failures: retryable, the rest applied.
    emu.state().set_faults(faults(vec![{
        let mut r = rule(FaultKind::RecordFailure, 0.3);
        r.statuses = Some(vec![503]);
        r.paths = vec!["/api/v2/externalcontacts/bulk/**".into()];
        r
    }]));
    let updates: Vec<ExternalContact> = created
        .iter()
        .map(|id| ExternalContact {
            id: Some(id.clone()),
            first_name: Some("Updated".into()),
            ..ExternalContact::default()
        })
        .collect();
    let updated = client
        .external_contacts()
        .bulk_update(&updates)
        .await
        .unwrap()
        .partition();
    assert!(!updated.retryable.is_empty(), "seeded 503s fired");
    assert!(updated.rejected.is_empty());
    assert_eq!(
        updated.succeeded.len() + updated.retryable.len(),
        created.len()
    );
    let removed = client
        .external_contacts()
        .bulk_remove(&created)
        .await
        .unwrap()
        .partition();
    assert_eq!(
        removed.succeeded.len() + removed.retryable.len(),
        created.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Typed endpoints round trip
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn outbound_endpoints_round_trip() {
    let emu = emulator(FaultProfile::default()).await;
    let client = client_for(&emu).await;
    let api = client.outbound();
    let list_id = new_list(&client, "round-trip").await;
    let fetched = api.get_contact_list(&list_id).await.unwrap();
    assert_eq!(fetched.name.as_deref(), Some("round-trip"));
    assert_eq!(fetched.column_names, vec!["phone", "email", "name"]);
    let page = api
        .list_contact_lists(&dedupd_genesys::ContactListQuery {
            name: Some("round-trip".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.entities.len(), 1);

    let mut batch: Vec<_> = (0..5)
        .map(|i| contact(&list_id, &format!("r{i}")))
        .collect();
    batch[0]
        .data
        .insert("email".into(), "one@example.com".into());
    let stored = api
        .add_contacts(&list_id, &batch, AddContactsOptions::default())
        .await
        .unwrap();
    assert_eq!(stored.len(), 5);
    // Upsert: the same ids again update, never duplicate.
    batch[1].data.insert("name".into(), "Changed".into());
    batch[2].callable = Some(false);
    api.add_contacts(&list_id, &batch, AddContactsOptions::default())
        .await
        .unwrap();
    assert_eq!(list_ids_in_emulator(&emu, &list_id).len(), 5);
    assert_eq!(
        api.get_contact(&list_id, "r1").await.unwrap().data["name"],
        "Changed"
    );
    assert_eq!(
        api.get_contact(&list_id, "r2").await.unwrap().callable,
        Some(false)
    );

    let bulk = api
        .get_contacts_bulk(&list_id, &["r3".into(), "r4".into(), "nope".into()])
        .await
        .unwrap();
    assert_eq!(bulk.len(), 2);
    let hits = api
        .search_by_column(&list_id, "email", "one@example.com")
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id.as_deref(), Some("r0"));

    api.delete_contact(&list_id, "r4").await.unwrap();
    api.delete_contacts(&list_id, &["r2".into(), "r3".into()])
        .await
        .unwrap();
    assert_eq!(list_ids_in_emulator(&emu, &list_id), vec!["r0", "r1"]);
    let missing = api.get_contact(&list_id, "r4").await.unwrap_err();
    assert_eq!(missing.status().map(|s| s.as_u16()), Some(404));
    api.delete_contact_list(&list_id).await.unwrap();
    assert!(emu.state().contact_list_contacts(&list_id).is_none());
}

#[tokio::test]
async fn external_contact_endpoints_round_trip() {
    let emu = emulator(FaultProfile::default()).await;
    let client = client_for(&emu).await;
    let api = client.external_contacts();
    let mut ids = Vec::new();
    for i in 0..25 {
        let created = api
            .create(&ExternalContact {
                first_name: Some(format!("Scan{i}")),
                last_name: Some("Tester".into()),
                cell_phone: Some(PhoneNumber::e164(format!("+1415555{i:04}"))),
                ..ExternalContact::default()
            })
            .await
            .unwrap();
        ids.push(created.id.unwrap());
    }
    // Scan: every contact exactly once, over several cursor pages.
    let pages: Vec<Vec<ExternalContact>> = api
        .scan(10, None)
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    assert!(pages.len() >= 3);
    let scanned: HashSet<String> = pages.into_iter().flatten().map(|c| c.id.unwrap()).collect();
    assert_eq!(scanned, ids.iter().cloned().collect());

    let found = api
        .search(&SearchQuery {
            q: Some("Scan7".into()),
            ..SearchQuery::default()
        })
        .await
        .unwrap();
    assert!(
        found
            .entities
            .iter()
            .any(|c| c.id.as_deref() == Some(ids[7].as_str()))
    );

    let patched = api
        .patch(
            &ids[0],
            &[PatchChange {
                field: "$.title".into(),
                value: Some(serde_json::json!("Dr")),
                action: PatchAction::Update,
            }],
        )
        .await
        .unwrap();
    assert_eq!(patched.title.as_deref(), Some("Dr"));
    let mut full = api.get(&ids[1]).await.unwrap();
    full.personal_email = Some("scan1@example.com".into());
    let updated = api.update(&full).await.unwrap();
    assert_eq!(updated.personal_email.as_deref(), Some("scan1@example.com"));
    let by_phone = api
        .lookup_by_identifier(&ContactIdentifier::new(
            IdentifierType::Phone,
            "+14155550002",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_phone.id.as_deref(), Some(ids[2].as_str()));
    assert!(
        api.lookup_by_identifier(&ContactIdentifier::new(IdentifierType::Email, "nobody@x.y"))
            .await
            .unwrap()
            .is_none()
    );

    let merged = api
        .merge(&[ids[3].clone(), ids[4].clone()], None)
        .await
        .unwrap();
    let merged_id = merged.id.clone().unwrap();
    assert!(!ids.contains(&merged_id), "a merge creates a new contact");
    assert_eq!(
        api.get(&ids[3]).await.unwrap().id.as_deref(),
        Some(merged_id.as_str()),
        "a merged-away id resolves to the canonical contact"
    );
    let original = api.get_unresolved(&ids[3]).await.unwrap();
    assert_eq!(original.id.as_deref(), Some(ids[3].as_str()));
    assert_eq!(
        original.merged_to.and_then(|r| r.id).as_deref(),
        Some(merged_id.as_str())
    );
    let too_few = api.merge(&[ids[5].clone()], None).await.unwrap_err();
    assert!(matches!(too_few, Error::InvalidRequest(_)));

    api.delete(&ids[6]).await.unwrap();
    assert_eq!(
        api.get(&ids[6])
            .await
            .unwrap_err()
            .status()
            .map(|s| s.as_u16()),
        Some(404)
    );
}

#[tokio::test]
async fn inbound_message_and_participant_attributes_round_trip() {
    let emu = emulator(FaultProfile::default()).await;
    let client = client_for(&emu).await;
    let api = client.conversations();
    let message = OpenInboundMessage {
        channel: OpenInboundChannel {
            from: OpenMessagingFrom {
                id: "+14155552671".into(),
                id_type: OpenIdType::Phone,
                nickname: Some("Ann".into()),
                first_name: None,
                last_name: None,
                email: None,
                image: None,
            },
            time: chrono::Utc::now(),
            message_id: Some("m-1".into()),
            metadata: None,
        },
        text: Some("Where is my order?".into()),
        content: Vec::new(),
        metadata: None,
    };
    let sent = api
        .send_inbound_open_message("integration-1", &message, true)
        .await
        .unwrap();
    let conversation_id = sent.conversation_id.unwrap();
    let conversation = api.get(&conversation_id).await.unwrap();
    let customer = conversation
        .participant_with_purpose("customer")
        .expect("a customer participant")
        .id
        .clone()
        .unwrap();
    let attributes = BTreeMap::from([("dedupd.duplicates".to_owned(), "2".to_owned())]);
    api.set_participant_attributes(&conversation_id, &customer, &attributes)
        .await
        .unwrap();
    let after = api.get(&conversation_id).await.unwrap();
    assert_eq!(
        after
            .participant_with_purpose("customer")
            .unwrap()
            .attributes["dedupd.duplicates"],
        "2"
    );
    assert_eq!(
        route_count(&emu, "GET /api/v2/conversations/{conversationId}"),
        2
    );
}

// ---------------------------------------------------------------------------------------------
// Rate budget
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_at_the_emulators_limit_sees_no_429() {
    // Budget and emulator limit equal (3000/min); 16 workers pushing as hard as they can.
    let mut config = emulator_config(FaultProfile::default());
    config.rate_limit_per_minute = 3000;
    let emu = RunningEmulator::start(config).await.unwrap();
    let mut client_config = config_for(&emu, fast_retry());
    client_config.requests_per_minute = 3000;
    let client = GenesysClient::new(client_config).await.unwrap();
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    client
                        .outbound()
                        .list_contact_lists(&Default::default())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let stats = client.stats();
    assert_eq!(stats.api_calls, 80);
    assert_eq!(stats.rate_limited, 0);
    assert_eq!(emu.state().stats().too_many_requests_sent, 0);
    assert!(stats.budget_waits > 0, "the budget paced the workers");
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A Redis budget, or `None` (test skipped) when Redis is unreachable outside CI.
async fn redis_budget(key: &str, rpm: u32) -> Option<RateBudget> {
    match RateBudget::redis(&redis_url(), key, rpm).await {
        Ok(budget) => Some(budget),
        Err(error) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("Redis is required under CI=true ({}): {error}", redis_url())
        }
        Err(error) => {
            eprintln!(
                "note: skipping the Redis rate-budget test, Redis unreachable at {}: {error}",
                redis_url()
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_sharing_a_redis_budget_stay_within_one_budget() {
    const RPM: u32 = 600; // one request per ~102 ms
    const RUN: Duration = Duration::from_secs(3);
    const WORKERS: u64 = 4;
    let key = format!(
        "dedupd-test:{{budget-{:016x}}}:gcra",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            ^ u64::from(std::process::id())
    );
    // Two "processes": separate OAuth clients (so separate tokens), separate Redis connections,
    // separate clients; only the Redis key is shared.
    let (Some(budget_a), Some(budget_b)) =
        (redis_budget(&key, RPM).await, redis_budget(&key, RPM).await)
    else {
        return;
    };
    let emu = emulator(FaultProfile::default()).await;
    let client_a = GenesysClient::with_budget(config_for(&emu, fast_retry()), budget_a).unwrap();
    let mut config_b = config_for(&emu, fast_retry());
    config_b.client_id = OTHER_CLIENT_ID.to_owned();
    config_b.client_secret = SecretString::from(OTHER_CLIENT_SECRET);
    let client_b = GenesysClient::with_budget(config_b, budget_b).unwrap();
    client_a.authenticate().await.unwrap();
    client_b.authenticate().await.unwrap();

    let started = Instant::now();
    let mut workers = Vec::new();
    for client in [&client_a, &client_b] {
        for _ in 0..WORKERS {
            let client = client.clone();
            workers.push(tokio::spawn(async move {
                while started.elapsed() < RUN {
                    client
                        .outbound()
                        .list_contact_lists(&Default::default())
                        .await
                        .unwrap();
                }
            }));
        }
    }
    for worker in workers {
        worker.await.unwrap();
    }

    // Clean up before asserting, so a failure leaves nothing behind.
    let mut cleanup = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut cleanup)
        .await
        .unwrap();

    let (a, b) = (client_a.stats().api_calls, client_b.stats().api_calls);
    let stats = emu.state().stats();
    assert_eq!(route_count(&emu, LISTS_ROUTE), a + b);
    assert_eq!(stats.tokens.len(), 2, "two processes, two tokens");
    // One shared budget over RUN: RUN / interval slots, plus the first (burst 1), plus at most
    // one reservation per worker still outstanding when RUN ended. Two independent budgets
    // would allow about twice the slots.
    let slots = (RUN.as_secs_f64() / dedupd_genesys::emission_interval(RPM).as_secs_f64()) as u64;
    let ceiling = slots + 1 + 2 * WORKERS;
    assert!(a + b <= ceiling, "{a} + {b} requests > {ceiling}");
    assert!(a > 0 && b > 0, "both processes got a share: {a} / {b}");
    assert!(
        a + b >= slots / 2,
        "the shared budget is used: {a} + {b} of {slots}"
    );
}
