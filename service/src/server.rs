//! Serving with a graceful, bounded shutdown, and bounded against slow, silent or hostile
//! clients.
//!
//! Expected flow: `shutdown` resolves (SIGTERM/SIGINT in production, anything in tests) → the
//! listener stops accepting → in-flight requests finish, for at most `grace` → [`serve`] returns.
//! Telemetry is flushed by the caller afterwards, so every answered request's span is exported.
//!
//! Guarantees, whatever protocol a client speaks (HTTP/1, HTTP/2, or nothing at all):
//! - **A first request within [`Limits::header_read_timeout`]**: a connection that has not
//!   delivered one complete request head by then is closed — a socket that sends nothing, a
//!   partial HTTP/2 preface, an HTTP/2 handshake without a request, a trickled HTTP/1 head.
//!   Later HTTP/1 heads have the same limit (hyper's header read timeout).
//! - **An idle limit** ([`Limits::idle_timeout`]): a connection with no request in flight for
//!   that long is closed (HTTP/2: after a GOAWAY, and outright if it still lingers
//!   [`CLOSE_AFTER_GOAWAY`] later). HTTP/2 peers that stop answering keep-alive pings are closed
//!   too.
//! - **The connection cap cannot be held by clients that say nothing**: at most
//!   [`Limits::max_connections`] connections are open (kept below the file-descriptor limit, so
//!   `accept` never fails for lack of descriptors). When all are taken, the oldest connection
//!   that has not sent a request yet is closed to make room, so a client that speaks at once
//!   (the kubelet's probe of `/health`) is served even while thousands of silent sockets arrive.
//!   Only when every open connection has sent a request does a new one wait in the backlog.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tower::Service;

/// Bounds on what clients can hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest a client may take to deliver a request head: the first one after connecting
    /// (whatever the protocol), and each later HTTP/1 one.
    pub header_read_timeout: Duration,
    /// The longest a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: default_max_connections(),
        }
    }
}

/// Longer than the idle timeout of the load balancers in front of a service (AWS ALB: 60 s),
/// so that they, not we, close an idle connection: no request is sent into one we just closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);

/// After a graceful close (an idle HTTP/2 connection got GOAWAY), how long it may linger
/// before it is closed outright (a client that never reads what it asked for).
pub const CLOSE_AFTER_GOAWAY: Duration = Duration::from_secs(5);

/// HTTP/2 keep-alive: a ping after this much silence, and the connection is closed if the
/// answer takes longer than [`H2_PING_TIMEOUT`].
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams one HTTP/2 connection may have open at once.
const H2_MAX_STREAMS: u32 = 128;

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
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT)
        .max_concurrent_streams(H2_MAX_STREAMS);
    let builder = Arc::new(builder);
    let max = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let silent = Arc::new(Silent::default());
    let (stopping, stop_rx) = watch::channel(false);
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                // Full: make room by closing the oldest connection that has said nothing.
                silent.evict_oldest();
                tokio::select! {
                    slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // A reset before accept, or out of descriptors: pause, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        next_id += 1;
        let state = Arc::new(ConnState::new(next_id));
        let evicted = silent.add(next_id);
        let service = make.call(peer).await.unwrap_or_else(|e| match e {});
        let service = Tracked {
            inner: service,
            state: state.clone(),
            silent: silent.clone(),
        };
        let service = hyper_util::service::TowerToHyperService::new(service);
        let builder = builder.clone();
        let stop_rx = stop_rx.clone();
        let silent = silent.clone();
        tokio::spawn(async move {
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let close = |c: Pin<&mut _>| auto::Connection::graceful_shutdown(c);
            drive(connection, close, &state, &evicted, stop_rx, limits).await;
            silent.remove(state.id);
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!(
        grace_s = grace.as_secs_f64(),
        "shutting down: finishing in-flight requests"
    );
    let _ = stopping.send(true);
    // Every connection gives its slot back when it ends: all of them back means all ended.
    let all_closed = slots.acquire_many(u32::try_from(max).unwrap_or(u32::MAX));
    tokio::select! {
        _ = all_closed => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_s = grace.as_secs_f64(), "in-flight requests did not finish in time; stopping anyway");
        }
    }
    Ok(())
}

