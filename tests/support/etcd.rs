//! A real etcd (Debian's 3.4 `etcd`, installed by `make deps`) for tests of the etcd
//! source: started on free ports with a private data dir and waited for until healthy;
//! killed with SIGKILL and restarted on the same ports and data; always killed when the
//! test ends, also when it fails, and with the test process when that is killed.
//!
//! Keys are written through etcd's JSON gateway (`POST /v3/kv/...` on the client port):
//! one local HTTP request per write, returning once etcd has committed it, so a test can
//! time from "the write returned" without the noise of spawning `etcdctl`.

use std::fs::File;
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;

/// How long etcd may take to become healthy (slow under a loaded, parallel test run).
const START_DEADLINE: Duration = Duration::from_secs(30);

/// Password of etcd's `root` user once auth is enabled.
const ROOT_PASSWORD: &str = "root-password-of-the-test";

/// One single-member etcd cluster, owned by the test.
pub struct EtcdServer {
    client_port: u16,
    peer_port: u16,
    dir: TempDir,
    child: Option<Child>,
    http: reqwest::Client,
    /// The root user's token once auth is enabled; every call then sends it.
    root_token: Option<String>,
}

impl EtcdServer {
    /// Starts etcd on free ports with an empty data dir and waits until it is healthy.
    pub async fn start() -> EtcdServer {
        // Both ports are held at once, so they differ.
        let (client, peer) = (bind_any(), bind_any());
        let mut server = EtcdServer {
            client_port: client.local_addr().unwrap().port(),
            peer_port: peer.local_addr().unwrap().port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            http: reqwest::Client::new(),
            root_token: None,
        };
        drop((client, peer));
        server.spawn().await;
        server
    }

