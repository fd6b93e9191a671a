//! TCP checks: passing when `host:port` accepts a connection within the timeout (the
//! connection is closed at once), critical with the error otherwise.

use std::time::Duration;

use switchboard_connectors::CheckStatus;
use tokio::net::TcpStream;

/// Runs one TCP check.
pub async fn check(address: &str, timeout: Duration) -> (CheckStatus, String) {
    match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(_)) => (
            CheckStatus::Passing,
            format!("TCP connect {address}: Success"),
        ),
        Ok(Err(err)) => (
            CheckStatus::Critical,
            format!("TCP connect {address}: {err}"),
        ),
        Err(_) => (
            CheckStatus::Critical,
            format!("TCP connect {address}: timed out after {timeout:?}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listening_port_passes_and_a_closed_one_fails() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (status, output) = check(&address, Duration::from_secs(5)).await;
        assert_eq!(status, CheckStatus::Passing);
        assert_eq!(output, format!("TCP connect {address}: Success"));
        drop(listener);
        let (status, output) = check(&address, Duration::from_secs(5)).await;
        assert_eq!(status, CheckStatus::Critical);
        assert!(
            output.starts_with(&format!("TCP connect {address}: ")),
            "{output}"
        );
        assert!(!output.ends_with("Success"), "{output}");
    }
}
