//! `/openapi.json` says what the server does: schemathesis (installed by `scripts/deps.sh`)
//! runs every one of its checks over the document against the real binary, with a fixed
//! seed and a bounded number of examples, and must find nothing. Its settings beyond the
//! command line, each with its reason, are in `openapi/schemathesis.toml`.
//!
//! Nothing it sends reaches beyond 127.0.0.1: a source document it makes up is an
//! arbitrary object (the document cannot say a connector's fields), which the server
//! refuses before connecting anywhere, and the one source the test adds points at a
//! closed local port; a sync job it could create writes into this server's own registry.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::support::BinaryServer;

/// The seed: a failure reproduces with `st run ... --seed 15`.
const SEED: &str = "15";
/// Examples per operation and phase: about a minute on two cores.
const EXAMPLES: &str = "20";
/// Far beyond the run's usual minute; a hung run fails instead of stalling the suite.
const RUN_DEADLINE: Duration = Duration::from_secs(600);

/// Where `scripts/deps.sh` installs schemathesis's `st`.
fn st() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache")
        });
    cache.join("switchboard/venv/bin/st")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_difference_between_the_document_and_the_server() {
    let st = st();
    assert!(
        st.exists(),
        "{} is missing: run `make deps` (scripts/deps.sh installs schemathesis)",
        st.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Blocking queries give up after half a second, so none outlasts a request timeout.
    let server = BinaryServer::start_with_env(
        &data,
        &[
            ("SWITCHBOARD_API__MAX_WAIT", "500ms"),
            ("SWITCHBOARD_API__DEFAULT_WAIT", "500ms"),
        ],
    )
    .await;
    // What the paths name half the time (`openapi/schemathesis.toml`), so operations meet
    // real data. The source's etcd is a closed local port: it stays unreachable.
    let client = reqwest::Client::new();
    for (path, body) in [
        (
            "/api/v1/instances",
            json!({"id": "orders-1", "service": "orders", "address": "10.0.0.7:8080",
                   "metadata": {"zone": "eu-1"}, "tags": ["blue"], "ttl_seconds": 86400}),
        ),
        (
            "/api/v1/sources",
            json!({"id": "etcd-closed", "type": "etcd", "endpoints": ["http://127.0.0.1:1"]}),
        ),
        (
            "/api/v1/syncs",
            json!({"id": "to-native", "from": "*", "to": "native"}),
        ),
    ] {
        let response = client
            .post(format!("{}{path}", server.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "POST {path}: {}",
            response.status()
        );
    }
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/server/openapi/schemathesis.toml"
    );
    let run = tokio::process::Command::new(&st)
        .arg("--config-file")
        .arg(config)
        .args(["run", &format!("{}/openapi.json", server.base)])
        .args([
            "--checks",
            "all",
            "--seed",
            SEED,
            "--max-examples",
            EXAMPLES,
        ])
        // No example database: a run depends on its seed only, not on earlier runs.
        .args(["--generation-database", "none", "--no-color"])
        .args(["--request-timeout", "5"])
        // Its reports and caches land in the temporary directory.
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(RUN_DEADLINE, run)
        .await
        .unwrap_or_else(|_| panic!("schemathesis ran longer than {RUN_DEADLINE:?}"))
        .expect("run schemathesis");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found differences ({}):\n{printed}",
        output.status
    );
    assert!(
        printed.contains(" passed"),
        "schemathesis ran no test:\n{printed}"
    );
    drop(server);
}
