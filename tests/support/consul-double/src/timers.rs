//! The background task that plays the agent's check runners and reaper: it sleeps until the
//! store's next deadline (a TTL running out, a critical service due for
//! `DeregisterCriticalServiceAfter`) and fires what is due. Any write wakes it to re-read the
//! deadline, so it never polls. Consul reaps on a 30 s tick with a 1 minute minimum; the
//! double fires at the exact deadline and accepts any duration, so tests stay short.

use std::sync::Arc;

use tokio::time::{sleep_until, Instant};

use crate::shared::Shared;

pub async fn run(shared: Arc<Shared>) {
    loop {
        // Take the wake-up future before reading the deadline, so a write in between is not
        // missed (`Notify` also keeps a permit for the next `notified()`).
        let woken = shared.timers.notified();
        match shared.read(|store| store.next_deadline()) {
            Some(deadline) => {
                tokio::select! {
                    () = woken => {}
                    () = sleep_until(deadline) => {
                        shared.write(|store| store.fire_timers(Instant::now()));
                    }
                }
            }
            None => woken.await,
        }
    }
}
