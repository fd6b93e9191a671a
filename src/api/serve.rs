//! The listener: accepts connections within the connection limits, serves each with hyper
//! (HTTP/1.1, and HTTP/2 with prior knowledge), closes connections that send no request
//! head for `api.idle_timeout`, and shuts down gracefully.
//!
//! With `[tls]` set ([`tls`]), every connection is HTTPS: the handshake is part of the
//! first head's `api.idle_timeout`, and ALPN picks HTTP/2 or HTTP/1.1. A failed handshake
//! (plain HTTP, no or an untrusted client certificate) closes that connection alone.
//!
//! Each connection gets the router as it was built once (a clone is a reference count),
//! with the client's address attached to every request for the per-client watch limits.

pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tower::util::MapRequest;
use tower::ServiceExt;

use super::limits::{self, Occupancy};
use crate::config::ApiConfig;
use crate::telemetry::Metrics;

/// How long a refused connection may take to send the request it is refused on.
const REFUSED_GRACE: Duration = Duration::from_secs(1);
/// Refused connections being answered at once, at most. Each is held until its client
/// sends a request (up to [`REFUSED_GRACE`]); beyond this many, a refused connection is
/// closed without an answer, so a flood of connections beyond the limits cannot hold
/// the server's file descriptors through the grace.
const MAX_REFUSING: usize = 128;
/// A failed accept (out of file descriptors, say) is retried after this pause rather
/// than in a hot loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `shutdown` completes, then waits for open
/// connections to finish their requests. With `tls` (from [`tls::server_config`]) every
/// connection is HTTPS.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    api: &ApiConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let tls = tls.map(TlsAcceptor::from);
    let connections = Occupancy::new(api.max_connections, api.max_connections_per_client);
    let builders = Arc::new(Builders::new(api.idle_timeout));
    let refusing = Arc::new(refusing_builder());
    let refusing_slots = Arc::new(Semaphore::new(MAX_REFUSING));
    let graceful = GracefulShutdown::new();
    // Tells connections that have not sent their first bytes yet (so hyper does not
    // serve them, and its graceful shutdown cannot close them) to close at once.
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "Cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let client = limits::client_of(peer.ip());
        match connections.try_hold(client) {
            Ok(held) => {
                let asked = Arc::new(AtomicBool::new(false));
                let first_head = asked.clone();
                let service = router.clone().map_request(move |mut request: Request<_>| {
                    first_head.store(true, Ordering::Relaxed);
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
                let open = (held, metrics.connections.park());
                let admitted = Admitted {
                    service,
                    builders: builders.clone(),
                    watcher: graceful.watcher(),
                    asked,
                    peer,
                };
                let idle_timeout = api.idle_timeout;
                let mut stopped = stopped.clone();
                // One task type per transport, so a plain connection's task is no bigger
                // for TLS being possible.
                match &tls {
                    None => {
                        tokio::spawn(async move {
                            let _open = open;
                            let deadline = Instant::now() + idle_timeout;
                            let first = speaks_http2(&stream, deadline);
                            let Some(Some(http2)) = until_stopped(&mut stopped, first).await else {
                                return;
                            };
                            admitted.serve(stream, http2, deadline).await;
                        });
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            let _open = open;
                            let deadline = Instant::now() + idle_timeout;
                            let shaken = handshake(&acceptor, stream, deadline, peer);
                            let Some(Some(stream)) = until_stopped(&mut stopped, shaken).await
                            else {
                                return;
                            };
                            // ALPN rather than a peek: what follows the handshake is
                            // encrypted. A client that offered no ALPN speaks HTTP/1.1.
                            let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            admitted.serve(stream, http2, deadline).await;
                        });
                    }
                }
            }
            Err(refusal) => {
                metrics.refused(limits::CONNECTIONS.label, refusal.scope());
                tracing::debug!(%peer, scope = refusal.scope(), "Connection refused by a limit");
                // Without a slot, dropping the stream closes it: the client sees the
                // connection closed instead of a problem document.
                if let Ok(slot) = refusing_slots.clone().try_acquire_owned() {
                    let problem = limits::CONNECTIONS.refused(refusal, &connections);
                    let answer = problem.into_response();
                    let refusing = refusing.clone();
                    match &tls {
                        None => {
                            tokio::spawn(async move {
                                refuse(stream, refusing, answer).await;
                                drop(slot);
                            });
                        }
                        // The handshake is completed (within the grace) so the client
                        // reads why it is refused rather than a reset; the slot bounds
                        // how many such handshakes run at once.
                        Some(acceptor) => {
                            let acceptor = acceptor.clone();
                            tokio::spawn(async move {
                                let deadline = Instant::now() + REFUSED_GRACE;
                                if let Some(stream) =
                                    handshake(&acceptor, stream, deadline, peer).await
                                {
                                    refuse(stream, refusing, answer).await;
                                }
                                drop(slot);
                            });
                        }
                    }
                }
            }
        }
    }
    drop(listener);
    let _ = stopping.send(true);
    graceful.shutdown().await;
}

