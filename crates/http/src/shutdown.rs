//! The one shutdown signal of every dedupd service: SIGTERM (what a container runtime or
//! systemd sends) or Ctrl-C (SIGINT at a terminal).

/// Resolves on the first SIGTERM or Ctrl-C (on platforms without Unix signals, on Ctrl-C).
///
/// A signal whose handler cannot be installed is logged and never fires; the other still
/// does, so the service does not stop the moment it starts, nor lose the signal that works.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "Cannot listen for Ctrl-C; only SIGTERM stops the service.");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot listen for SIGTERM; only Ctrl-C stops the service.");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    // A real SIGTERM to this process: the handler installed by `shutdown_signal` takes it (the
    // default action, ending the test binary, is replaced once a handler is registered).
    #[tokio::test]
    async fn sigterm_resolves_it() {
        let mut signal = std::pin::pin!(shutdown_signal());
        // Poll once so both handlers are installed before the signal is sent.
        assert!(poll_once(signal.as_mut()).await.is_none());
        let pid = std::process::id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        signal.await;
    }

    async fn poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
