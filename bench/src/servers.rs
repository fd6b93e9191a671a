//! The servers under test: each runs as a child process pinned to core 0, in its own temp
//! dir, and is killed when its [`Server`] guard drops, so an error or a panic anywhere in
//! the bench leaves nothing running and nothing on disk. A server can also be stopped
//! the way an operator would (SIGTERM) and started again on the same dir.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use tempfile::TempDir;

/// The service every target registers its instances under.
pub const SERVICE: &str = "bench-svc";
/// How many instances every target holds.
pub const INSTANCES: usize = 100;
/// Switchboard's discovery read, the path the static baseline also answers.
pub const SWITCHBOARD_READ_PATH: &str = "/api/v1/services/bench-svc/instances";

const LOG_FILE: &str = "server.log";

/// A running child process. Fields drop in order, so the process is dead before its
/// temp dir (data, log) is removed.
pub struct Server {
    child: Child,
    name: &'static str,
    port: u16,
    /// What started the child, kept so [`Server::restart`] can start it again.
    launch: Launch,
    dir: TempDir,
}

/// A program, its arguments and the environment it gets on top of the bench's.
struct Launch {
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(String, String)>,
}

impl Launch {
    /// Starts the program under `taskset -c 0` with its working directory in `dir`, so
    /// a stray `.env` or config file in the caller's directory cannot change it.
    fn spawn(&self, name: &str, dir: &Path, log: File) -> anyhow::Result<Child> {
        let mut command = Command::new("taskset");
        command
            .arg("-c")
            .arg("0")
            .arg(&self.program)
            .args(&self.args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // The user's own settings (a debug log level, say) would make runs incomparable.
        command.env_remove("RUST_LOG");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SWITCHBOARD_") {
                command.env_remove(key);
            }
        }
        command.envs(self.envs.iter().map(|(key, value)| (key, value)));
        command
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", self.program.display()))
    }
}

impl Server {
    /// Starts `program args` pinned to core 0 in `dir` (see [`Launch::spawn`]).
    pub fn spawn_pinned(
        name: &'static str,
        dir: TempDir,
        port: u16,
        program: &Path,
        args: &[OsString],
        envs: &[(&str, String)],
    ) -> anyhow::Result<Server> {
        let log = File::create(dir.path().join(LOG_FILE)).context("cannot create a log file")?;
        let launch = Launch {
            program: program.to_owned(),
            args: args.to_vec(),
            envs: envs
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone()))
                .collect(),
        };
        let child = launch.spawn(name, dir.path(), log)?;
        Ok(Server {
            child,
            name,
            port,
            launch,
            dir,
        })
    }

    /// Stops the server as an operator would, with SIGTERM, and waits for it to exit.
    /// Fails if it is still running after `timeout` (it is killed when the guard drops)
    /// or exits with an error. Returns how long it took to exit.
    pub async fn stop(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        self.check_alive()?;
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("cannot run kill")?;
        if !sent.success() {
            bail!("kill -TERM {} failed ({sent})", self.pid());
        }
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!(
                        "{} exited with {status} on SIGTERM; its log ends with:\n{}",
                        self.name,
                        self.log_tail()
                    );
                }
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                bail!(
                    "{} is still running {timeout:?} after SIGTERM; its log ends with:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Starts the stopped server again with the same program, arguments, port and dir
    /// (so on the same data), its output appended to the same log.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_none() {
            bail!(
                "{} is still running; stop it before restarting it",
                self.name
            );
        }
        let log = OpenOptions::new()
            .append(true)
            .open(self.dir.path().join(LOG_FILE))
            .context("cannot reopen the log file")?;
        self.child = self.launch.spawn(self.name, self.dir.path(), log)?;
        Ok(())
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's process id. `taskset` execs the program, so this is the server itself.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails, quoting the end of the server's log, if it has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); its log ends with:\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }

    /// The last lines of the server's output, for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join(LOG_FILE)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Polls `path` until it answers 200 and returns that body. `accept` may reject a
    /// 200 whose body is not what readiness means for this server (and say why).
    pub async fn wait_for(
        &mut self,
        client: &reqwest::Client,
        path: &str,
        timeout: Duration,
        accept: impl Fn(&Bytes) -> Result<(), String>,
    ) -> anyhow::Result<Bytes> {
        let url = self.url(path);
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let last = match client.get(&url).send().await {
                Ok(response) if response.status().is_success() => {
                    let body = response.bytes().await?;
                    match accept(&body) {
                        Ok(()) => return Ok(body),
                        Err(why) => why,
                    }
                }
                Ok(response) => format!("status {}", response.status()),
                Err(err) => err.to_string(),
            };
            if Instant::now() > deadline {
                bail!(
                    "{} did not get ready: GET {url} still fails after {timeout:?} ({last}); \
                     its log ends with:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now. Another process could take it before the server
/// binds; on a bench machine that race is rare enough to accept.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Whether `port` can be bound on loopback right now.
pub fn port_is_free(port: u16) -> bool {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).is_ok()
}

pub fn temp_dir(name: &str) -> anyhow::Result<TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("switchboard-bench-{name}-"))
        .tempdir()
        .context("cannot create a temp dir")
}

