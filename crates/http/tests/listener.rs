//! The server's bounds over real sockets: a flood of connections that never finish their
//! headers takes every slot, health checks still answer from the reserve, other requests there
//! get a 503 at once, and the server closes the partial connections after the header timeout.
//! No sleeps: every wait is on a condition (an answer, or the server closing the socket).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use dedupd_http::{Limits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(
    limits: Limits,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/work", get(|| async { "done" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serve(listener, app, limits, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (addr, stop, task)
}

/// Sends a whole request and reads the answer to the end (the server closes after it).
async fn request(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Opens a connection that sends half a request head and stops.
async fn partial(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /work HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .await
        .unwrap();
    s
}

/// Waits until the server closes `s` (a read returns 0, or the peer reset it).
async fn closed_by_server(mut s: TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_headers_past_the_cap_leave_health_checks_answering_and_are_closed() {
    let limits = Limits {
        header_timeout: Duration::from_millis(500),
        max_connections: 8,
        reserve: 4,
        reserve_header_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let (addr, stop, task) = start(limits).await;
    // Every regular slot, plus one reserve slot, held by connections that never finish.
    let mut held = Vec::new();
    for _ in 0..9 {
        held.push(partial(&addr).await);
    }
    let health = request(&addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok"), "{health}");
    let work = request(&addr, "/work").await;
    assert!(work.starts_with("HTTP/1.1 503"), "{work}");
    assert!(
        work.to_ascii_lowercase().contains("retry-after: 1"),
        "{work}"
    );
    assert!(work.contains("\"overloaded\""), "{work}");
    // The server closes every partial connection once its header timeout passes.
    for s in held {
        closed_by_server(s).await;
    }
    // And the slots are free again (a slot returns a moment after its socket closes: until
    // then the answer is the reserve's 503, which asks to retry).
    let work = loop {
        let work = request(&addr, "/work").await;
        if !work.starts_with("HTTP/1.1 503") {
            break work;
        }
    };
    assert!(work.starts_with("HTTP/1.1 200"), "{work}");
    assert!(work.ends_with("done"), "{work}");
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_returns() {
    let (addr, stop, task) = start(Limits::default()).await;
    assert!(request(&addr, "/work").await.starts_with("HTTP/1.1 200"));
    stop.send(()).unwrap();
    task.await.unwrap();
    assert!(
        TcpStream::connect(&addr).await.is_err(),
        "the listener is closed"
    );
}
