//! A real Nacos server (`rnacos` 0.8.8, installed by `make deps`) for tests of the Nacos
//! source: started on free ports (HTTP, gRPC at HTTP + 1000 as Nacos clients assume,
//! console) with a private data dir, waited for until its HTTP API and gRPC port answer
//! and its store is settled; killed with SIGKILL and restarted on the same ports and
//! data; always killed when the test ends, also when it fails, and with the test process
//! when that is killed. Optionally with auth on (`RNACOS_ENABLE_OPEN_API_AUTH`): this
//! helper then logs in as the admin and sends the token with every call.
//!
//! Instances are written two ways, as a Nacos user would: through the HTTP OpenAPI
//! (`/nacos/v1/ns/instance`, one local request, returning once rnacos has stored the
//! write) and through the official `nacos-sdk` over gRPC (`instance.rs`). rnacos's
//! probing of persistent instances' `ip:port` is turned off, so test instances at
//! unreachable addresses stay healthy.

use std::fs::File;
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::time::Instant;

mod instance;

pub use instance::Registration;

/// How long rnacos may take to answer (slow under a loaded, parallel test run).
const START_DEADLINE: Duration = Duration::from_secs(30);

/// How long a write may be retried before rnacos counts as broken.
const WRITE_DEADLINE: Duration = Duration::from_secs(10);

/// Nacos clients reach the gRPC API at the HTTP port plus this.
const GRPC_PORT_OFFSET: u16 = 1000;

/// The `public` namespace, Nacos's default (`""` means it too).
pub const PUBLIC: &str = "public";

/// Nacos's default group.
pub const DEFAULT_GROUP: &str = "DEFAULT_GROUP";

/// One single-node rnacos, owned by the test.
pub struct RnacosServer {
    http_port: u16,
    console_port: u16,
    dir: TempDir,
    child: Option<Child>,
    http: reqwest::Client,
    /// The admin's credentials when auth is on.
    admin: Option<(String, String)>,
    /// The admin's access token when auth is on; every call sends it.
    token: Option<String>,
    /// Where the current process's part of the log starts.
    log_start: usize,
}

impl RnacosServer {
    /// Starts rnacos without auth on free ports with an empty data dir; returns once it
    /// answers.
    pub async fn start() -> RnacosServer {
        RnacosServer::start_with(None).await
    }

    /// Starts rnacos with OpenAPI auth on and `username` / `password` as its admin.
    pub async fn start_with_auth(username: &str, password: &str) -> RnacosServer {
        RnacosServer::start_with(Some((username.to_owned(), password.to_owned()))).await
    }

    async fn start_with(admin: Option<(String, String)>) -> RnacosServer {
        let (http_port, console_port) = pick_ports();
        let mut server = RnacosServer {
            http_port,
            console_port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
            http: reqwest::Client::new(),
            admin,
            token: None,
            log_start: 0,
        };
        server.spawn().await;
        server
    }

