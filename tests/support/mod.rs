//! Shared pieces of the whole-server tests: a Switchboard on port 0 in this process, the
//! real binary as a child process (killed when the test ends, even on failure, and with
//! the test process when that is killed: see `children`), and waiting for a condition
//! with a deadline.

pub mod children;
pub mod etcd;
pub mod rnacos;
pub mod tls;

use std::ffi::OsStr;
use std::future::Future;
use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use switchboard::config::Config;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long any condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Polls `probe` until it yields `Ok`, or fails the test naming `what` and the last
/// thing `probe` saw (its `Err`) after `deadline`.
pub async fn poll<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        let seen = match probe().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out after {deadline:?} waiting for {what}; last seen: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `probe` until it yields `Some`, or fails the test naming `what` after `deadline`.
pub async fn wait_until<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(what, deadline, || {
        let attempt = probe();
        async move { attempt.await.ok_or_else(|| "not yet".to_owned()) }
    })
    .await
}

/// A config for tests: the given data dir, fast sweeps.
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_owned(),
        ..Config::default()
    };
    config.registry.expiry_interval = Duration::from_millis(50);
    config.registry.heartbeat_flush_interval = Duration::from_millis(100);
    config
}

/// Switchboard served from this process on a free port.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(config: Config) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(switchboard::run(listener, config, async move {
            let _ = stopped.await;
        }));
        let server = TestServer {
            base,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        let url = self.url("/ready");
        let client = self.client.clone();
        wait_until("the server to be ready", DEADLINE, || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let response = client.get(&url).send().await.ok()?;
                response.status().is_success().then_some(())
            }
        })
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Graceful stop: the server drains and flushes heartbeat times.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub async fn register(&self, body: Value) -> Value {
        let response = self
            .client
            .post(self.url("/api/v1/instances"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "register failed: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// `PUT /api/v1/instances/{id}/heartbeat`; returns the reply.
    pub async fn heartbeat(&self, id: &str) -> (reqwest::StatusCode, Value) {
        let url = self.url(&format!("/api/v1/instances/{id}/heartbeat"));
        let response = self.client.put(url).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `PUT /api/v1/instances/{id}/status`, asserting a 200.
    pub async fn set_status(&self, id: &str, status: &str) {
        let url = self.url(&format!("/api/v1/instances/{id}/status"));
        let body = serde_json::json!({ "status": status });
        let response = self.client.put(url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200, "set {id} {status}");
    }

    /// The `X-Switchboard-Index` of a service's instance list right now.
    pub async fn index_of(&self, service: &str) -> u64 {
        let url = self.url(&format!("/api/v1/services/{service}/instances"));
        let response = self.client.get(url).send().await.unwrap();
        index_header(&response)
    }

    pub async fn get_json(&self, path: &str) -> (reqwest::StatusCode, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn metric(&self, name: &str) -> f64 {
        metric(&self.client, &self.base, name).await
    }
}

/// The value of the unlabelled metric `name` of the server at `base` (0 when absent).
pub async fn metric(client: &reqwest::Client, base: &str, name: &str) -> f64 {
    metric_in(&metrics_text(client, base).await, name)
}

/// The server's `/metrics` exposition.
pub async fn metrics_text(client: &reqwest::Client, base: &str) -> String {
    (client.get(format!("{base}/metrics")).send().await.unwrap())
        .text()
        .await
        .unwrap()
}

/// The value of the unlabelled metric `name` in a `/metrics` exposition (0 when absent).
pub fn metric_in(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The `X-Switchboard-Index` header of a discovery response.
pub fn index_header(response: &reqwest::Response) -> u64 {
    response.headers()["x-switchboard-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A free TCP port on 127.0.0.1 (the listener is closed before the port is used).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How `child` exited, waiting for it (as `what`) at most [`DEADLINE`].
pub async fn exit_of(child: &mut Child, what: &str) -> std::process::ExitStatus {
    poll(what, DEADLINE, || {
        let seen = child.try_wait();
        async move {
            match seen {
                Ok(Some(exit)) => Ok(exit),
                Ok(None) => Err("still running".to_owned()),
                Err(err) => Err(err.to_string()),
            }
        }
    })
    .await
}

/// The real `switchboard` binary as a child process; killed on drop.
pub struct BinaryServer {
    pub base: String,
    child: Child,
}

impl BinaryServer {
    pub async fn start(data_dir: &Path) -> BinaryServer {
        BinaryServer::start_with_env(data_dir, &[]).await
    }

    /// [`BinaryServer::start`] with extra environment, e.g. `SWITCHBOARD_*` settings.
    pub async fn start_with_env(data_dir: &Path, env: &[(&str, &str)]) -> BinaryServer {
        BinaryServer::launch(data_dir, env, &[], "127.0.0.1", None, None).await
    }

    /// [`BinaryServer::start_with_env`] listening on `host` (`0.0.0.0`: every interface;
    /// the tests still connect to 127.0.0.1), its `info` log written to `log`.
    pub async fn start_logged(
        data_dir: &Path,
        env: &[(&str, &str)],
        host: &str,
        log: &Path,
    ) -> BinaryServer {
        BinaryServer::launch(data_dir, env, &[], host, Some(log), None).await
    }

    /// The binary serving HTTPS, with `serve` flags (`--tls-cert`, ...) and environment
    /// that set it up; `client` must trust it (and carry a certificate it accepts, when it
    /// asks for one) to see it ready.
    pub async fn start_https(
        data_dir: &Path,
        env: &[(&str, &str)],
        args: &[&OsStr],
        client: &reqwest::Client,
    ) -> BinaryServer {
        BinaryServer::launch(data_dir, env, args, "127.0.0.1", None, Some(client)).await
    }

    async fn launch(
        data_dir: &Path,
        env: &[(&str, &str)],
        args: &[&OsStr],
        host: &str,
        log: Option<&Path>,
        https: Option<&reqwest::Client>,
    ) -> BinaryServer {
        let port = free_port();
        let mut command = children::command(env!("CARGO_BIN_EXE_switchboard"));
        command
            .args(["serve", "--listen", &format!("{host}:{port}"), "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env("RUST_LOG", if log.is_some() { "info" } else { "warn" })
            .envs(env.iter().copied())
            .stdout(Stdio::null());
        match log {
            Some(log) => {
                let file = std::fs::File::create(log).expect("create the log file");
                command.stdout(file.try_clone().unwrap()).stderr(file)
            }
            None => command.stderr(Stdio::inherit()),
        };
        let child = children::spawn(command).expect("start the switchboard binary");
        let plain = reqwest::Client::new();
        let (scheme, client) = match https {
            Some(client) => ("https", client),
            None => ("http", &plain),
        };
        let server = BinaryServer {
            base: format!("{scheme}://127.0.0.1:{port}"),
            child,
        };
        let url = format!("{}/ready", server.base);
        wait_until("the binary to be ready", DEADLINE, || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                client
                    .get(&url)
                    .send()
                    .await
                    .ok()?
                    .status()
                    .is_success()
                    .then_some(())
            }
        })
        .await;
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("kill -9 the server");
        self.child.wait().expect("reap the server");
    }

    /// SIGTERM, as an operator stops it: the server drains and flushes. Fails the test
    /// unless it exits cleanly within [`DEADLINE`].
    pub async fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {pid}: {sent}");
        let exit = exit_of(&mut self.child, "the binary to exit after SIGTERM").await;
        assert!(
            exit.success(),
            "the server exited with {exit} after SIGTERM"
        );
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
