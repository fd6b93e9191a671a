//! A TCP proxy between Switchboard and etcd that a test can hold, cut and reopen: a
//! network partition on demand, with etcd itself still up for the test to write to. That
//! is how a test changes etcd (and compacts its history) while Switchboard provably
//! cannot see it, without racing Switchboard's reconnect backoff. Connections are closed
//! (`Cut`) or frozen (`Hold`), the two ways a real network fails.

use std::net::SocketAddr;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Pipe to etcd.
    Forward,
    /// Let no byte through, closing nothing: a new connection waits (a slow server) and
    /// starts forwarding when released; an open one freezes (a silent partition only
    /// keepalives notice) and is closed when the mode changes.
    Hold,
    /// Close every connection, open or new (a partition the client notices at once).
    Cut,
}

pub struct Proxy {
    port: u16,
    mode: watch::Sender<Mode>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// A proxy on a free port in front of `upstream` (`127.0.0.1:PORT`).
    pub async fn start(upstream: u16, mode: Mode) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (sender, receiver) = watch::channel(mode);
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream));
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, upstream, receiver.clone()));
            }
        });
        Proxy {
            port,
            mode: sender,
            accept,
        }
    }

    /// `http://127.0.0.1:PORT`, for a source's `endpoints`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set(Mode::Cut);
        self.accept.abort();
    }
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    loop {
        let now = *mode.borrow_and_update();
        match now {
            Mode::Forward => break,
            Mode::Cut => return,
            Mode::Hold => {
                if mode.changed().await.is_err() {
                    return;
                }
            }
        }
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let stopped = mode.wait_for(|m| *m != Mode::Forward);
    tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => return,
        _ = stopped => {}
    }
    // Frozen: both sockets stay open, unread and unwritten, until the mode changes.
    let _ = mode.wait_for(|m| *m != Mode::Hold).await;
}
