//! What the tests with real Consul clients share: the Switchboard binary with its Consul
//! door (sources from a config file, settings from the environment), the py-consul venv
//! `scripts/deps.sh` makes, and running a py-consul script whose checks must all pass.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::support::{free_port, poll, BinaryServer};

/// How long a server-side change may take to show through the Consul API; a source's
/// connect and first sync count too.
pub const SLOW: Duration = Duration::from_secs(20);

/// A py-consul script runs for seconds; a hung one fails instead of stalling the suite.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

/// The py-consul version `scripts/deps.sh` pins.
const PY_CONSUL: &str = "1.8.0";

/// Where the Consul API is served.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// Under `/v1/` on the main listener.
    Main,
    /// On a listener of its own (`[consul] listen`, here `SWITCHBOARD_CONSUL__LISTEN`).
    OwnListener,
}

/// The `switchboard` binary, with the address of its Consul API.
pub struct Switchboard {
    pub server: BinaryServer,
    /// `host:port` of the Consul API.
    pub consul: String,
    pub dir: TempDir,
    pub http: reqwest::Client,
}

impl Switchboard {
    /// Starts the binary with `sources` (`[[sources]]` tables, may be empty) as its config
    /// file and `env` (`SWITCHBOARD_*`) on top; returns once the Consul API answers.
    pub async fn start(sources: &str, env: &[(&str, &str)], door: Door) -> Switchboard {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("switchboard.toml");
        std::fs::write(&config, sources).unwrap();
        let config = config.display().to_string();
        let listen = format!("127.0.0.1:{}", free_port());
        let mut all = vec![("SWITCHBOARD_CONFIG", config.as_str())];
        if door == Door::OwnListener {
            all.push(("SWITCHBOARD_CONSUL__LISTEN", listen.as_str()));
        }
        all.extend_from_slice(env);
        let server = BinaryServer::start_with_env(&dir.path().join("data"), &all).await;
        let consul = match door {
            Door::Main => server.base.trim_start_matches("http://").to_owned(),
            Door::OwnListener => listen,
        };
        let switchboard = Switchboard {
            server,
            consul,
            dir,
            http: reqwest::Client::new(),
        };
        // Any answer will do: the test itself says what a wrong one means.
        let url = switchboard.consul_url("/v1/status/leader");
        let http = switchboard.http.clone();
        poll("the Consul API's listener to answer", SLOW, || {
            let request = http.get(&url).send();
            async move { request.await.map(drop).map_err(|err| err.to_string()) }
        })
        .await;
        switchboard
    }

    pub fn consul_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.consul)
    }

    /// The native API's base URL.
    pub fn base(&self) -> &str {
        &self.server.base
    }

    /// `POST /api/v1/instances` (no access control), which must succeed.
    pub async fn register(&self, body: Value) {
        let url = format!("{}/api/v1/instances", self.base());
        let response = self.http.post(url).json(&body).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "register {body}: {status} {text}");
    }

    /// `DELETE /api/v1/instances/{id}`, which must succeed.
    pub async fn deregister(&self, id: &str) {
        let url = format!("{}/api/v1/instances/{id}", self.base());
        let response = self.http.delete(url).send().await.unwrap();
        let status = response.status();
        assert!(status.is_success(), "deregister {id}: {status}");
    }

    /// Waits until source `id` is `ready`.
    pub async fn wait_source_ready(&self, id: &str) {
        let url = format!("{}/api/v1/sources/{id}", self.base());
        let http = self.http.clone();
        poll(&format!("source {id} to be ready"), SLOW, || {
            let request = http.get(&url).send();
            async move {
                let response = request.await.map_err(|err| err.to_string())?;
                let status: Value = response.json().await.map_err(|err| err.to_string())?;
                (status["state"] == "ready")
                    .then_some(())
                    .ok_or_else(|| status.to_string())
            }
        })
        .await;
    }

    /// `GET` of a Consul API path: the status, and the JSON body (null when not JSON).
    pub async fn consul_get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.consul_url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A command running the py-consul script `name` against this server.
    pub fn python(&self, name: &str) -> tokio::process::Command {
        let python = py_consul_python();
        let mut command = tokio::process::Command::new(python);
        // `-u`: each line the script prints reaches the test at once.
        command.arg("-u").arg(script(name));
        // A developer's Consul settings must not redirect the client (py-consul lets
        // CONSUL_HTTP_TOKEN override the token it is given).
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CONSUL_") {
                command.env_remove(key);
            }
        }
        command
            .env("SB_CONSUL", &self.consul)
            .env("SB_BASE", self.base())
            // No __pycache__ in the source tree.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .current_dir(self.dir.path())
            .kill_on_drop(true);
        command
    }

    /// Runs the py-consul script `name` (with `env` besides the server's addresses) and
    /// fails the test naming every check that failed, with the last HTTP exchange of
    /// each; returns the script's report (`passed`, `notes`).
    pub async fn run_checks(&self, name: &str, env: &[(&str, &str)]) -> Value {
        let mut command = self.python(name);
        command.envs(env.iter().copied()).stdin(Stdio::null());
        let run = tokio::time::timeout(SCRIPT_DEADLINE, command.output());
        let output = run
            .await
            .unwrap_or_else(|_| panic!("{name} ran longer than {SCRIPT_DEADLINE:?}"))
            .unwrap_or_else(|err| panic!("run {name}: {err}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let report: Value = stdout
            .lines()
            .last()
            .and_then(|line| serde_json::from_str(line).ok())
            .unwrap_or_else(|| {
                panic!(
                    "{name} gave no report ({}):\n{stdout}\n{stderr}",
                    output.status
                )
            });
        let failed = report["failed"].as_array().cloned().unwrap_or_default();
        println!("{name}: passed {}", report["passed"]);
        println!("{name}: notes {}", report["notes"]);
        if !failed.is_empty() || !output.status.success() {
            let listed: Vec<String> = failed
                .iter()
                .map(|f| {
                    format!(
                        "- {} (at {}): {}\n  last exchange: {}",
                        f["check"].as_str().unwrap_or_default(),
                        f["at_line"].as_str().unwrap_or("?"),
                        f["error"].as_str().unwrap_or_default(),
                        f["last_exchange"].as_str().unwrap_or("none"),
                    )
                })
                .collect();
            panic!(
                "{name}: {} of {} checks failed ({}):\n{}\n{stderr}",
                failed.len(),
                failed.len() + report["passed"].as_array().map_or(0, Vec::len),
                output.status,
                listed.join("\n")
            );
        }
        report
    }
}

/// A script in this directory.
fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/server/consul_clients")
        .join(name)
}

/// The venv's python, with py-consul at the pinned version; fails the test naming
/// `make deps` when it is not there.
fn py_consul_python() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache")
        });
    let python = cache.join("switchboard/venv/bin/python");
    let version = std::process::Command::new(&python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('py-consul'))",
        ])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    assert!(
        version.as_deref() == Some(PY_CONSUL),
        "py-consul {PY_CONSUL} is not installed in {} (found {version:?}): run `make deps` \
         (scripts/deps.sh installs it)",
        python.display()
    );
    python
}
