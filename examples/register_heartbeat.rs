//! Register an instance with Switchboard, keep it alive, and deregister on Ctrl-C.
//!
//! ```text
//! cargo run --example register_heartbeat -- SERVICE [HOST:PORT] [TTL_SECONDS]
//! SWITCHBOARD_URL=http://10.0.0.5:8700 cargo run --example register_heartbeat -- orders 10.0.0.7:8080 15
//! ```
//!
//! What a well-behaved client does, and what this program shows:
//! - register once (`POST /api/v1/instances`) with a `ttl_seconds`, and keep the id the
//!   server answers with;
//! - heartbeat (`PUT /api/v1/instances/{id}/heartbeat`) every TTL/3, so one lost
//!   heartbeat never lets the instance expire;
//! - on `404 instance_not_found` (an operator deleted it, or the data dir was wiped),
//!   register again under the same id;
//! - on network errors, keep trying: an instance that missed its TTL is only marked
//!   `offline` and the next heartbeat brings it back;
//! - on Ctrl-C, deregister (`DELETE /api/v1/instances/{id}`) so discovery stops at once
//!   instead of after a TTL.
//!
//! Base URL: `SWITCHBOARD_URL` (default `http://127.0.0.1:8700`).

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

type Error = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let service = args.next().ok_or(
        "usage: register_heartbeat SERVICE [HOST:PORT] [TTL_SECONDS]  (env SWITCHBOARD_URL)",
    )?;
    let address = args.next().unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let ttl: u64 = match args.next() {
        Some(text) => text.parse().map_err(|_| "TTL_SECONDS must be a number")?,
        None => 15,
    };
    let base = std::env::var("SWITCHBOARD_URL").unwrap_or_else(|_| "http://127.0.0.1:8700".into());
    let base = base.trim_end_matches('/').to_owned();
    let client = Client::builder().timeout(Duration::from_secs(5)).build()?;

    let body = json!({
        "service": service,
        "address": address,
        "ttl_seconds": ttl,
        "metadata": { "example": "register_heartbeat" },
    });
    // Keep trying while the server is unreachable; give up on a rejected registration.
    let id = loop {
        match register(&client, &base, &body, None).await {
            Ok(id) => break id,
            Err(RegisterError::Rejected(why)) => return Err(why.into()),
            Err(RegisterError::Unreachable(err)) => {
                eprintln!("cannot reach {base} ({err}); retrying in 2s");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    println!("registered {id} ({service} at {address}, ttl {ttl}s) on {base}");

    let mut ticker = tokio::time::interval(Duration::from_millis(ttl * 1000 / 3));
    ticker.tick().await; // the first tick is immediate; we just registered
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = ticker.tick() => {}
        }
        let url = format!("{base}/api/v1/instances/{id}/heartbeat");
        match client.put(&url).send().await {
            Ok(reply) if reply.status() == StatusCode::NOT_FOUND => {
                println!("heartbeat: {id} is unknown to the server; registering again");
                if let Err(err) = register(&client, &base, &body, Some(&id)).await {
                    eprintln!("re-register failed (will retry): {err}");
                }
            }
            Ok(reply) if reply.status().is_success() => {
                let reply: Value = reply.json().await.unwrap_or_default();
                if reply["revived"] == true {
                    println!(
                        "heartbeat: {id} was offline and is back ({})",
                        reply["status"].as_str().unwrap_or("?")
                    );
                }
            }
            Ok(reply) => eprintln!(
                "heartbeat: {} {}",
                reply.status(),
                reply.text().await.unwrap_or_default()
            ),
            Err(err) => eprintln!("heartbeat failed (will retry): {err}"),
        }
    }

    let reply = client
        .delete(format!("{base}/api/v1/instances/{id}"))
        .send()
        .await?;
    println!("deregistered {id}: {}", reply.status());
    Ok(())
}

enum RegisterError {
    /// The server answered with a problem document: fix the input.
    Rejected(String),
    /// No answer: worth retrying.
    Unreachable(reqwest::Error),
}

impl std::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegisterError::Rejected(why) => f.write_str(why),
            RegisterError::Unreachable(err) => write!(f, "{err}"),
        }
    }
}

/// Registers `body` (under `id` when given) and returns the instance id.
async fn register(
    client: &Client,
    base: &str,
    body: &Value,
    id: Option<&str>,
) -> Result<String, RegisterError> {
    let mut body = body.clone();
    if let Some(id) = id {
        body["id"] = json!(id);
    }
    let reply = client
        .post(format!("{base}/api/v1/instances"))
        .json(&body)
        .send()
        .await
        .map_err(RegisterError::Unreachable)?;
    let status = reply.status();
    let answer: Value = reply.json().await.map_err(RegisterError::Unreachable)?;
    if !status.is_success() {
        // A problem document: `code` says what to fix, e.g. `invalid_address`.
        return Err(RegisterError::Rejected(format!(
            "register: {status} {}: {}",
            answer["code"], answer["detail"]
        )));
    }
    match answer["id"].as_str() {
        Some(id) => Ok(id.to_owned()),
        None => Err(RegisterError::Rejected("register: reply has no id".into())),
    }
}