    /// `http://127.0.0.1:PORT`, the HTTP API (what a source's `endpoints` lists).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The process id of the running rnacos.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn grpc_port(&self) -> u16 {
        self.http_port + GRPC_PORT_OFFSET
    }

    /// SIGKILL: rnacos gets no chance to say goodbye to its clients.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error here only means it has exited already.
            let _ = child.kill();
            child.wait().expect("reap rnacos");
        }
    }

    /// Starts rnacos again on the same ports and data dir (killing it first if it runs);
    /// persistent instances survive, ephemeral ones wait for their clients to re-register.
    pub async fn restart(&mut self) {
        self.kill_9();
        self.wait_ports_free().await;
        self.spawn().await;
    }

    /// Starts the process and waits until it is usable, trying up to eight times:
    /// another
    /// process may take a port between choosing and binding it, and now and then (more
    /// often on a loaded machine) rnacos 0.8.8 applies its first raft entry before its
    /// store is wired (a panic in `raftapply.rs`), after which it serves but never comes
    /// back from a restart ("unknown the raft leader addr"). A fresh start is retried on
    /// new ports and a new dir, a restart on the same ones.
    async fn spawn(&mut self) {
        // Its start-up race was lost on about 40% of starts on a 2-core machine under full
        // load: eight tries leave well under one failure in a thousand starts.
        const START_ATTEMPTS: u32 = 8;
        // One rnacos starts at a time in this process: its start-up race (above) is
        // lost far more often when several start at once on a busy machine.
        static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one_at_a_time = STARTING.lock().await;
        let fresh = !self.data_dir().exists();
        for attempt in 1..=START_ATTEMPTS {
            self.launch();
            let failure = match self.wait_ready().await {
                Ok(()) => match self.settle().await {
                    Ok(()) if self.exited().is_none() => return,
                    Ok(()) => "it exited".to_owned(),
                    Err(failure) => failure,
                },
                Err(failure) => failure,
            };
            assert!(
                attempt < START_ATTEMPTS,
                "rnacos is not usable: {failure}\n{}",
                self.log_tail()
            );
            eprintln!(
                "rnacos is not usable ({failure}); starting it again\n{}",
                self.log_tail()
            );
            self.kill_9();
            if fresh {
                self.dir = tempfile::tempdir().unwrap();
                (self.http_port, self.console_port) = pick_ports();
            } else {
                self.wait_ports_free().await;
            }
        }
    }

    /// The exit status, if the process has ended.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        child.try_wait().expect("rnacos's status")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn launch(&mut self) {
        self.log_start = self.log().len();
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let binary = find_rnacos().unwrap_or_else(|| {
            panic!(
                "`rnacos` is not installed (not on PATH, not in ~/.cargo/bin): run \
                 `make deps` (it runs `cargo install rnacos --version 0.8.8 --locked`)"
            )
        });
        let mut command = super::children::command(binary);
        // Settings of whoever runs the tests must not leak into the test's server.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("RNACOS_") {
                command.env_remove(key);
            }
        }
        command
            .current_dir(self.dir.path())
            .env("RNACOS_HTTP_PORT", self.http_port.to_string())
            .env("RNACOS_GRPC_PORT", self.grpc_port().to_string())
            .env("RNACOS_HTTP_CONSOLE_PORT", self.console_port.to_string())
            .env("RNACOS_DATA_DIR", self.data_dir())
            .env("RNACOS_SDK_HOST", "127.0.0.1")
            .env("RNACOS_CONSOLE_HOST", "127.0.0.1")
            // 0 turns the TCP probe of persistent instances off; it would mark every test
            // instance (10.x addresses that nothing serves) unhealthy.
            .env(
                "RNACOS_NAMING_PERPETUAL_INSTANCE_PROBE_INTERVAL_SECOND",
                "0",
            )
            .env("RNACOS_ENABLE_METRICS", "false")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some((username, password)) = &self.admin {
            command
                .env("RNACOS_ENABLE_OPEN_API_AUTH", "true")
                .env("RNACOS_INIT_ADMIN_USERNAME", username)
                .env("RNACOS_INIT_ADMIN_PASSWORD", password);
        }
        let child = super::children::spawn(command)
            .unwrap_or_else(|err| panic!("cannot start rnacos: {err}"));
        self.child = Some(child);
    }

    /// Logs in (when auth is on), writes one config entry and waits until rnacos's store
    /// has applied everything it logged; then rnacos is usable, unless it has panicked
    /// on the way (see [`RnacosServer::spawn`]), which its log tells.
    async fn settle(&mut self) -> Result<(), String> {
        let give_up = Instant::now() + WRITE_DEADLINE;
        self.token = None;
        loop {
            let settled = self.try_settle().await;
            let log = self.log();
            if log.get(self.log_start..).unwrap_or("").contains("panicked") {
                return Err("it panicked".to_owned());
            }
            let failure = match settled {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            if Instant::now() >= give_up {
                return Err(failure);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn try_settle(&mut self) -> Result<(), String> {
        if let Some((username, password)) = self.admin.clone() {
            if self.token.is_none() {
                self.token = Some(self.login(&username, &password).await?);
            }
        }
        self.try_settle_store().await
    }

    /// Writes one config entry, which goes through rnacos's raft log like persistent
    /// instances and users do, then checks that everything logged is applied.
    async fn try_settle_store(&self) -> Result<(), String> {
        let form = [
            ("dataId", "switchboard-harness"),
            ("group", "probe"),
            ("content", "ready"),
        ];
        let written = self.call(reqwest::Method::POST, "/nacos/v1/cs/configs", &form);
        let (status, text) = written.await?;
        if !status.is_success() || text.trim() != "true" {
            return Err(format!("config write: {status}: {text}"));
        }
        let (_, text) = self
            .call(reqwest::Method::GET, "/nacos/v1/raft/metrics", &[])
            .await?;
        let metrics: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let applied = metrics["last_applied"].as_u64();
        let settled = metrics["current_leader"].is_u64()
            && applied.is_some()
            && applied >= metrics["last_log_index"].as_u64();
        if settled {
            Ok(())
        } else {
            Err(format!("raft log not applied yet: {text}"))
        }
    }

    /// One request with the token: its status and body, or why it got none.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<(reqwest::StatusCode, String), String> {
        let url = format!("{}{path}", self.endpoint());
        let request = self.authed(self.http.request(method, &url)).query(query);
        let response = request.send().await.map_err(|err| err.to_string())?;
        let status = response.status();
        Ok((status, response.text().await.unwrap_or_default()))
    }

    /// Waits until `/health` answers 200 and the gRPC port accepts connections.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let url = format!("{}/health", self.endpoint());
        let grpc = ("127.0.0.1", self.grpc_port());
        let give_up = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self.exited() {
                return Err(format!("it exited ({status}) before it answered"));
            }
            let http_ok = match self.http.get(&url).send().await {
                Ok(response) => response.status().is_success(),
                Err(_) => false,
            };
            if http_ok && tokio::net::TcpStream::connect(grpc).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= give_up {
                return Err(format!("it did not answer within {START_DEADLINE:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// After a kill the kernel may take a moment to release the listening ports.
    async fn wait_ports_free(&self) {
        let ports = [self.http_port, self.grpc_port(), self.console_port];
        let give_up = Instant::now() + START_DEADLINE;
        while !ports
            .iter()
            .all(|port| StdListener::bind(("127.0.0.1", *port)).is_ok())
        {
            assert!(
                Instant::now() < give_up,
                "the ports {ports:?} of the killed rnacos are still taken after \
                 {START_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("rnacos.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The end of rnacos's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// `POST /nacos/v1/auth/login`: the access token, or rnacos's reply when it refuses.
    pub async fn login(&self, username: &str, password: &str) -> Result<String, String> {
        let url = format!("{}/nacos/v1/auth/login", self.endpoint());
        let form = [("username", username), ("password", password)];
        let response = self.http.post(&url).query(&form).send().await;
        let response = response.map_err(|err| err.to_string())?;
        let status = response.status();
        let text = response.text().await.map_err(|err| err.to_string())?;
        let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match reply["accessToken"].as_str() {
            Some(token) if status.is_success() => Ok(token.to_owned()),
            _ => Err(format!("{status}: {text}")),
        }
    }

    /// Registers (or overwrites) `instance` through the HTTP OpenAPI.
    pub async fn register(&self, instance: &Registration) {
        self.write(reqwest::Method::POST, instance.params()).await;
    }

    /// `PUT /nacos/v1/ns/instance`: updates `enabled`, `weight` and `metadata` of an
    /// instance. rnacos keeps the old weight when the new one is 1.0, and ignores
    /// `healthy` from HTTP (only gRPC clients and its own checks set it).
    pub async fn update(&self, instance: &Registration) {
        self.write(reqwest::Method::PUT, instance.params()).await;
    }

    /// Deregisters `instance` through the HTTP OpenAPI.
    pub async fn deregister(&self, instance: &Registration) {
        let params = instance.key_params();
        self.write(reqwest::Method::DELETE, params).await;
    }

    /// One write to `/nacos/v1/ns/instance`, retried while rnacos does not answer `ok`.
    async fn write(&self, method: reqwest::Method, params: Vec<(&'static str, String)>) {
        let url = format!("{}/nacos/v1/ns/instance", self.endpoint());
        let give_up = Instant::now() + WRITE_DEADLINE;
        loop {
            let request = self.http.request(method.clone(), &url);
            let reply = match self.authed(request).query(&params).send().await {
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    if status.is_success() && text.trim() == "ok" {
                        return self.wait_stored().await;
                    }
                    format!("{status}: {text}")
                }
                Err(err) => err.to_string(),
            };
            assert!(
                Instant::now() < give_up,
                "rnacos refused {method} {params:?}: {reply}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// rnacos answers a write of a persistent instance before it has stored it: it
    /// hands it to its raft log afterwards, and an entry logged but not yet applied when
    /// rnacos is killed shows again only after a leader election (2.5-5 s) once it is
    /// back. So a write returns once a write of this helper's own, queued behind it, is
    /// done and everything logged is applied: then `kill -9` loses nothing.
    async fn wait_stored(&self) {
        let give_up = Instant::now() + WRITE_DEADLINE;
        loop {
            let stored = self.try_settle_store().await;
            let failure = match stored {
                Ok(()) => return,
                Err(failure) => failure,
            };
            assert!(
                Instant::now() < give_up,
                "rnacos did not store a write: {failure}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The sorted ips rnacos lists for `namespace`/`group`/`service`.
    pub async fn ips(&self, namespace: &str, group: &str, service: &str) -> Vec<String> {
        let hosts = self.hosts(namespace, group, service).await;
        let mut ips: Vec<String> = hosts
            .iter()
            .map(|host| host["ip"].as_str().unwrap_or_default().to_owned())
            .collect();
        ips.sort();
        ips
    }

    /// The instances of `namespace`/`group`/`service` as rnacos lists them
    /// (`/nacos/v1/ns/instance/list`, unhealthy ones too, disabled ones never): the
    /// `hosts` array.
    pub async fn hosts(&self, namespace: &str, group: &str, service: &str) -> Vec<Value> {
        let url = format!("{}/nacos/v1/ns/instance/list", self.endpoint());
        let query = [
            ("namespaceId", namespace),
            ("groupName", group),
            ("serviceName", service),
            ("healthyOnly", "false"),
        ];
        let request = self.authed(self.http.get(&url)).query(&query);
        let response = request
            .send()
            .await
            .unwrap_or_else(|err| panic!("rnacos instance list: {err}\n{}", self.log_tail()));
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "rnacos instance list: {status} {body}");
        body["hosts"].as_array().cloned().unwrap_or_default()
    }

    fn authed(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.query(&[("accessToken", token)]),
            None => request,
        }
    }
}

impl Drop for RnacosServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// rnacos on PATH, else where `cargo install` puts it.
fn find_rnacos() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("rnacos"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let installed = PathBuf::from(std::env::var_os("HOME")?).join(".cargo/bin/rnacos");
        installed.is_file().then_some(installed)
    })
}

/// A free HTTP port whose gRPC companion (+1000) is free too, and a free console port;
/// all three are held at once, so they differ.
fn pick_ports() -> (u16, u16) {
    for _ in 0..100 {
        let http = StdListener::bind("127.0.0.1:0").unwrap();
        let port = http.local_addr().unwrap().port();
        let Some(grpc_port) = port.checked_add(GRPC_PORT_OFFSET) else {
            continue;
        };
        let Ok(grpc) = StdListener::bind(("127.0.0.1", grpc_port)) else {
            continue;
        };
        let console = StdListener::bind("127.0.0.1:0").unwrap();
        let console_port = console.local_addr().unwrap().port();
        drop((http, grpc, console));
        return (port, console_port);
    }
    panic!("cannot find two free ports 1000 apart for rnacos");
}
