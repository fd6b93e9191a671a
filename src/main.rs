//! The `switchboard` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchboard::api::serve::tls;
use switchboard::config::{Config, Overrides};

/// The catalog is hundreds of thousands of small strings; mimalloc's small size classes
/// hold them in less memory than glibc's 32-byte minimum chunks (see `make bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "One service-discovery endpoint in front of many registries"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server: the native registry and the discovery API.
    ///
    /// Settings come from built-in defaults, then the config file, then SWITCHBOARD_*
    /// environment variables (e.g. SWITCHBOARD_REGISTRY__DEFAULT_TTL=10s), then these flags.
    Serve {
        /// Address to listen on [default: 127.0.0.1:8700; config key `listen`]
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Directory of the embedded store, created if missing [default: ./data; config key `data_dir`]
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// TOML config file; see config/switchboard.toml for every key and its default
        #[arg(long, value_name = "FILE", env = "SWITCHBOARD_CONFIG")]
        config: Option<PathBuf>,
        /// Serve HTTPS with this PEM certificate chain; needs --tls-key [config key `tls.cert`]
        #[arg(long, value_name = "FILE")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1) [config key `tls.key`]
        #[arg(long, value_name = "FILE")]
        tls_key: Option<PathBuf>,
        /// Require client certificates signed by a CA in this PEM file [config key `tls.client_ca`]
        #[arg(long, value_name = "FILE")]
        tls_client_ca: Option<PathBuf>,
    },
    /// Create a new admin token in a stopped Switchboard's data dir, for when every
    /// admin secret is lost. Its secret is written to `bootstrap-token` there
    /// (owner-only); the tokens already there are kept.
    Bootstrap {
        /// Directory of the embedded store [default: ./data; config key `data_dir`]
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// TOML config file, to find `data_dir` in
        #[arg(long, value_name = "FILE", env = "SWITCHBOARD_CONFIG")]
        config: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            data_dir,
            config,
            tls_cert,
            tls_key,
            tls_client_ca,
        } => {
            let overrides = Overrides {
                listen,
                data_dir,
                tls_cert,
                tls_key,
                tls_client_ca,
            };
            let config = match Config::load(config.as_deref(), &overrides) {
                Ok(config) => config,
                Err(err) => config_error(&err),
            };
            // Read before binding, so a bad file stops start-up as a bad setting does.
            let tls = match tls::server_config(&config.tls) {
                Ok(tls) => tls,
                Err(err) => config_error(&err),
            };
            switchboard::telemetry::init_tracing(&config.log);
            for var in &config.ignored_env {
                tracing::warn!(variable = %var, "Ignoring environment variable that names no config key");
            }
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(serve(config, tls))
        }
        Command::Bootstrap { data_dir, config } => {
            let overrides = Overrides {
                data_dir,
                ..Overrides::default()
            };
            let config = match Config::load(config.as_deref(), &overrides) {
                Ok(config) => config,
                Err(err) => config_error(&err),
            };
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let file = runtime.block_on(bootstrap(&config.data_dir))?;
            println!(
                "created an admin token; its secret is in {}",
                file.display()
            );
            Ok(())
        }
    }
}

/// [`Command::Bootstrap`]: the store is opened as the server opens it, so a running
/// server (which holds it) makes this fail rather than write beside it.
async fn bootstrap(data_dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    if !data_dir.join("switchboard.redb").exists() {
        anyhow::bail!(
            "{} holds no Switchboard store; start the server with [auth] enabled = true and it bootstraps itself",
            data_dir.display()
        );
    }
    let store = switchboard::store::Store::open(data_dir).map_err(|err| {
        anyhow::anyhow!(
            "cannot open the store in {}: {err} (stop the Switchboard using it first)",
            data_dir.display()
        )
    })?;
    Ok(switchboard::auth::Auth::rebootstrap(store.tokens, data_dir).await?)
}

/// Reports a bad setting or file and exits with code 2, before anything started.
fn config_error(err: &dyn std::fmt::Display) -> ! {
    eprintln!("switchboard: {err}");
    std::process::exit(2);
}

async fn serve(config: Config, tls: Option<Arc<rustls::ServerConfig>>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    switchboard::run_with_tls(listener, config, tls, shutdown_signal()).await
}

/// Completes on Ctrl-C or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled: the accept loop may not poll it before the first
/// connections are taken, and a SIGTERM before then would kill the process unflushed.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {},
                () = wait(terminate) => {},
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Shutdown requested");
    }
}
