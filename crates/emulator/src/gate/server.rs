//! The listener every emulator runs on: one port, a header-read timeout and a connection cap
//! (dedupd-http's, as `dedupd serve` uses), stopped by [`Listening::shutdown`] or on drop.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::EmulatorError;

/// A router served on a local port in a background task.
#[derive(Debug)]
pub(crate) struct Listening {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Listening {
    /// Binds `addr` (port 0 = ephemeral).
    pub(crate) async fn bind(
        addr: SocketAddr,
    ) -> Result<(tokio::net::TcpListener, SocketAddr), EmulatorError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        Ok((listener, local))
    }

    /// Serves `app` on `listener` until shut down.
    fn serve(
        listener: tokio::net::TcpListener,
        local: SocketAddr,
        app: Router,
        header_timeout: Duration,
        max_connections: usize,
    ) -> Listening {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let limits = dedupd_http::Limits {
                header_timeout,
                max_connections,
                reserve_paths: Vec::new(),
                ..dedupd_http::Limits::default()
            };
            let served = dedupd_http::serve(listener, app, limits, async {
                let _ = stopped.await;
            })
            .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "emulator server stopped with an error");
            }
        });
        Listening {
            addr: local,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT` (an unspecified bind address is shown as 127.0.0.1).
    pub(crate) fn base_url(&self) -> String {
        base_url_of(self.addr)
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish for up to 2 s, then stops the task
    /// (requests held by a `timeout` fault are cut).
    pub(crate) async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

/// What an emulator needs to start: its fault profile (checked first), listener limits, and
/// how to build its state and router once the base URL is known.
pub(crate) struct StartSpec<'a> {
    pub(crate) addr: SocketAddr,
    pub(crate) faults: &'a crate::config::FaultProfile,
    pub(crate) header_timeout: Duration,
    pub(crate) max_connections: usize,
    /// For the log line, e.g. "NICE CXone emulator".
    pub(crate) label: &'static str,
}

/// Checks the faults, binds, builds `(state, router)` with `build(base_url)` and serves.
pub(crate) async fn start<S>(
    spec: StartSpec<'_>,
    build: impl FnOnce(&str) -> (S, Router),
) -> Result<(Listening, S), EmulatorError> {
    spec.faults.validate()?;
    let (listener, local) = Listening::bind(spec.addr).await?;
    let (state, app) = build(&base_url_of(local));
    let server = Listening::serve(
        listener,
        local,
        app,
        spec.header_timeout,
        spec.max_connections,
    );
    tracing::info!(%local, "{} listening", spec.label);
    Ok((server, state))
}

/// `http://ADDR`, an unspecified bind address shown as 127.0.0.1.
pub(crate) fn base_url_of(mut addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        addr.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}

impl Drop for Listening {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