/// `work`'s result, or `None` once shutdown began: a connection still opening (no first
/// bytes, or a TLS handshake) is closed then rather than held until its idle timeout.
async fn until_stopped<T>(
    stopped: &mut tokio::sync::watch::Receiver<bool>,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        done = work => Some(done),
        _ = stopped.wait_for(|stop| *stop) => None,
    }
}

/// An admitted connection's service and what serving it takes, whatever carries its
/// bytes (a TCP stream, or TLS over one).
struct Admitted<F> {
    service: MapRequest<Router, F>,
    builders: Arc<Builders>,
    watcher: Watcher,
    /// Set by the service when the first request head arrives.
    asked: Arc<AtomicBool>,
    peer: SocketAddr,
}

impl<F> Admitted<F>
where
    F: FnMut(Request<Incoming>) -> Request<Incoming> + Clone + Send + Sync + 'static,
{
    /// Serves `io` with the HTTP/2 or the HTTP/1.1 builder until the connection ends, or
    /// until `deadline` when no request head came by then.
    async fn serve<I>(self, io: I, http2: bool, deadline: Instant)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Admitted {
            service,
            builders,
            watcher,
            asked,
            peer,
        } = self;
        let builder = if http2 {
            &builders.http2
        } else {
            &builders.http1
        };
        let connection =
            builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        let connection = watcher.watch(connection);
        let mut connection = std::pin::pin!(connection);
        // hyper's header timeout starts when it starts serving, which is once the first
        // bytes came: without this, a client that sends them just before the deadline
        // would get twice the idle timeout for its first head. (HTTP/2 has no header
        // timeout: this is its only one.)
        let ended = tokio::select! {
            ended = &mut connection => ended,
            () = tokio::time::sleep_until(deadline) => {
                if !asked.load(Ordering::Relaxed) {
                    tracing::debug!(%peer, "No request head within the idle timeout");
                    return;
                }
                connection.await
            }
        };
        if let Err(err) = ended {
            tracing::debug!(error = %err, %peer, "Connection ended with an error");
        }
    }
}

/// The TLS handshake of a connection, given up at `deadline`; `None` (logged at debug)
/// when it fails or takes too long. Either way only this connection is closed.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    deadline: Instant,
    peer: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(err)) => {
            tracing::debug!(error = %err, %peer, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "No TLS handshake in time");
            None
        }
    }
}

/// The builders admitted connections are served with, one per protocol. The protocol is
/// known before hyper starts (see [`speaks_http2`]), because hyper's own detection hands
/// the connection over with the bytes it read aside, which makes HTTP/1.1 grow its read
/// buffer to 16 KiB on every connection: twice what a parked watcher needs.
struct Builders {
    http1: Builder<TokioExecutor>,
    http2: Builder<TokioExecutor>,
}

impl Builders {
    fn new(idle_timeout: Duration) -> Builders {
        let mut http1 = Builder::new(TokioExecutor::new()).http1_only();
        http1
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(idle_timeout);
        let mut http2 = Builder::new(TokioExecutor::new()).http2_only();
        http2.http2().timer(TokioTimer::new());
        Builders { http1, http2 }
    }
}

/// Whether the client opens with the HTTP/2 preface (`PRI * HTTP/2.0`), read without
/// consuming it; `None` when it closes or sends nothing before `deadline` (hyper's own
/// header timeout starts only once it serves the connection).
async fn speaks_http2(stream: &TcpStream, deadline: Instant) -> Option<bool> {
    const PREFACE: &[u8] = b"PRI";
    let mut start = [0u8; 3];
    loop {
        let read = tokio::time::timeout_at(deadline, stream.peek(&mut start)).await;
        let n = read.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        if start[..n] != PREFACE[..n] {
            return Some(false);
        }
        if n == PREFACE.len() {
            return Some(true);
        }
        // A first byte or two of the preface: the rest is on its way, and a peek would
        // answer at once with the same bytes.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The builder refused connections are answered with: one response, then closed.
fn refusing_builder() -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(REFUSED_GRACE)
        .keep_alive(false);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// Answers every request on a refused connection with `answer`'s status, headers and
/// body, then closes it; a client that sends nothing is dropped after
/// [`REFUSED_GRACE`].
async fn refuse<I>(io: I, builder: Arc<Builder<TokioExecutor>>, answer: axum::response::Response)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (parts, body) = answer.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let service = tower::service_fn(move |_request: Request<hyper::body::Incoming>| {
        let response = axum::response::Response::from_parts(
            parts.clone(),
            axum::body::Body::from(body.clone()),
        );
        async move { Ok::<_, std::convert::Infallible>(response) }
    });
    let connection = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    let _ = tokio::time::timeout(REFUSED_GRACE * 2, connection).await;
}
