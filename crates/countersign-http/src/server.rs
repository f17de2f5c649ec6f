//! The connection loop: accept, serve each connection with HTTP/1.1 on its own task, stop
//! gracefully.
//!
//! Why not `axum::serve`: it serves HTTP/1 and HTTP/2 on every connection, so it first reads
//! each connection into an extra 8 KiB buffer to tell the two apart, and it rebuilds the
//! router's route table for every connection (≈ 6 KiB). An agent waiting for a decision holds
//! its connection open for minutes; at 10,000 waiting agents those two costs alone were
//! ≈ 150 MiB. Clients of this API speak HTTP/1.1 (long-polls and server-sent events included),
//! so this loop serves only that, and shares one built router among all connections.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a client may take to send a request's headers (and how long an idle keep-alive
/// connection stays open).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How long shutdown waits for requests in flight before closing their connections.
const DRAIN: Duration = Duration::from_secs(10);

/// A pause after a failed `accept` (for example too many open files), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight finish
/// (up to [`DRAIN`]).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // Build the route table once; each connection then clones an `Arc`.
    let app: Router = app.with_state(());
    let graceful = GracefulShutdown::new();
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http1.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN:?}; closing their connections");
    }
    Ok(())
}
