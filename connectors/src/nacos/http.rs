//! Nacos's HTTP OpenAPI, for what the SDK's gRPC naming API cannot do: the service list
//! across every group (the console's `/nacos/v1/ns/catalog/services`; the gRPC list
//! takes one group and answers bare names), a cheap liveness probe, and persistent
//! instance writes (rnacos answers no gRPC `PersistentInstanceRequest`).
//!
//! With `username` set it logs in (`/nacos/v1/auth/login`) and sends the `accessToken`
//! on every request, logging in again before the token's TTL runs out and once more
//! when a request is refused. Endpoints fail over in order, from the one last used.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::config::NacosConfig;
use super::NacosService;
use crate::endpoint::on_any_endpoint;
use crate::{http_error, ConnectorError, Secret};

/// Services read per page of the service list.
const PAGE_SIZE: u64 = 500;

/// Form/query parameters of one request.
pub(super) type Params = Vec<(&'static str, String)>;

/// A client for the servers of one source; shared by its sessions and its writer, so a
/// token outlives a session.
pub(super) struct Http {
    client: reqwest::Client,
    endpoints: Arc<[Url]>,
    /// Index of the endpoint that answered last; the next request starts there.
    in_use: Arc<AtomicUsize>,
    credentials: Option<(String, Secret)>,
    token: Mutex<Option<Token>>,
    /// The Nacos namespace id every request names.
    namespace: String,
}

struct Token {
    value: String,
    renew_at: Instant,
}

/// The service list, with the server's count of all services in the namespace.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ServiceList {
    pub count: u64,
    pub services: Vec<NacosService>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CatalogPage {
    count: u64,
    #[serde(default)]
    service_list: Vec<CatalogEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CatalogEntry {
    name: String,
    group_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Login {
    access_token: String,
    #[serde(default)]
    token_ttl: u64,
}

impl Http {
    pub fn new(
        config: &NacosConfig,
        namespace: &str,
        in_use: Arc<AtomicUsize>,
    ) -> Result<Http, ConnectorError> {
        let endpoints = crate::endpoint::parse_urls(&config.endpoints)?;
        let client = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .timeout(config.timeout)
            .tcp_nodelay(true)
            // Nacos's OpenAPI never redirects, and a 307 to the login would post the
            // password again to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| ConnectorError::Config(format!("HTTP client: {err}")))?;
        let credentials = match (&config.username, &config.password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            _ => None,
        };
        Ok(Http {
            client,
            endpoints,
            in_use,
            credentials,
            token: Mutex::new(None),
            namespace: namespace.to_owned(),
        })
    }

    /// Every service of the namespace, in every group, page by page.
    pub async fn services(&self) -> Result<ServiceList, ConnectorError> {
        let mut list = ServiceList::default();
        for page_no in 1.. {
            let page = self.catalog_page(page_no, PAGE_SIZE).await?;
            let got = page.service_list.len() as u64;
            list.count = page.count;
            list.services
                .extend(page.service_list.into_iter().map(|entry| NacosService {
                    group: entry.group_name,
                    name: entry.name,
                }));
            if got < PAGE_SIZE || page_no * PAGE_SIZE >= page.count {
                break;
            }
        }
        Ok(list)
    }

    /// How many services the namespace holds: one tiny request, the liveness probe.
    pub async fn service_count(&self) -> Result<u64, ConnectorError> {
        Ok(self.catalog_page(1, 1).await?.count)
    }

    async fn catalog_page(
        &self,
        page_no: u64,
        page_size: u64,
    ) -> Result<CatalogPage, ConnectorError> {
        let params = vec![
            ("pageNo", page_no.to_string()),
            ("pageSize", page_size.to_string()),
            ("withInstances", "false".to_owned()),
        ];
        let body = self
            .call(Method::GET, "/nacos/v1/ns/catalog/services", params)
            .await?;
        json(&body)
    }

    /// A request to `path` with `params` (plus `namespaceId` and the token) on the first
    /// endpoint that answers. A refused token is renewed once.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        mut params: Params,
    ) -> Result<Bytes, ConnectorError> {
        params.push(("namespaceId", self.namespace.clone()));
        let first = self.in_use.load(Ordering::Relaxed);
        let fail_over = |err: &ConnectorError| matches!(err, ConnectorError::Connection(_));
        let (endpoint, body) = on_any_endpoint(&self.endpoints, first, fail_over, |endpoint| {
            self.call_on(endpoint, &method, path, &params)
        })
        .await?;
        self.in_use.store(endpoint, Ordering::Relaxed);
        Ok(body)
    }

    async fn call_on(
        &self,
        endpoint: usize,
        method: &Method,
        path: &str,
        params: &Params,
    ) -> Result<Bytes, ConnectorError> {
        let mut renewed = false;
        loop {
            let token = self.token(endpoint, renewed).await?;
            let mut url = self.url(endpoint, path);
            url.query_pairs_mut().extend_pairs(params.iter());
            if let Some(token) = &token {
                url.query_pairs_mut().append_pair("accessToken", token);
            }
            let response = self
                .client
                .request(method.clone(), url)
                .send()
                .await
                .map_err(|err| http_error::transport("Nacos", err))?;
            let status = response.status();
            if status == StatusCode::FORBIDDEN && token.is_some() && !renewed {
                renewed = true;
                continue;
            }
            if !status.is_success() {
                return Err(http_error::status("Nacos", status, response).await);
            }
            return response
                .bytes()
                .await
                .map_err(|err| http_error::transport("Nacos", err));
        }
    }

    /// The token to send, logging in when there is none, it is due for renewal, or
    /// `renew` says the server refused it. `None` without credentials.
    async fn token(&self, endpoint: usize, renew: bool) -> Result<Option<String>, ConnectorError> {
        let Some((user, password)) = &self.credentials else {
            return Ok(None);
        };
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref() {
            if !renew && Instant::now() < token.renew_at {
                return Ok(Some(token.value.clone()));
            }
        }
        let url = self.url(endpoint, "/nacos/v1/auth/login");
        let response = self
            .client
            .post(url)
            .form(&[("username", user.as_str()), ("password", password.expose())])
            .send()
            .await
            .map_err(|err| http_error::transport("Nacos", err))?;
        let status = response.status();
        if !status.is_success() {
            return Err(match http_error::status("Nacos", status, response).await {
                ConnectorError::Protocol(message) if status.is_client_error() => {
                    ConnectorError::Auth(message)
                }
                ConnectorError::Auth(message) => {
                    ConnectorError::Auth(format!("login of user `{user}` refused: {message}"))
                }
                other => other,
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|err| http_error::transport("Nacos", err))?;
        let login: Login = json(&bytes)?;
        // Renew at three quarters of the TTL (Nacos's default is 18000 s).
        let ttl = Duration::from_secs(login.token_ttl.max(4));
        let token = Token {
            value: login.access_token,
            renew_at: Instant::now() + ttl * 3 / 4,
        };
        let value = token.value.clone();
        *slot = Some(token);
        Ok(Some(value))
    }

    fn url(&self, endpoint: usize, path: &str) -> Url {
        let mut url = self.endpoints[endpoint].clone();
        url.set_path(path);
        url
    }
}

/// A JSON answer, or a protocol error saying what did not parse.
pub(super) fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ConnectorError> {
    serde_json::from_slice(body).map_err(|err| {
        let start = crate::excerpt(&String::from_utf8_lossy(body), 120);
        ConnectorError::Protocol(format!("unreadable answer from Nacos ({err}): {start}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_pages_parse_as_nacos_and_rnacos_write_them() {
        let java = br#"{"count":2,"serviceList":[{"name":"a","groupName":"DEFAULT_GROUP",
            "clusterCount":1,"ipCount":1,"healthyInstanceCount":1,"triggerFlag":"false"},
            {"name":"b","groupName":"payments","clusterCount":0,"ipCount":0,
            "healthyInstanceCount":0,"triggerFlag":"false"}]}"#;
        let page: CatalogPage = json(java).unwrap();
        assert_eq!(page.count, 2);
        assert_eq!(page.service_list[1].group_name, "payments");
        let empty: CatalogPage = json(br#"{"count":0}"#).unwrap();
        assert!(empty.service_list.is_empty());
        let err = json::<CatalogPage>(b"<html>oops</html>").unwrap_err();
        assert!(
            matches!(err, ConnectorError::Protocol(ref m) if m.contains("<html>")),
            "{err}"
        );
    }
}
