//! The accept loop: HTTP/1.1 connections served by hyper, each in a task of one `JoinSet`,
//! so stopping can drop every open connection at once (in-flight requests, parked blocking
//! queries included, see a broken connection, as with a crashed agent). axum's `serve`
//! cannot do that: it only shuts down gracefully.
//!
//! The listening socket sets `SO_REUSEADDR`, so `resume` can bind the same port again while
//! the connections dropped by `stop` sit in `TIME_WAIT`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// How long `rebind` keeps trying while something else holds the port.
const REBIND_DEADLINE: Duration = Duration::from_secs(5);

/// A listening server.
pub struct Running {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Binds `addr` with `SO_REUSEADDR`.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Binds `addr` again, retrying for a while if the port is taken meanwhile (the kernel may
/// have lent it to an outgoing connection while the double was stopped).
pub async fn rebind(addr: SocketAddr) -> io::Result<TcpListener> {
    let give_up = tokio::time::Instant::now() + REBIND_DEADLINE;
    loop {
        match bind(addr) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                if tokio::time::Instant::now() >= give_up {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

impl Running {
    /// Starts accepting on `listener`; connections are served by `router`.
    pub fn spawn(listener: TcpListener, router: Router) -> Running {
        let (shutdown, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, router, stopped));
        Running { shutdown, task }
    }

    /// Closes the listener and every connection, and returns once they are gone.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }

    /// `stop` for `Drop`, which cannot wait: aborting the loop drops its `JoinSet`, which
    /// aborts the connections.
    pub fn abort(self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, router: Router, mut stopped: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let service = TowerToHyperService::new(router.clone());
                    connections.spawn(async move {
                        let connection = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service);
                        if let Err(e) = connection.await {
                            tracing::debug!(error = %e, "Connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "Accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}
