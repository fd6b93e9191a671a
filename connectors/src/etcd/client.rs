//! Connecting to etcd, shared by the watch and the writer: one client per endpoint (auth,
//! TLS, HTTP/2 keep-alive), explicit failover to the next endpoints, deadlines on every
//! request, and etcd's errors sorted into the supervisor's classes.
//!
//! Failover is explicit: a client talks to one endpoint. When it stops answering, the
//! next endpoints are tried in turn. (etcd-client's balanced channel over several
//! endpoints keeps sending some requests to a dead member.)

use std::future::Future;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use tracing::warn;

use super::config::EtcdConfig;
use crate::endpoint::TlsConfig;
use crate::ConnectorError;

/// HTTP/2 pings detect a silently dead connection while the watch is idle. etcd's
/// default `--grpc-keepalive-min-time` is 5s, so pinging every 10s is allowed.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

// gRPC status codes (tonic's `Code` as numbers; this crate does not depend on tonic).
const CODE_NOT_FOUND: i32 = 5;
const CODE_PERMISSION_DENIED: i32 = 7;
const CODE_UNAUTHENTICATED: i32 = 16;
/// Parts of etcd's messages about credentials and permissions.
const AUTH_MESSAGES: &[&str] = &[
    "authentication",
    "auth token",
    "permission denied",
    "user name",
];

/// Connects to the endpoints in turn, starting at `first`, until one connects and
/// `attempt` succeeds on it; returns that client, its endpoint's index and what `attempt`
/// made. Credentials and configuration errors stop at once: every member would say the
/// same.
pub(super) async fn on_any_endpoint<T, F, Fut>(
    config: &EtcdConfig,
    first: usize,
    source_id: &str,
    mut attempt: F,
) -> Result<(Client, usize, T), ConnectorError>
where
    F: FnMut(Client) -> Fut,
    Fut: Future<Output = Result<T, ConnectorError>>,
{
    let count = config.endpoints.len();
    let mut failures = Vec::new();
    for index in (first..first + count).map(|i| i % count) {
        let endpoint = &config.endpoints[index];
        let result = match connect(config, endpoint).await {
            Ok(client) => attempt(client.clone()).await.map(|made| (client, made)),
            Err(err) => Err(err),
        };
        match result {
            Ok((client, made)) => return Ok((client, index, made)),
            Err(ConnectorError::Connection(why)) => {
                warn!(source.id = %source_id, %endpoint, error = %why, "etcd endpoint did not answer");
                failures.push(format!("{endpoint}: {why}"));
            }
            Err(err) => return Err(err),
        }
    }
    Err(ConnectorError::Connection(failures.join("; ")))
}

/// Connects and authenticates to one endpoint. With a user, this already talks to it.
async fn connect(config: &EtcdConfig, endpoint: &str) -> Result<Client, ConnectorError> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(config.timeout)
        .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT)
        .with_keep_alive_while_idle(false)
        // A member cut off from the quorum fails the watch instead of going silent.
        .with_require_leader(true)
        .with_auto_token_refresh(true);
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        options = options.with_user(user.clone(), password.expose());
    }
    if let Some(tls) = &config.tls {
        options = options.with_tls(tls_options(tls).await?);
    }
    within(
        config.timeout,
        "connecting",
        Client::connect([endpoint], Some(options)),
    )
    .await
}

async fn tls_options(tls: &TlsConfig) -> Result<TlsOptions, ConnectorError> {
    let files = tls.read().await?;
    let mut options = TlsOptions::new().ca_certificate(Certificate::from_pem(files.ca));
    if let Some((cert, key)) = files.identity {
        options = options.identity(Identity::from_pem(cert, key));
    }
    Ok(options)
}

/// Runs one etcd request with a deadline, mapping its error.
pub(super) async fn within<T>(
    timeout: Duration,
    what: &str,
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, ConnectorError> {
    deadline(timeout, what, request).await?.map_err(map_error)
}

/// Runs one etcd request with a deadline and hands back etcd's own answer, for callers
/// that tell some errors apart (see [`is_lease_not_found`]).
pub(super) async fn deadline<T>(
    timeout: Duration,
    what: &str,
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<Result<T, etcd_client::Error>, ConnectorError> {
    tokio::time::timeout(timeout, request).await.map_err(|_| {
        ConnectorError::Connection(format!(
            "no answer from etcd within {} while {what}",
            crate::duration::format(timeout)
        ))
    })
}

/// Whether etcd refused a request because the lease it names no longer exists (it
/// expired or was revoked). etcd answers `NotFound` only for leases: a missing key is
/// not an error in its v3 API.
pub(super) fn is_lease_not_found(err: &etcd_client::Error) -> bool {
    matches!(err, etcd_client::Error::GRpcStatus(status) if i32::from(status.code()) == CODE_NOT_FOUND)
}

/// Sorts the client's errors into the supervisor's classes. etcd's own messages never
/// hold the password.
pub(super) fn map_error(err: etcd_client::Error) -> ConnectorError {
    use etcd_client::Error as E;
    match err {
        E::GRpcStatus(status) => {
            let code = i32::from(status.code());
            let mut message = status.message().to_owned();
            if let Some(source) = std::error::Error::source(&status) {
                message = format!("{message}: {}", error_chain(source));
            }
            // etcd answers a bad or missing login with InvalidArgument ("user name is
            // empty", "authentication failed, invalid user ID or password").
            let auth = code == CODE_UNAUTHENTICATED
                || code == CODE_PERMISSION_DENIED
                || AUTH_MESSAGES.iter().any(|m| message.contains(m));
            if auth {
                ConnectorError::Auth(message)
            } else {
                ConnectorError::Connection(format!("etcd returned {:?}: {message}", status.code()))
            }
        }
        E::InvalidArgs(_) | E::InvalidUri(_) | E::EndpointError(_) => {
            ConnectorError::Config(error_chain(&err))
        }
        other => ConnectorError::Connection(error_chain(&other)),
    }
}

/// An error with its sources (tonic's transport errors say little on their own).
pub(super) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_arguments_are_config_errors() {
        let err = map_error(etcd_client::Error::InvalidArgs("empty endpoints".into()));
        assert!(matches!(err, ConnectorError::Config(_)), "{err:?}");
        let err = map_error(etcd_client::Error::WatchError("gone".into()));
        assert!(matches!(err, ConnectorError::Connection(_)), "{err:?}");
        assert!(!is_lease_not_found(&etcd_client::Error::WatchError(
            "gone".into()
        )));
    }
}
