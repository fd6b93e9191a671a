//! A raw HTTP/1.1 client bound to a chosen loopback address, and readers of what the
//! limits answer and count.

use std::net::{Ipv4Addr, SocketAddr};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{TestServer, DEADLINE};

/// A TCP connection to the server from `from`, as a client on that address would make.
pub async fn connect_from(from: Ipv4Addr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(server).await
}

pub fn address(server: &TestServer) -> SocketAddr {
    server
        .base
        .strip_prefix("http://")
        .unwrap()
        .parse()
        .unwrap()
}

/// A GET request head. `Connection: close` makes the server close first once it has
/// answered, so the TIME_WAIT of thousands of short connections stays on the server's
/// side instead of using up the flooding address's ports.
pub fn get(path: &str, close: bool) -> Vec<u8> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!("GET {path} HTTP/1.1\r\nHost: switchboard\r\n{connection}\r\n").into_bytes()
}

/// A response head, with the body bytes read along with it.
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub rest: Vec<u8>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Reads a response head; `None` when the server closes before sending one.
pub async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Head>> {
    let mut buffer = Vec::with_capacity(1024);
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let mut lines = text.split("\r\n");
            let status = lines
                .next()
                .and_then(|line| line.split(' ').nth(1))
                .and_then(|code| code.parse().ok())
                .unwrap_or(0);
            let headers = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
                .collect();
            let rest = buffer[end + 4..].to_vec();
            return Ok(Some(Head {
                status,
                headers,
                rest,
            }));
        }
        if stream.read_buf(&mut buffer).await? == 0 {
            return Ok(None);
        }
    }
}

/// Checks a refusal as a client sees it: `status`, a `Retry-After` in seconds, a
/// problem document, and the connection closed after it. Returns the problem's `code`.
pub async fn refusal(stream: &mut TcpStream, head: Head, status: u16) -> Result<String, String> {
    if head.status != status {
        return Err(format!(
            "status {} where {status} was expected",
            head.status
        ));
    }
    let retry = head.header("retry-after").unwrap_or_default();
    if retry.parse::<u64>().map_or(true, |seconds| seconds == 0) {
        return Err(format!("Retry-After is {retry:?}"));
    }
    let kind = head.header("content-type").unwrap_or_default();
    if !kind.starts_with("application/problem+json") {
        return Err(format!("content type {kind:?}"));
    }
    let mut body = head.rest;
    // Read to the end: the refused connection (or the one asked to close) must be
    // closed by the server, not left open.
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut body))
        .await
        .map_err(|_| "the connection stayed open after the refusal".to_owned())?
        .map_err(|err| format!("reading the refusal: {err}"))?;
    let problem: Value = serde_json::from_slice(&body)
        .map_err(|err| format!("{err}: {}", String::from_utf8_lossy(&body)))?;
    if problem["status"] != status {
        return Err(format!("problem status in {problem}"));
    }
    Ok(problem["code"].as_str().unwrap_or_default().to_owned())
}

/// `switchboard_limit_refusals_total` for one limit and scope.
pub async fn refusals(server: &TestServer, limit: &str, scope: &str) -> f64 {
    let name = format!("switchboard_limit_refusals_total{{limit=\"{limit}\",scope=\"{scope}\"}}");
    server.metric(&name).await
}

/// Parked watches of all clients: blocking queries waiting and SSE streams open.
pub async fn parked(server: &TestServer) -> f64 {
    server.metric("switchboard_blocking_queries_waiting").await
        + server.metric("switchboard_watch_streams_open").await
}

/// Asks `path` on a new connection from `from` and returns the connection with the
/// response head. With `close`, the server closes the connection once it has answered.
pub async fn ask(from: Ipv4Addr, server: SocketAddr, path: &str, close: bool) -> (TcpStream, Head) {
    let mut stream = connect_from(from, server).await.unwrap();
    stream.write_all(&get(path, close)).await.unwrap();
    let head = tokio::time::timeout(DEADLINE, read_head(&mut stream))
        .await
        .expect("an answer before the deadline")
        .unwrap()
        .expect("an answer, not a closed connection");
    (stream, head)
}
