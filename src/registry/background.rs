//! The registry's periodic work: TTL sweeps and batched heartbeat writes.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::Registry;

/// Runs sweeps every `expiry_interval` and heartbeat flushes every
/// `heartbeat_flush_interval` until `stop` turns true, then flushes one last time.
pub fn spawn_background(
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut sweep = tokio::time::interval(registry.config().expiry_interval);
        let mut flush = tokio::time::interval(registry.config().heartbeat_flush_interval);
        sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
        flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = sweep.tick() => {
                    if let Err(err) = registry.sweep().await {
                        tracing::error!(error = %err, "TTL sweep failed; will retry");
                    }
                }
                _ = flush.tick() => {
                    if let Err(err) = registry.flush_heartbeats().await {
                        tracing::error!(error = %err, "Heartbeat flush failed; will retry");
                    }
                }
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
        }
        if let Err(err) = registry.flush_heartbeats().await {
            tracing::error!(error = %err, "Final heartbeat flush failed");
        }
    })
}
