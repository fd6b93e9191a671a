//! Follow one service with blocking queries and print each change.
//!
//! ```text
//! cargo run --example watch -- SERVICE
//! SWITCHBOARD_URL=http://10.0.0.5:8700 cargo run --example watch -- orders
//! ```
//!
//! The loop every discovery client needs:
//! 1. `GET /api/v1/services/{name}/instances` answers at once, with the service's index in
//!    the `X-Switchboard-Index` header;
//! 2. ask again with `?index=THAT&wait=30s`: the server holds the request until the
//!    service changes (index grows) or 30 s pass, then answers with the current list;
//! 3. print what changed (if anything: the wait may simply have run out) and block
//!    again on the index just received, even if it is smaller (the server restarted).
//!
//! The client timeout must be longer than `wait`. On errors, back off and retry.
//! Base URL: `SWITCHBOARD_URL` (default `http://127.0.0.1:8700`).

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Client;
use serde_json::Value;

const WAIT: &str = "30s";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = std::env::args()
        .nth(1)
        .ok_or("usage: watch SERVICE  (env SWITCHBOARD_URL)")?;
    let base = std::env::var("SWITCHBOARD_URL").unwrap_or_else(|_| "http://127.0.0.1:8700".into());
    let url = format!(
        "{}/api/v1/services/{service}/instances",
        base.trim_end_matches('/')
    );
    // Longer than WAIT, so the server answers before the client gives up.
    let client = Client::builder().timeout(Duration::from_secs(40)).build()?;

    let mut index: Option<u64> = None;
    let mut known: Option<BTreeMap<String, String>> = None;
    let mut backoff = Duration::from_secs(1);
    println!("watching {service} at {url}");
    loop {
        let (new_index, instances) = match fetch(&client, &url, index).await {
            Ok(answer) => {
                backoff = Duration::from_secs(1);
                answer
            }
            Err(err) => {
                eprintln!("{err}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        // Block on whatever index the server gave last, even a smaller one (after a
        // restart, indexes start again).
        index = Some(new_index);

        // Compare contents rather than trusting the index alone: an unchanged index after
        // a restart can still carry a different list.
        let current: BTreeMap<String, String> = instances
            .iter()
            .map(|i| {
                let line = format!(
                    "{} {} healthy={}",
                    i["address"].as_str().unwrap_or("?"),
                    i["status"].as_str().unwrap_or("?"),
                    i["healthy"]
                );
                (i["id"].as_str().unwrap_or("?").to_owned(), line)
            })
            .collect();
        let first = known.is_none();
        let old = known.take().unwrap_or_default();
        let mut changes = Vec::new();
        for (id, line) in &current {
            match old.get(id) {
                None => changes.push(format!("  + {id}  {line}")),
                Some(was) if was != line => changes.push(format!("  ~ {id}  {line}")),
                Some(_) => {}
            }
        }
        for id in old.keys().filter(|id| !current.contains_key(*id)) {
            changes.push(format!("  - {id}"));
        }
        if first || !changes.is_empty() {
            println!("index {new_index}: {} instance(s)", current.len());
            for change in changes {
                println!("{change}");
            }
        }
        known = Some(current);
    }
}

/// One query (blocking when `index` is known): the service's index and its instances.
/// A service that does not exist yet answers `[]` with index 0; blocking on 0 then waits
/// for it to appear.
async fn fetch(
    client: &Client,
    url: &str,
    index: Option<u64>,
) -> Result<(u64, Vec<Value>), Box<dyn std::error::Error>> {
    let mut request = client.get(url);
    if let Some(index) = index {
        request = request.query(&[("index", index.to_string()), ("wait", WAIT.to_owned())]);
    }
    let reply = request.send().await?.error_for_status()?;
    let new_index = reply
        .headers()
        .get("x-switchboard-index")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .ok_or("reply has no X-Switchboard-Index header")?;
    Ok((new_index, reply.json().await?))
}
