//! Switchboard's own HTTPS (`[tls]`), through the real binary on a free port, with
//! certificates made at test time (`support::tls::Ca`): HTTP/1.1 and HTTP/2 picked by
//! ALPN, plain HTTP and silent clients closed without harm to others, client
//! certificates required by `tls.client_ca`, the connection limits answered over TLS,
//! and a bad file stopping start-up with exit code 2.

use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rcgen::{ExtendedKeyUsagePurpose, SanType};
use reqwest::Version;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::tls::Ca;
use crate::support::{children, exit_of, BinaryServer, DEADLINE};

/// A test PKI's PEM files: a CA; the server's certificate for 127.0.0.1 and its key;
/// `client.pem`, a client certificate and key from the CA; `stranger.pem`, one from a CA
/// the server does not know.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let ca = Ca::new("switchboard test CA");
        let server_sans = vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))];
        let (server, server_key) = ca.sign(server_sans, ExtendedKeyUsagePurpose::ServerAuth);
        let (client, client_key) = ca.sign(Vec::new(), ExtendedKeyUsagePurpose::ClientAuth);
        let other_ca = Ca::new("another CA");
        let (stranger, stranger_key) =
            other_ca.sign(Vec::new(), ExtendedKeyUsagePurpose::ClientAuth);
        let dir = tempfile::tempdir().expect("a temp dir for the PEM files");
        let files = [
            ("ca.pem", ca.pem()),
            ("server.pem", server.pem()),
            ("server-key.pem", server_key.serialize_pem()),
            ("client.pem", client.pem() + &client_key.serialize_pem()),
            (
                "stranger.pem",
                stranger.pem() + &stranger_key.serialize_pem(),
            ),
        ];
        for (name, pem) in files {
            std::fs::write(dir.path().join(name), pem).expect("write a PEM file");
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A client trusting only the test CA, presenting the certificate and key in the PEM
    /// file `identity` when given.
    fn client(&self, identity: Option<&str>) -> reqwest::ClientBuilder {
        let ca = std::fs::read(self.path("ca.pem")).unwrap();
        let mut builder = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .timeout(DEADLINE);
        if let Some(name) = identity {
            let pem = std::fs::read(self.path(name)).unwrap();
            builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        builder
    }

    /// `--tls-cert` and `--tls-key` with the server's files.
    fn flags(&self) -> Vec<PathBuf> {
        vec![
            "--tls-cert".into(),
            self.path("server.pem"),
            "--tls-key".into(),
            self.path("server-key.pem"),
        ]
    }
}

/// The binary serving HTTPS with the PKI's server certificate (by flags) and `env`;
/// `ready` is the client it is seen ready through, which keeps that connection.
async fn https_server(
    pki: &Pki,
    env: &[(&str, &str)],
    ready: &reqwest::Client,
) -> (BinaryServer, TempDir) {
    let data = tempfile::tempdir().unwrap();
    let flags = pki.flags();
    let args: Vec<&OsStr> = flags.iter().map(|flag| flag.as_os_str()).collect();
    let server = BinaryServer::start_https(data.path(), env, &args, ready).await;
    (server, data)
}

fn address(server: &BinaryServer) -> SocketAddr {
    server
        .base
        .strip_prefix("https://")
        .unwrap()
        .parse()
        .unwrap()
}

/// The error and its causes on one line: reqwest puts the TLS reason in a source.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// `client` gets `/health` from `server` (it still serves after whatever was tried), in
/// the HTTP version it answers in.
async fn assert_serves(client: &reqwest::Client, server: &BinaryServer) -> Version {
    let response = client
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.version()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_http2_or_http1_as_alpn_picks() {
    let pki = Pki::new();
    let client = pki.client(None).build().unwrap();
    let (server, _data) = https_server(&pki, &[], &client).await;

    let version = assert_serves(&client, &server).await;
    assert_eq!(version, Version::HTTP_2, "ALPN offers h2 first");

    let http1 = pki.client(None).http1_only().build().unwrap();
    let response = http1
        .get(format!("{}/api/v1/services", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), Version::HTTP_11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_the_tls_port_is_closed_and_harms_no_one() {
    let pki = Pki::new();
    let client = pki.client(None).build().unwrap();
    let (server, _data) = https_server(&pki, &[], &client).await;

    let mut plain = TcpStream::connect(address(&server)).await.unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: switchboard\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(DEADLINE, plain.read_to_end(&mut answer))
        .await
        .expect("the server closes a connection that speaks plain HTTP");
    // Closed (perhaps after a TLS alert, perhaps with a reset), never answered in HTTP.
    assert!(
        !answer.starts_with(b"HTTP/"),
        "answered in plain HTTP ({read:?}): {}",
        String::from_utf8_lossy(&answer)
    );
    let http_url = server.base.replacen("https://", "http://", 1);
    let err = reqwest::get(format!("{http_url}/health"))
        .await
        .unwrap_err();
    assert!(!err.is_status(), "{}", chain(&err));

    assert_serves(&client, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_handshakes_is_closed_after_the_idle_timeout() {
    let pki = Pki::new();
    let client = pki.client(None).build().unwrap();
    let env = [("SWITCHBOARD_API__IDLE_TIMEOUT", "1s")];
    let (server, _data) = https_server(&pki, &env, &client).await;

    let started = Instant::now();
    let mut silent = TcpStream::connect(address(&server)).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(DEADLINE, silent.read(&mut byte))
        .await
        .expect("the server closes a connection that never starts its handshake");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}, before the idle timeout"
    );

    assert_serves(&client, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_ca_only_its_clients_are_served() {
    let pki = Pki::new();
    let member = pki.client(Some("client.pem")).build().unwrap();
    // The CA by environment, the certificate by flags: the two ways combine.
    let ca = pki.path("ca.pem");
    let env = [("SWITCHBOARD_TLS__CLIENT_CA", ca.to_str().unwrap())];
    let (server, _data) = https_server(&pki, &env, &member).await;
    let health = format!("{}/health", server.base);

    // Over HTTP/1.1 the client reports the server's alert; over HTTP/2 only that the
    // connection closed.
    for http1 in [true, false] {
        let refused = [
            (None, "CertificateRequired"),
            (Some("stranger.pem"), "UnknownCA"),
        ];
        for (identity, alert) in refused {
            // Every attempt is refused. Which error the client reports depends on a race
            // (TLS 1.3 sends the alert after the client's side of the handshake is done,
            // and a loaded machine may let the client write first and see the connection
            // close), so the alert must show in one of a few attempts, not in each.
            let mut seen = Vec::new();
            for _ in 0..5 {
                let mut client = pki.client(identity);
                if http1 {
                    client = client.http1_only();
                }
                let err = (client.build().unwrap().get(&health).send().await).unwrap_err();
                seen.push(chain(&err));
                if !http1 || seen.last().is_some_and(|text| text.contains(alert)) {
                    break;
                }
            }
            let named = seen.iter().any(|text| text.contains(alert));
            assert!(!http1 || named, "{identity:?}: {seen:?}");
        }
    }

    // Refusing them cost nobody else: a new member is served.
    let member = pki.client(Some("client.pem")).build().unwrap();
    let response = member.get(&health).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), Version::HTTP_2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_beyond_the_limit_is_answered_429_over_tls() {
    let pki = Pki::new();
    // The holder keeps the one connection it was seen ready through.
    let holder = pki.client(None).build().unwrap();
    let env = [("SWITCHBOARD_API__MAX_CONNECTIONS_PER_CLIENT", "1")];
    let (server, _data) = https_server(&pki, &env, &holder).await;
    let health = format!("{}/health", server.base);

    let other = pki.client(None).http1_only().build().unwrap();
    let refused = other.get(&health).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "too_many_connections", "{problem}");

    let response = holder.get(&health).send().await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "the holder's connection is still served"
    );
}

/// Runs `switchboard serve` with `args` and returns its exit code and stderr; fails the
/// test if it is still running after [`DEADLINE`].
async fn start_up_failure(args: &[&OsStr]) -> (Option<i32>, String) {
    let data = tempfile::tempdir().unwrap();
    let mut command = children::command(env!("CARGO_BIN_EXE_switchboard"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .args(args)
        .env_remove("SWITCHBOARD_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = children::spawn(command).expect("start the switchboard binary");
    let exit = exit_of(&mut child, "switchboard serve to exit").await;
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (exit.code(), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_tls_file_stops_start_up_with_exit_code_2_naming_it() {
    let pki = Pki::new();
    let garbage = pki.path("garbage.pem");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let other_key = pki.path("other-key.pem");
    let (_, key) = Ca::new("unrelated").sign(Vec::new(), ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(&other_key, key.serialize_pem()).unwrap();
    let missing = pki.path("missing.pem");
    let (cert, server_key, ca) = (
        pki.path("server.pem"),
        pki.path("server-key.pem"),
        pki.path("ca.pem"),
    );

    // `--tls-cert`, `--tls-key`, then the key and the file the message must name.
    let cases = [
        (&cert, &garbage, "tls.key", &garbage, "no private key"),
        (&cert, &other_key, "tls.key", &other_key, "does not match"),
        (&ca, &server_key, "tls.key", &server_key, "does not match"),
        (
            &missing,
            &server_key,
            "tls.cert",
            &missing,
            "cannot be read",
        ),
        (
            &garbage,
            &server_key,
            "tls.cert",
            &garbage,
            "no certificate",
        ),
    ];
    for (cert, key, name, file, problem) in cases {
        let args: [&OsStr; 4] = [
            "--tls-cert".as_ref(),
            cert.as_ref(),
            "--tls-key".as_ref(),
            key.as_ref(),
        ];
        let (code, stderr) = start_up_failure(&args).await;
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        let named = format!("`{name}`: {}", file.display());
        assert!(
            stderr.contains(&named) && stderr.contains(problem),
            "{args:?}: {stderr}"
        );
    }
    // A certificate without its key is a config error, before any file is read.
    let (code, stderr) = start_up_failure(&["--tls-cert".as_ref(), cert.as_ref()]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("`tls.key`: must be set with tls.cert"),
        "{stderr}"
    );
}
