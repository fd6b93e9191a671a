//! HTTP checks, as Consul runs them: the check's method and headers (a `Host` header sets
//! the host), redirects followed, a fresh connection each run, `2xx` passing, `429`
//! warning, anything else critical, and the output `HTTP GET <url>: 200 OK Output: <body>`
//! with at most 4 KiB of the body.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use reqwest::{Client, Method, StatusCode};
use switchboard_connectors::CheckStatus;

/// How much of a response body the output keeps (Consul's `DefaultBufSize`).
pub const MAX_BODY: usize = 4096;

/// The two clients every HTTP check shares, made once: one verifying certificates, one
/// for checks with `tls_skip_verify`.
pub struct Clients {
    verifying: Client,
    skipping: Client,
}

impl Clients {
    pub fn new() -> Result<Clients, reqwest::Error> {
        let build = |skip_verify: bool| {
            let mut headers = HeaderMap::new();
            headers.insert(ACCEPT, HeaderValue::from_static("text/plain, text/*, */*"));
            Client::builder()
                .user_agent("Switchboard Health Check")
                .default_headers(headers)
                // Each run opens its own connection, as Consul's keep-alive-less checks
                // do: a check proves the target accepts connections.
                .pool_max_idle_per_host(0)
                .danger_accept_invalid_certs(skip_verify)
                .build()
        };
        Ok(Clients {
            verifying: build(false)?,
            skipping: build(true)?,
        })
    }

    /// Runs one HTTP check; gives up after `timeout` (connecting and reading included).
    pub async fn check(
        &self,
        url: &str,
        method: &str,
        headers: &BTreeMap<String, Vec<String>>,
        tls_skip_verify: bool,
        timeout: Duration,
    ) -> (CheckStatus, String) {
        let client = if tls_skip_verify {
            &self.skipping
        } else {
            &self.verifying
        };
        // Validated at registration; a stored method that no longer parses runs as GET.
        let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        let mut request = client.request(method.clone(), url).timeout(timeout);
        for (name, values) in headers {
            // reqwest sends a `Host` header given here instead of the URL's host.
            for value in values {
                request = request.header(name, value);
            }
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(err) => return (CheckStatus::Critical, error_text(&err)),
        };
        let status = response.status();
        let mut body = Vec::new();
        // A body that fails half-way still reports the status, with what was read.
        while body.len() < MAX_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        body.truncate(MAX_BODY);
        (status_of(status), output(&method, url, status, &body))
    }
}

/// 2xx passing, 429 (Too Many Requests) warning, anything else critical.
pub fn status_of(code: StatusCode) -> CheckStatus {
    if code.is_success() {
        CheckStatus::Passing
    } else if code == StatusCode::TOO_MANY_REQUESTS {
        CheckStatus::Warning
    } else {
        CheckStatus::Critical
    }
}

/// `HTTP GET http://10.0.0.5:8080/health: 200 OK Output: ok`, as Consul writes it.
pub fn output(method: &Method, url: &str, status: StatusCode, body: &[u8]) -> String {
    let body = String::from_utf8_lossy(body);
    format!("HTTP {method} {url}: {status} Output: {body}")
}

/// An error with its causes, `error sending request for url (…): …: Connection refused`.
pub fn error_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // A cause its parent's text already ends with is said once.
        if !text.ends_with(&cause_text) {
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
    fn statuses_map_as_in_consul() {
        assert_eq!(status_of(StatusCode::OK), CheckStatus::Passing);
        assert_eq!(status_of(StatusCode::NO_CONTENT), CheckStatus::Passing);
        assert_eq!(
            status_of(StatusCode::TOO_MANY_REQUESTS),
            CheckStatus::Warning
        );
        assert_eq!(
            status_of(StatusCode::INTERNAL_SERVER_ERROR),
            CheckStatus::Critical
        );
        assert_eq!(status_of(StatusCode::NOT_FOUND), CheckStatus::Critical);
        assert_eq!(
            status_of(StatusCode::MOVED_PERMANENTLY),
            CheckStatus::Critical
        );
    }

    #[test]
    fn output_is_written_as_consul_writes_it() {
        let text = output(
            &Method::GET,
            "http://10.0.0.5:8080/health",
            StatusCode::OK,
            b"ok",
        );
        assert_eq!(
            text,
            "HTTP GET http://10.0.0.5:8080/health: 200 OK Output: ok"
        );
        let text = output(
            &Method::HEAD,
            "http://h/",
            StatusCode::TOO_MANY_REQUESTS,
            b"",
        );
        assert_eq!(text, "HTTP HEAD http://h/: 429 Too Many Requests Output: ");
    }

    #[test]
    fn errors_name_their_causes_once() {
        #[derive(Debug)]
        struct Layer(&'static str, Option<Box<Layer>>);
        impl std::fmt::Display for Layer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Layer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|l| l as _)
            }
        }
        let refused = Layer("Connection refused", None);
        let err = Layer(
            "error sending request",
            Some(Box::new(Layer(
                "tcp connect error: Connection refused",
                Some(Box::new(refused)),
            ))),
        );
        assert_eq!(
            error_text(&err),
            "error sending request: tcp connect error: Connection refused"
        );
    }
}