    /// `http://127.0.0.1:PORT`, the client URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The process id of the running etcd.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// SIGKILL: etcd gets no chance to say goodbye to its clients.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9 etcd");
            child.wait().expect("reap etcd");
        }
    }

    /// Starts etcd again on the same ports and data dir (killing it first if it runs).
    pub async fn restart(&mut self) {
        self.kill_9();
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let etcd = super::children::on_path("etcd").unwrap_or_else(|| {
            panic!(
                "`etcd` is not installed: run `make deps` (Debian packages etcd-server, etcd-client)"
            )
        });
        let mut command = super::children::command(etcd);
        command
            .args(["--name", "t", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("t={peer}")])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = super::children::spawn(command)
            .unwrap_or_else(|err| panic!("cannot start etcd: {err}"));
        self.child = Some(child);
        self.wait_healthy().await;
        if self.root_token.is_some() {
            // Simple tokens do not survive a restart.
            self.root_token = None;
            self.login_as_root().await;
        }
    }

    async fn wait_healthy(&mut self) {
        let url = format!("{}/health", self.endpoint());
        let give_up = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            if let Ok(response) = self.http.get(&url).send().await {
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if body["health"] == "true" {
                    return;
                }
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().unwrap());
            if let Some(status) = exited {
                self.child = None;
                panic!(
                    "etcd exited ({status}) before it was healthy:\n{}",
                    self.log_tail()
                );
            }
            assert!(
                tokio::time::Instant::now() < give_up,
                "etcd not healthy after {START_DEADLINE:?}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// The end of etcd's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Puts `key = value`; returns the revision of the write.
    pub async fn put(&self, key: &str, value: &str) -> i64 {
        let body = json!({"key": b64(key.as_bytes()), "value": b64(value.as_bytes())});
        revision(&self.call("/v3/kv/put", body).await)
    }

    /// Puts `key = value` attached to `lease`; the key goes when the lease expires.
    pub async fn put_with_lease(&self, key: &str, value: &str, lease: i64) -> i64 {
        let body = json!({
            "key": b64(key.as_bytes()),
            "value": b64(value.as_bytes()),
            "lease": lease.to_string(),
        });
        revision(&self.call("/v3/kv/put", body).await)
    }

    /// Deletes one key; returns the revision after the delete.
    pub async fn delete(&self, key: &str) -> i64 {
        let body = json!({"key": b64(key.as_bytes())});
        revision(&self.call("/v3/kv/deleterange", body).await)
    }

    /// Every `(key, value)` under `prefix`, in key order.
    pub async fn get_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let body = json!({"key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix))});
        let reply = self.call("/v3/kv/range", body).await;
        let kvs = reply["kvs"].as_array().cloned().unwrap_or_default();
        kvs.iter()
            .map(|kv| (unb64_text(&kv["key"]), unb64_text(&kv["value"])))
            .collect()
    }

    /// The store's current revision.
    pub async fn revision(&self) -> i64 {
        let body = json!({"key": b64(b"\0"), "count_only": true});
        revision(&self.call("/v3/kv/range", body).await)
    }

    /// Grants a lease of `ttl` seconds (etcd's minimum is 2 with default timeouts).
    pub async fn grant_lease(&self, ttl: i64) -> i64 {
        let reply = self.call("/v3/lease/grant", json!({ "TTL": ttl })).await;
        int(&reply["ID"])
    }

    /// Whether `key` exists right now.
    pub async fn exists(&self, key: &str) -> bool {
        let body = json!({"key": b64(key.as_bytes()), "count_only": true});
        int(&self.call("/v3/kv/range", body).await["count"]) > 0
    }

    /// Compacts history up to `revision` and waits until it is physically gone: a watch
    /// from an older revision then fails with "required revision has been compacted".
    pub async fn compact(&self, revision: i64) {
        let body = json!({"revision": revision.to_string(), "physical": true});
        self.call("/v3/kv/compaction", body).await;
    }

    /// Turns on authentication: `user` / `password` may read `prefix` and nothing else;
    /// this helper keeps writing as `root`.
    pub async fn enable_auth(&mut self, user: &str, password: &str, prefix: &str) {
        let role = format!("{user}-reader");
        let perm = json!({
            "permType": "READ",
            "key": b64(prefix.as_bytes()),
            "range_end": b64(&prefix_end(prefix)),
        });
        let steps = [
            (
                "/v3/auth/user/add",
                json!({"name": "root", "password": ROOT_PASSWORD}),
            ),
            (
                "/v3/auth/user/grant",
                json!({"user": "root", "role": "root"}),
            ),
            (
                "/v3/auth/user/add",
                json!({"name": user, "password": password}),
            ),
            ("/v3/auth/role/add", json!({ "name": role })),
            ("/v3/auth/role/grant", json!({"name": role, "perm": perm})),
            ("/v3/auth/user/grant", json!({"user": user, "role": role})),
            ("/v3/auth/enable", json!({})),
        ];
        for (path, body) in steps {
            self.call(path, body).await;
        }
        self.login_as_root().await;
    }

    async fn login_as_root(&mut self) {
        let body = json!({"name": "root", "password": ROOT_PASSWORD});
        let reply = self.call("/v3/auth/authenticate", body).await;
        self.root_token = Some(reply["token"].as_str().unwrap().to_owned());
    }

    async fn call(&self, path: &str, body: Value) -> Value {
        let url = format!("{}{}", self.endpoint(), path);
        let mut request = self.http.post(&url).json(&body);
        if let Some(token) = &self.root_token {
            request = request.header("Authorization", token);
        }
        let response = request.send().await;
        let response = response.unwrap_or_else(|err| panic!("etcd {path}: {err}"));
        let status = response.status();
        let reply: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success() && reply.get("error").is_none(),
            "etcd {path} {body} failed: {status} {reply}"
        );
        reply
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn bind_any() -> StdListener {
    StdListener::bind("127.0.0.1:0").unwrap()
}

/// The `range_end` that selects every key starting with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn revision(reply: &Value) -> i64 {
    int(&reply["header"]["revision"])
}

/// The gateway writes int64 fields as JSON strings; absent means 0.
fn int(value: &Value) -> i64 {
    match value {
        Value::String(text) => text.parse().unwrap(),
        Value::Number(number) => number.as_i64().unwrap(),
        _ => 0,
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unb64_text(value: &Value) -> String {
    let text = value.as_str().unwrap_or_default().trim_end_matches('=');
    let mut bytes = Vec::with_capacity(text.len() * 3 / 4);
    let (mut n, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let digit = B64.iter().position(|&d| d == c).expect("base64 digit") as u32;
        n = n << 6 | digit;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((n >> bits & 0xff) as u8);
        }
    }
    String::from_utf8(bytes).unwrap()
}
