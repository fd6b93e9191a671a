//! The probe of the propagation-under-load run: sampled writes spread over the load
//! window, each timed from just before its put until Switchboard's blocking query shows
//! it and until a direct etcd watch delivers it (the floor).
//!
//! At 1 000 writes/s a parked blocking query is woken by some write about every
//! millisecond, so the probe follows the service the way a subscribed client does: one
//! chain of blocking queries, each from the previous answer's index, for the whole window.
//! Each answer (the whole service, about 4 MB) is scanned for every sample's marker; a
//! sample is seen by the first answer that shows it. The samples are put on their own
//! schedule, independent of the chain, so a Switchboard that falls behind makes them
//! late rather than the probe slower; one still unseen a while after the load is counted
//! as such, at the time the probe gave up.

use anyhow::{bail, Context};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::churn::{sample, MARKER, SAMPLES, WINDOW};
use crate::propagation::etcd::wait_revision;
use crate::propagation::query::{blocking_read, SWITCHBOARD_INDEX};
use crate::propagation::Latencies;

/// A sampled write: when it was about to be made, and etcd's revision of it.
pub struct Put {
    pub began: Instant,
    pub revision: i64,
}

/// Makes the samples, spread evenly over the window from `started`, each to its own
/// instance; returns them in sample order.
pub async fn make_samples(
    mut etcd: etcd_client::Client,
    started: Instant,
) -> anyhow::Result<Vec<Put>> {
    let mut puts = Vec::with_capacity(SAMPLES);
    for s in 0..SAMPLES {
        tokio::time::sleep_until(started + WINDOW * s as u32 / SAMPLES as u32).await;
        let (key, value) = sample(s);
        let began = Instant::now();
        let put = etcd
            .put(key, value, None)
            .await
            .with_context(|| format!("etcd refused sample {s}"))?;
        let revision = put.header().context("etcd answered without a header")?;
        puts.push(Put {
            began,
            revision: revision.revision(),
        });
    }
    Ok(puts)
}

/// Switchboard's side of the probe.
pub struct Probe {
    /// Its own client, so each query reuses the connection the previous one left idle.
    pub http: reqwest::Client,
    /// The service's instance read.
    pub url: String,
    /// The index of the last answer before the load.
    pub index: u64,
}

/// What following the service saw.
pub struct Followed {
    /// When the first answer showing each sample arrived.
    pub seen: Vec<Option<Instant>>,
    /// When the probe stopped following.
    pub ended: Instant,
    /// Answers read.
    pub answers: usize,
}

impl Followed {
    pub fn unseen(&self) -> usize {
        self.seen.iter().filter(|seen| seen.is_none()).count()
    }
}

impl Probe {
    /// Follows the service until every sample has shown, or until `deadline`.
    pub async fn follow(self, deadline: Instant) -> anyhow::Result<Followed> {
        let mut seen = vec![None; SAMPLES];
        let (mut left, mut answers, mut index) = (SAMPLES, 0, self.index);
        while left > 0 {
            // Short waits, so a quiet service (the writes over, the server caught up)
            // still lets the probe look at the deadline.
            let url = format!("{}?index={index}&wait=1s", self.url);
            let query = blocking_read(self.http.clone(), url, SWITCHBOARD_INDEX);
            let Ok(answer) = tokio::time::timeout_at(deadline, query).await else {
                break;
            };
            let answer = answer?;
            answers += 1;
            if answer.index < index {
                bail!("an answer went back from index {index} to {}", answer.index);
            }
            index = answer.index;
            for s in samples_shown(&answer.body) {
                if let Some(slot @ None) = seen.get_mut(s) {
                    *slot = Some(answer.at);
                    left -= 1;
                }
            }
        }
        Ok(Followed {
            seen,
            ended: Instant::now(),
            answers,
        })
    }
}

/// The sample numbers an answer shows (found after [`MARKER`]).
fn samples_shown(body: &[u8]) -> Vec<usize> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Vec::new();
    };
    text.match_indices(MARKER)
        .filter_map(|(at, _)| {
            let rest = &text[at + MARKER.len()..];
            rest[..rest.find('"')?].parse().ok()
        })
        .collect()
}

/// Both observers' times for every sample. The direct watch stamped each event when it
/// arrived, so its channel can be read afterwards. A sample Switchboard never showed
/// counts as seen when the probe gave up: a lower bound.
pub async fn latencies(
    puts: &[Put],
    followed: &Followed,
    events: &mut mpsc::UnboundedReceiver<(i64, Instant)>,
) -> anyhow::Result<Latencies> {
    let mut latencies = Latencies {
        switchboard: Vec::with_capacity(puts.len()),
        direct: Vec::with_capacity(puts.len()),
    };
    for (s, put) in puts.iter().enumerate() {
        let seen = followed.seen[s].unwrap_or(followed.ended);
        let delivered = wait_revision(events, put.revision)
            .await
            .with_context(|| format!("sample {s}: the direct etcd watch"))?;
        latencies
            .switchboard
            .push(seen.saturating_duration_since(put.began));
        latencies
            .direct
            .push(delivered.saturating_duration_since(put.began));
    }
    Ok(latencies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_sample_an_answer_shows() {
        let body = br#"[{"metadata":{"probe":"7"}},{"metadata":{"rev":"3"}},
                        {"metadata":{"probe":"12"}},{"metadata":{"probe":"x"}}]"#;
        assert_eq!(samples_shown(body), [7, 12]);
        assert!(samples_shown(b"[]").is_empty());
    }
}
