//! Requests to a source's Consul agents: its endpoints (parsed once) and failover between
//! them, URLs with `dc`, the ACL token header, deadlines, the `X-Consul-Index` of
//! blocking answers, and Consul's HTTP errors mapped onto
//! [`ConnectorError`] (401/403 are auth errors, 5xx and broken connections are
//! connection errors, anything unreadable is a protocol error).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderValue;
use reqwest::{Certificate, Identity, Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::config::ConsulConfig;
use crate::{http_error, ConnectorError};

/// What a blocking endpoint answered: its body and the index to block on next.
pub(super) struct Answer<T> {
    pub body: T,
    pub index: u64,
}

/// A client for the agents of one source, with its TLS files read and token set.
/// Endpoints are named by their position in the source's `endpoints`.
#[derive(Clone)]
pub(super) struct Http {
    client: reqwest::Client,
    endpoints: Arc<[Url]>,
    token: Option<HeaderValue>,
    datacenter: Option<String>,
    wait: String,
    timeout: Duration,
    blocking_deadline: Duration,
}

impl Http {
    /// Builds the client; reads the TLS files now, so renewed ones are used next time.
    pub async fn new(config: &ConsulConfig) -> Result<Http, ConnectorError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .tcp_nodelay(true)
            // Blocking queries hold a connection for minutes; keepalive finds dead peers.
            .tcp_keepalive(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(90))
            // Consul's API never redirects, and reqwest would carry `X-Consul-Token`
            // (not a header it strips) to wherever a redirect points.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(tls) = &config.tls {
            let files = tls.read().await?;
            let ca = Certificate::from_pem(&files.ca)
                .map_err(|err| ConnectorError::Config(format!("`tls.ca`: {err}")))?;
            builder = builder.add_root_certificate(ca);
            if let Some((mut cert, key)) = files.identity {
                cert.push(b'\n');
                cert.extend_from_slice(&key);
                let identity = Identity::from_pem(&cert).map_err(|err| {
                    ConnectorError::Config(format!("`tls.cert`/`tls.key`: {err}"))
                })?;
                builder = builder.identity(identity);
            }
        }
        let endpoints = crate::endpoint::parse_urls(&config.endpoints)?;
        let client = builder
            .build()
            .map_err(|err| ConnectorError::Config(format!("HTTP client: {err}")))?;
        let token = match &config.token {
            Some(token) => {
                let mut value = HeaderValue::from_str(token.expose())
                    .map_err(|_| ConnectorError::Config("`token` is not a valid header".into()))?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Http {
            client,
            endpoints,
            token,
            datacenter: config.datacenter.clone(),
            wait: crate::duration::format(config.wait),
            timeout: config.timeout,
            blocking_deadline: config.blocking_deadline(),
        })
    }

    /// Endpoint `endpoint` + the path segments (each percent-encoded), with `dc` when
    /// configured.
    pub fn url(&self, endpoint: usize, segments: &[&str]) -> Url {
        let mut url = self.endpoints[endpoint].clone();
        // An http(s) URL always has path segments; the config check allows no other.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if let Some(dc) = &self.datacenter {
            url.query_pairs_mut().append_pair("dc", dc);
        }
        url
    }

    /// Runs `attempt` on each endpoint in turn, from `first`, until one succeeds or fails
    /// with an error `fail_over` says another endpoint cannot fix. Returns the endpoint
    /// that succeeded with its result, or the last error.
    pub async fn on_any_endpoint<T, F, Fut>(
        &self,
        first: usize,
        fail_over: fn(&ConnectorError) -> bool,
        attempt: F,
    ) -> Result<(usize, T), ConnectorError>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = Result<T, ConnectorError>>,
    {
        crate::endpoint::on_any_endpoint(&self.endpoints, first, fail_over, attempt).await
    }

    /// A read that answers at once (`index` 0) or blocks until the result's index passes
    /// `index` or the configured `wait` ends.
    pub async fn get<T: DeserializeOwned>(
        &self,
        url: &Url,
        index: u64,
    ) -> Result<Answer<T>, ConnectorError> {
        let mut url = url.clone();
        let deadline = if index == 0 {
            self.timeout
        } else {
            url.query_pairs_mut()
                .append_pair("index", &index.to_string())
                .append_pair("wait", &self.wait);
            self.blocking_deadline
        };
        let response = self.send(Method::GET, url, None, deadline).await?;
        if !response.status().is_success() {
            return Err(http_error::status("Consul", response.status(), response).await);
        }
        let index = response
            .headers()
            .get("X-Consul-Index")
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.parse::<u64>().ok())
            .ok_or_else(|| {
                ConnectorError::Protocol("answer without a valid X-Consul-Index header".into())
            })?;
        let bytes = response
            .bytes()
            .await
            .map_err(|err| http_error::transport("Consul", err))?;
        let body = serde_json::from_slice(&bytes).map_err(|err| {
            ConnectorError::Protocol(format!("unreadable JSON from Consul: {err}"))
        })?;
        Ok(Answer { body, index })
    }

    /// A `PUT` (agent writes). A 404 is `Ok(false)`: the agent does not know that
    /// service or check, which the caller decides about.
    pub async fn put(&self, url: Url, body: Option<&Value>) -> Result<bool, ConnectorError> {
        let response = self.send(Method::PUT, url, body, self.timeout).await?;
        match response.status() {
            status if status.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            status => Err(http_error::status("Consul", status, response).await),
        }
    }

    /// Sends one request; any HTTP status is `Ok`, only transport failures are errors.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        deadline: Duration,
    ) -> Result<reqwest::Response, ConnectorError> {
        let mut request = self.client.request(method, url).timeout(deadline);
        if let Some(token) = &self.token {
            request = request.header("X-Consul-Token", token.clone());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request
            .send()
            .await
            .map_err(|err| http_error::transport("Consul", err))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A server that answers every request with `response`, verbatim.
    async fn canned(response: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        base
    }

    async fn read(response: &'static str) -> Result<Answer<Value>, ConnectorError> {
        let base = canned(response).await;
        let mut config = ConsulConfig::new([base.clone()]);
        config.timeout = Duration::from_secs(2);
        let http = Http::new(&config).await.unwrap();
        http.get(&http.url(0, &["v1", "catalog", "services"]), 0)
            .await
    }

    fn response(status: &str, headers: &str, body: &str) -> &'static str {
        let text = format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        Box::leak(text.into_boxed_str())
    }

    #[tokio::test]
    async fn a_good_answer_carries_its_index() {
        let answer = read(response("200 OK", "X-Consul-Index: 42\r\n", "{\"web\":[]}"))
            .await
            .unwrap();
        assert_eq!(answer.index, 42);
        assert_eq!(answer.body["web"], serde_json::json!([]));
    }

    #[tokio::test]
    async fn consul_errors_map_onto_connector_errors() {
        let cases = [
            (
                response("403 Forbidden", "", "ACL not found"),
                "auth",
                "ACL not found",
            ),
            (response("401 Unauthorized", "", "no"), "auth", "401"),
            (
                response("500 Internal Server Error", "", "No cluster leader"),
                "connection",
                "No cluster leader",
            ),
            (
                response("400 Bad Request", "", "Invalid wait time"),
                "protocol",
                "wait",
            ),
            (response("200 OK", "", "{}"), "protocol", "X-Consul-Index"),
            (
                response("200 OK", "X-Consul-Index: 7\r\n", "{not json"),
                "protocol",
                "JSON",
            ),
        ];
        for (canned, kind, text) in cases {
            let err = read(canned).await.err().expect("an error");
            assert_eq!(err.kind(), kind, "{canned}: {err}");
            assert!(err.to_string().contains(text), "{canned}: {err}");
        }
    }

    #[tokio::test]
    async fn an_agent_that_never_answers_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        // Accepts and holds connections, never answering.
        let _held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let mut config = ConsulConfig::new([base.clone()]);
        config.timeout = Duration::from_millis(300);
        let http = Http::new(&config).await.unwrap();
        let url = http.url(0, &["v1", "catalog", "services"]);
        let err = http.get::<Value>(&url, 0).await.err().unwrap();
        assert_eq!(err.kind(), "connection", "{err}");
        assert!(err.to_string().contains("in time"), "{err}");
    }

    #[tokio::test]
    async fn nobody_listening_is_a_connection_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let http = Http::new(&ConsulConfig::new([base])).await.unwrap();
        let url = http.url(0, &["v1", "catalog", "services"]);
        let err = http.get::<Value>(&url, 0).await.err().unwrap();
        assert_eq!(err.kind(), "connection", "{err}");
    }

    #[tokio::test]
    async fn urls_encode_names_and_carry_the_datacenter() {
        let mut config = ConsulConfig::new(["http://127.0.0.1:8500/"]);
        config.datacenter = Some("eu-west".into());
        let http = Http::new(&config).await.unwrap();
        let url = http.url(0, &["v1", "health", "service", "a b/c"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8500/v1/health/service/a%20b%2Fc?dc=eu-west"
        );
    }
}
