//! The Consul double as a standalone server, to try Switchboard's Consul source without
//! a Consul: `cargo run -p consul-double --example consul-double -- [PORT]` (default
//! 8500), then register services with `curl -X PUT .../v1/agent/service/register`.

use consul_double::{ConsulDouble, Options};

#[tokio::main]
async fn main() {
    let port = match std::env::args().nth(1) {
        Some(port) => port.parse().unwrap_or_else(|_| {
            eprintln!("usage: consul-double [PORT]   (PORT: 1-65535, default 8500)");
            std::process::exit(2)
        }),
        None => 8500,
    };
    let options = Options {
        port,
        ..Options::default()
    };
    let consul = ConsulDouble::start_with(options).await;
    println!(
        "Consul double (agent API, catalog, health, blocking queries) on {}",
        consul.url()
    );
    println!("Ctrl-C to stop; its state lives in memory only.");
    let _ = tokio::signal::ctrl_c().await;
}
