//! One HTTP blocking query as the propagation samples send it, to Switchboard or to the
//! Consul double alike: the answer's index (from the header each server names its index
//! in) and body, timed when the last byte of the body has arrived.

use anyhow::{bail, Context};
use tokio::time::Instant;

/// The header Switchboard's blocking-query index comes in.
pub const SWITCHBOARD_INDEX: &str = "x-switchboard-index";
/// The header Consul's blocking-query index comes in.
pub const CONSUL_INDEX: &str = "x-consul-index";

/// One answered blocking query.
pub struct Answer {
    /// When the whole body had arrived.
    pub at: Instant,
    pub index: u64,
    pub body: bytes::Bytes,
}

/// Sends `GET url` and waits for the whole answer, which must be a success carrying its
/// index in `header`.
pub async fn blocking_read(
    client: reqwest::Client,
    url: String,
    header: &'static str,
) -> anyhow::Result<Answer> {
    let response = client.get(&url).send().await?;
    let status = response.status();
    let index = header_index(&response, header);
    let body = response.bytes().await?;
    let at = Instant::now();
    if !status.is_success() {
        bail!(
            "blocking query {url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(Answer {
        at,
        index: index.with_context(|| format!("{url} answered without {header}"))?,
        body,
    })
}

/// The index of Switchboard's answer to a plain read of `url`.
pub async fn read_index(client: &reqwest::Client, url: &str) -> anyhow::Result<u64> {
    let response = client.get(url).send().await?.error_for_status()?;
    header_index(&response, SWITCHBOARD_INDEX)
        .with_context(|| format!("{url} answered without {SWITCHBOARD_INDEX}"))
}

fn header_index(response: &reqwest::Response, header: &str) -> Option<u64> {
    response.headers().get(header)?.to_str().ok()?.parse().ok()
}