/// What a connection is doing, kept by its service ([`Tracked`]) and read by its watchdog.
#[derive(Debug)]
struct ConnState {
    id: u64,
    opened: Instant,
    /// Whether a complete request head has arrived.
    spoke: AtomicBool,
    /// Whether it speaks HTTP/2 (known from its first request).
    http2: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` at which the last request finished (or started).
    last_activity_ms: AtomicU64,
}

impl ConnState {
    fn new(id: u64) -> Self {
        Self {
            id,
            opened: Instant::now(),
            spoke: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_activity_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity_ms.store(ms, Ordering::Relaxed);
    }

    /// When the connection must be looked at next, or what is wrong with it now.
    fn check(&self, now: Instant, limits: &Limits) -> Check {
        if !self.spoke.load(Ordering::Acquire) {
            let deadline = self.opened + limits.header_read_timeout;
            return if now >= deadline {
                Check::Silent
            } else {
                Check::Later(deadline)
            };
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Check::Later(now + limits.idle_timeout);
        }
        let last =
            self.opened + Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed));
        let deadline = last + limits.idle_timeout;
        if now >= deadline {
            Check::Idle
        } else {
            Check::Later(deadline)
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Check {
    Later(Instant),
    /// No complete request head in time.
    Silent,
    /// No request in flight for the idle timeout.
    Idle,
}

/// Runs one connection under its watchdog until it ends, is evicted, or is closed for silence
/// or idleness; on shutdown, lets it finish gracefully.
async fn drive<C: Future>(
    connection: C,
    graceful_shutdown: impl Fn(Pin<&mut C>),
    state: &ConnState,
    evicted: &Notify,
    mut stopping: watch::Receiver<bool>,
    limits: Limits,
) {
    tokio::pin!(connection);
    // The first look: at the head deadline, or sooner if the idle limit is shorter (each look
    // computes the next from what the connection did, so requests need not wake it).
    let mut next_check = state.opened + limits.header_read_timeout.min(limits.idle_timeout);
    let mut closing_since: Option<Instant> = None;
    let close_gracefully = |connection: Pin<&mut C>, since: &mut Option<Instant>| {
        if since.is_none() {
            graceful_shutdown(connection);
            *since = Some(Instant::now());
        }
    };
    loop {
        let stop_requested = *stopping.borrow();
        if stop_requested {
            close_gracefully(connection.as_mut(), &mut closing_since);
        }
        tokio::select! {
            _ = connection.as_mut() => return,
            () = evicted.notified() => {
                tracing::debug!(connection = state.id, "closed to make room: no request yet");
                return;
            }
            changed = stopping.changed(), if !stop_requested => {
                if changed.is_err() {
                    // The server is gone: nothing will wait for this connection.
                    return;
                }
            }
            () = tokio::time::sleep_until(next_check.into()) => {
                if let Some(since) = closing_since {
                    if !stop_requested && since.elapsed() >= CLOSE_AFTER_GOAWAY {
                        return;
                    }
                    next_check = since + CLOSE_AFTER_GOAWAY;
                    if stop_requested {
                        // The server's grace period bounds this one.
                        next_check = Instant::now() + Duration::from_secs(3600);
                    }
                    continue;
                }
                match state.check(Instant::now(), &limits) {
                    Check::Later(at) => next_check = at,
                    Check::Silent => {
                        tracing::debug!(connection = state.id, "closed: no request head in time");
                        return;
                    }
                    Check::Idle if state.http2.load(Ordering::Acquire) => {
                        // GOAWAY: the client opens no new stream here, and none is cut off.
                        tracing::debug!(connection = state.id, "closing: idle (GOAWAY)");
                        close_gracefully(connection.as_mut(), &mut closing_since);
                        next_check = Instant::now() + CLOSE_AFTER_GOAWAY;
                    }
                    Check::Idle => {
                        // HTTP/1 with no request in flight: nothing to finish.
                        tracing::debug!(connection = state.id, "closed: idle");
                        return;
                    }
                }
            }
        }
    }
}

/// Connections that have not delivered a request yet, oldest first, each with the signal
/// that closes it.
#[derive(Debug, Default)]
struct Silent {
    open: Mutex<BTreeMap<u64, Arc<Notify>>>,
}

impl Silent {
    fn add(&self, id: u64) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, notify.clone());
        }
        notify
    }

    fn remove(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
    }

    /// Closes the oldest connection that has not sent a request, if there is one.
    fn evict_oldest(&self) {
        let oldest = self.open.lock().ok().and_then(|mut open| open.pop_first());
        if let Some((_, notify)) = oldest {
            notify.notify_one();
        }
    }
}

/// The per-connection service, noting requests for the watchdog.
#[derive(Debug, Clone)]
struct Tracked<S> {
    inner: S,
    state: Arc<ConnState>,
    silent: Arc<Silent>,
}

impl<S, B> Service<http::Request<B>> for Tracked<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if !self.state.spoke.swap(true, Ordering::AcqRel) {
            self.silent.remove(self.state.id);
            let http2 = request.version() == http::Version::HTTP_2;
            self.state.http2.store(http2, Ordering::Release);
        }
        self.state.in_flight.fetch_add(1, Ordering::AcqRel);
        self.state.touch();
        TrackedFuture {
            inner: self.inner.call(request),
            _guard: InFlight(self.state.clone()),
        }
    }
}

/// Counts a request as in flight until its response is ready (or the request is dropped).
#[derive(Debug)]
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

pin_project_lite::pin_project! {
    #[derive(Debug)]
    struct TrackedFuture<F> {
        #[pin]
        inner: F,
        _guard: InFlight,
    }
}

impl<F: Future> Future for TrackedFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10,
        }
    }

    #[test]
    fn a_connection_must_speak_within_the_head_timeout() {
        let s = ConnState::new(1);
        let l = limits();
        assert_eq!(
            s.check(s.opened, &l),
            Check::Later(s.opened + l.header_read_timeout)
        );
        assert_eq!(s.check(s.opened + l.header_read_timeout, &l), Check::Silent);
    }

    #[test]
    fn a_busy_connection_is_never_idle_and_a_quiet_one_is() {
        let s = ConnState::new(1);
        let l = limits();
        s.spoke.store(true, Ordering::Release);
        s.in_flight.store(1, Ordering::Release);
        let much_later = s.opened + Duration::from_secs(600);
        assert!(matches!(s.check(much_later, &l), Check::Later(_)));
        s.in_flight.store(0, Ordering::Release);
        assert_eq!(s.check(much_later, &l), Check::Idle);
        assert!(matches!(s.check(s.opened, &l), Check::Later(_)));
    }

    #[test]
    fn the_oldest_silent_connection_goes_first() {
        let silent = Silent::default();
        let (a, b) = (silent.add(1), silent.add(2));
        silent.remove(1);
        silent.evict_oldest();
        let fired = |n: &Notify| {
            let f = n.notified();
            tokio::pin!(f);
            f.as_mut().enable()
        };
        assert!(!fired(&a), "1 spoke: not evicted");
        assert!(fired(&b));
    }
}
