//! The Consul part (`BENCH_ONLY=consul`): Switchboard with a `type = "consul"` source
//! reading the Consul test double (`tests/support/consul-double`), and the propagation
//! latency from a write in the double to a Switchboard blocking query, printed beside the
//! double's own blocking query on the same writes. The double is an in-process axum
//! server, so it needs no external tool and runs on the bench's core (1); Switchboard
//! runs pinned to core 0 like every server.

use std::path::Path;

use anyhow::Context;
use consul_double::ConsulDouble;

use crate::propagation::{self, consul::Consul};
use crate::{progress, report, servers};

/// The id of the source in Switchboard's config.
pub const SOURCE_ID: &str = "consul-main";

/// The `[[sources]]` config pointing Switchboard at the double at `url`.
pub fn switchboard_config(url: &str) -> String {
    servers::source_config(SOURCE_ID, "consul", url, "")
}

/// Runs the part and prints its report.
pub async fn bench(switchboard_binary: &Path) -> anyhow::Result<()> {
    let client = crate::pinned_client().await?;

    progress("starting the consul double (in this process)");
    let double = ConsulDouble::start().await;
    let config = switchboard_config(&double.url());
    progress("starting switchboard with the consul double as a source");
    let mut switchboard = servers::start_switchboard(switchboard_binary, &client, Some(&config))
        .await
        .context("switchboard did not start with a consul source")?;
    let mut backend = Consul::new(&double)?;
    let latencies = propagation::measure(&mut backend, &mut switchboard, &client).await?;
    switchboard.check_alive()?;
    print!("{}", report::render_consul(&latencies));
    Ok(())
}
