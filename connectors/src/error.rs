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

/// The longest excerpt of a remote message (an error body, a server's status text) that
/// is shown: enough to say what went wrong, too little to relay a page.
pub const EXCERPT_CHARS: usize = 200;

/// At most `max_chars` of `text`, with control characters (newlines, terminal escapes)
/// turned into spaces and the ends trimmed, and `…` where it was cut. A remote server
/// chooses this text; it is shown in a status and logged, so it must stay one short line.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    let mut cut: String = clean.chars().take(max_chars).collect();
    if cut.len() < clean.len() {
        cut.push('…');
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt("  plain  ", 10), "plain");
        assert_eq!(excerpt("a\nb\r\u{1b}[31mc\u{0}", 20), "a b  [31mc");
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("ééé", 2), "éé…");
        let long = "x".repeat(10_000);
        assert_eq!(
            excerpt(&long, EXCERPT_CHARS).chars().count(),
            EXCERPT_CHARS + 1
        );
    }
}
