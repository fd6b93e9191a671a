//! Errors a connector reports to its supervisor.

/// What went wrong talking to a source. The supervisor decides what to do; the
/// variant docs say whether a retry can help.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The source could not be reached or the connection broke. Retryable.
    #[error("connection failed: {0}")]
    Connection(String),
    /// The source refused our credentials. Retrying without a config change will not help,
    /// but the supervisor keeps retrying slowly in case the credentials are fixed upstream.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The source answered with something we cannot understand. Retryable (re-list).
    #[error("bad response: {0}")]
    Protocol(String),
    /// The source's configuration is invalid. Not retryable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl ConnectorError {
    /// Whether retrying the same call later can succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ConnectorError::Config(_))
    }

    /// A stable, machine-readable name of the variant (shown in a source's status).
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorError::Connection(_) => "connection",
            ConnectorError::Auth(_) => "auth",
            ConnectorError::Protocol(_) => "protocol",
            ConnectorError::Config(_) => "config",
        }
    }
}
