//! Failed HTTP requests to a registry (Consul, Nacos) as [`ConnectorError`]s: transport
//! failures are connection errors carrying their whole cause chain, 401/403 are auth
//! errors, 5xx are connection errors, anything else is a protocol error. Messages never
//! repeat the URL, whose query could hold a token.

use reqwest::StatusCode;

use crate::ConnectorError;

/// How much of an error body is read to take its excerpt from.
const READ_AT_MOST: usize = 4096;

/// A request that got no HTTP answer.
pub(crate) fn transport(registry: &str, err: reqwest::Error) -> ConnectorError {
    let what = if err.is_timeout() {
        format!("no answer from {registry} in time")
    } else if err.is_connect() {
        format!("cannot connect to {registry}")
    } else {
        format!("request to {registry} failed")
    };
    // The whole chain: the first cause alone is often just "client error (Connect)",
    // while the reason (a refused certificate, a reset) is further down.
    let causes = std::iter::successors(std::error::Error::source(&err), |e| e.source());
    let cause: String = causes.map(|e| format!(": {e}")).collect();
    ConnectorError::Connection(format!("{what}{cause}"))
}

/// An HTTP error status, with a short, cleaned excerpt of the registry's message (the
/// body is the server's to choose).
pub(crate) async fn status(
    registry: &str,
    status: StatusCode,
    mut response: reqwest::Response,
) -> ConnectorError {
    // Only the start is shown, so only the start is read: an error body can be any size.
    let mut body = Vec::new();
    while body.len() < READ_AT_MOST {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = crate::excerpt(&String::from_utf8_lossy(&body), crate::EXCERPT_CHARS);
    let message = format!("{registry} answered {status}: {text}");
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ConnectorError::Auth(message),
        status if status.is_server_error() => ConnectorError::Connection(message),
        _ => ConnectorError::Protocol(message),
    }
}