/// A `[[sources]]` table for Switchboard's config file: source `id` of type `kind` reading
/// `endpoint`, followed by `extra` (whole `key = value` lines).
pub fn source_config(id: &str, kind: &str, endpoint: &str, extra: &str) -> String {
    format!("[[sources]]\nid = \"{id}\"\ntype = \"{kind}\"\nendpoints = [\"{endpoint}\"]\n{extra}")
}

/// Starts Switchboard with an empty store and waits for `/ready`. `config` is the text of
/// a TOML config file (`[[sources]]`, say) passed with `--config`.
pub async fn start_switchboard(
    binary: &Path,
    client: &reqwest::Client,
    config: Option<&str>,
) -> anyhow::Result<Server> {
    start_switchboard_with_env(binary, client, config, &[]).await
}

/// [`start_switchboard`] with `SWITCHBOARD_*` settings in its environment (which a build
/// that lacks a setting ignores, so a before/after comparison runs the same bench).
pub async fn start_switchboard_with_env(
    binary: &Path,
    client: &reqwest::Client,
    config: Option<&str>,
    envs: &[(&str, String)],
) -> anyhow::Result<Server> {
    let dir = temp_dir("switchboard")?;
    let port = free_port()?;
    let mut args: Vec<OsString> = vec![
        "serve".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}").into(),
        "--data-dir".into(),
        dir.path().join("data").into(),
    ];
    if let Some(config) = config {
        let file = dir.path().join("switchboard.toml");
        std::fs::write(&file, config).context("cannot write Switchboard's config file")?;
        args.extend(["--config".into(), file.into()]);
    }
    let mut server = Server::spawn_pinned("switchboard", dir, port, binary, &args, envs)?;
    wait_ready(&mut server, client).await?;
    Ok(server)
}

/// Waits until a (re)started Switchboard answers `/ready`.
pub async fn wait_ready(server: &mut Server, client: &reqwest::Client) -> anyhow::Result<()> {
    server
        .wait_for(client, "/ready", Duration::from_secs(30), |_| Ok(()))
        .await?;
    Ok(())
}

/// Registers the bench instances (with `token`, when access control is on) and returns
/// their ids, in registration order.
pub async fn register_switchboard(
    server: &Server,
    client: &reqwest::Client,
    token: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    let url = server.url("/api/v1/instances");
    let mut ids = Vec::with_capacity(INSTANCES);
    for i in 0..INSTANCES {
        let body = serde_json::json!({
            "service": SERVICE,
            "address": format!("10.0.{}.{}:8080", i / 256, i % 256),
            "metadata": {"zone": "a"},
            "ttl_seconds": 3600,
        });
        let mut request = client.post(&url).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("switchboard refused registration {i}: {status}: {text}");
        }
        let view: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("registration {i} answered non-JSON: {text}"))?;
        let id = view["id"]
            .as_str()
            .with_context(|| format!("registration {i} answered without an id: {text}"))?;
        ids.push(id.to_owned());
    }
    Ok(ids)
}

/// Starts the static baseline (this binary's `static-server` mode) serving `body`, and
/// checks it answers exactly those bytes.
pub async fn start_static(
    self_binary: &Path,
    body: &Bytes,
    client: &reqwest::Client,
) -> anyhow::Result<Server> {
    let dir = temp_dir("static")?;
    let body_file: PathBuf = dir.path().join("body.json");
    std::fs::write(&body_file, body).context("cannot write the static body")?;
    let port = free_port()?;
    let args: Vec<OsString> = vec![
        "static-server".into(),
        "--port".into(),
        port.to_string().into(),
        "--body-file".into(),
        body_file.into(),
    ];
    let mut server = Server::spawn_pinned("static", dir, port, self_binary, &args, &[])?;
    server
        .wait_for(
            client,
            SWITCHBOARD_READ_PATH,
            Duration::from_secs(10),
            |served| {
                if served == body {
                    Ok(())
                } else {
                    Err("it serves different bytes than Switchboard".to_owned())
                }
            },
        )
        .await?;
    Ok(server)
}

/// The `static-server` mode: answers every request with the file's bytes as JSON. Built
/// like Switchboard's server (default multi-thread runtime, axum) so the only difference
/// left is the work Switchboard does per request.
pub fn serve_static(args: &[String]) -> anyhow::Result<()> {
    let usage = "usage: switchboard-bench static-server --port PORT --body-file FILE";
    let mut port = None;
    let mut body_file = None;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .with_context(|| format!("{flag} needs a value; {usage}"))?;
        match flag.as_str() {
            "--port" => port = Some(value.parse::<u16>().context("bad --port")?),
            "--body-file" => body_file = Some(PathBuf::from(value)),
            _ => bail!("unknown flag {flag}; {usage}"),
        }
    }
    let (Some(port), Some(body_file)) = (port, body_file) else {
        bail!("{usage}");
    };
    let body = Bytes::from(
        std::fs::read(&body_file)
            .with_context(|| format!("cannot read {}", body_file.display()))?,
    );
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let app = axum::Router::new().fallback(move || {
            let body = body.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_sources_table() {
        let config = source_config("c", "consul", "http://127.0.0.1:1", "wait = \"1m\"\n");
        assert_eq!(
            config,
            "[[sources]]\nid = \"c\"\ntype = \"consul\"\nendpoints = [\"http://127.0.0.1:1\"]\n\
             wait = \"1m\"\n"
        );
    }
}
