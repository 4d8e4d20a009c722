//! Serving with a graceful, bounded shutdown, and bounded against slow or hostile clients.
//!
//! Expected flow: `shutdown` resolves (SIGTERM/SIGINT in production, anything in tests) → the
//! listener stops accepting → in-flight requests finish, for at most `grace` → [`serve`] returns.
//! Telemetry is flushed by the caller afterwards, so every answered request's span is exported.
//!
//! Guarantees against clients that never finish a request head (slowloris) or open many
//! connections: a request head must arrive within [`Limits::header_read_timeout`] or the
//! connection is closed; at most [`Limits::max_connections`] connections are open at once,
//! kept below the process's file-descriptor limit, so `accept` never fails for lack of
//! descriptors — a new connection (the kubelet's liveness probe, say) waits in the listen
//! backlog at worst until a slow one times out, instead of the whole server failing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Service;

/// Bounds on what clients can hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest a client may take to send a request head.
    pub header_read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            max_connections: default_max_connections(),
        }
    }
}

/// Descriptors kept free for everything else the process opens (exporter connections, logs).
const FD_RESERVE: u64 = 64;

/// 4096 connections, or fewer when the file-descriptor limit is lower (minus a reserve).
pub fn default_max_connections() -> usize {
    let fd_limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))?
                .split_whitespace()
                .nth(3)?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(1024);
    usize::try_from(fd_limit.saturating_sub(FD_RESERVE).clamp(16, 4096)).unwrap_or(4096)
}

/// Serves `app` until `shutdown` resolves and the in-flight requests are done (or `grace` ends).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    limits: Limits,
) -> std::io::Result<()> {
    let mut make = app.into_make_service_with_connect_info::<crate::observe::Peer>();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a reset before accept: pause, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = make.call(peer).await.unwrap_or_else(|e| match e {});
        let service = hyper_util::service::TowerToHyperService::new(service);
        let builder = builder.clone();
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Closed by a client, a timeout or an error: nothing to do but free the slot.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!(
        grace_s = grace.as_secs_f64(),
        "shutting down: finishing in-flight requests"
    );
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_s = grace.as_secs_f64(), "in-flight requests did not finish in time; stopping anyway");
        }
    }
    Ok(())
}

/// Resolves on SIGTERM (what Kubernetes and ECS send) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
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
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
