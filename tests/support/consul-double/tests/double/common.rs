//! What the double's own tests share: a plain HTTP client (no proxy, no pooling, so a
//! stopped double is seen at once), answers with their Consul headers, and waiting for a
//! condition with a deadline.

use std::future::Future;
use std::time::Duration;

use consul_double::ConsulDouble;
use serde_json::Value;

/// How long any condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(5);

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub async fn read(response: reqwest::Response) -> Answer {
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    /// `X-Consul-Index`, which must be present.
    pub fn index(&self) -> u64 {
        let header = self.headers.get("X-Consul-Index");
        let header = header.unwrap_or_else(|| panic!("no X-Consul-Index in {self:?}"));
        header.to_str().unwrap().parse().unwrap()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
}

pub async fn get(double: &ConsulDouble, path_and_query: &str) -> Answer {
    let url = format!("{}{path_and_query}", double.url());
    Answer::read(http().get(url).send().await.unwrap()).await
}

pub async fn put(double: &ConsulDouble, path_and_query: &str, body: Option<Value>) -> Answer {
    let mut request = http().put(format!("{}{path_and_query}", double.url()));
    if let Some(body) = body {
        request = request.json(&body);
    }
    Answer::read(request.send().await.unwrap()).await
}

/// The entries of `/v1/health/service/:name` (with `query`, e.g. `?passing`).
pub async fn health(double: &ConsulDouble, name: &str, query: &str) -> (u64, Vec<Value>) {
    let answer = get(double, &format!("/v1/health/service/{name}{query}")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let Value::Array(entries) = answer.json() else {
        panic!("not an array: {}", answer.text)
    };
    (answer.index(), entries)
}

/// The statuses of an entry's checks, by check ID.
pub fn statuses(entry: &Value) -> Vec<(String, String)> {
    let checks = entry["Checks"].as_array().unwrap();
    let pair = |c: &Value| {
        let text = |k: &str| c[k].as_str().unwrap().to_owned();
        (text("CheckID"), text("Status"))
    };
    checks.iter().map(pair).collect()
}

/// Polls `probe` until it yields `Some`, or fails the test naming `what`.
pub async fn wait_until<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < give_up, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the double has received `count` requests on paths starting with `prefix`
/// (a spawned request has arrived and is being answered or is parked).
async fn arrived(double: &ConsulDouble, prefix: &str, count: u64) {
    let what = format!("{count} requests to {prefix}");
    wait_until(&what, || async {
        (double.requests_to(prefix) >= count).then_some(())
    })
    .await;
}

/// Parks a blocking `GET {path}?index={index}&wait={wait}` in a task, and returns once the
/// double has received it (its `arrivals`-th request to paths starting with `prefix`).
pub async fn park(
    double: &ConsulDouble,
    path: &str,
    index: u64,
    wait: &str,
    prefix: &str,
    arrivals: u64,
) -> tokio::task::JoinHandle<Result<(Answer, Duration), reqwest::Error>> {
    let parked = spawn_get(double, &format!("{path}?index={index}&wait={wait}"));
    arrived(double, prefix, arrivals).await;
    parked
}

/// [`park`] on `/v1/catalog/services` with a 5 s wait.
pub async fn park_catalog(
    double: &ConsulDouble,
    index: u64,
    arrivals: u64,
) -> tokio::task::JoinHandle<Result<(Answer, Duration), reqwest::Error>> {
    let catalog = "/v1/catalog/services";
    park(double, catalog, index, "5s", catalog, arrivals).await
}

/// Starts `GET path_and_query` in a task; it yields the answer (or the transport error) and
/// how long it took.
pub fn spawn_get(
    double: &ConsulDouble,
    path_and_query: &str,
) -> tokio::task::JoinHandle<Result<(Answer, Duration), reqwest::Error>> {
    let url = format!("{}{path_and_query}", double.url());
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let response = http().get(url).send().await?;
        let answer = Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await?,
        };
        Ok((answer, started.elapsed()))
    })
}
