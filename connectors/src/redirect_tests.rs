//! Credentials never follow a redirect: each adapter, pointed at a server that answers
//! every request with `307` to a second server, fails without reaching the second one,
//! so neither a Consul token (a header reqwest would carry along) nor a Nacos login (a
//! form reqwest would post again) nor etcd's authentication (gRPC, which has no
//! redirects) lands anywhere but the configured endpoint.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::{build, ConnectorError, SourceConfig};

const SECRET: &str = "never-f0llows-a-redirect";

/// A server that records the start of each request it is sent and answers `answer(port)`
/// to all of them; `port` is its own port.
struct Recorder {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    async fn start(answer: impl Fn(u16) -> String + Send + 'static) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = vec![0u8; 8192];
                let read = socket.read(&mut request).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&request[..read]).into_owned();
                seen.lock().unwrap().push(text);
                let _ = socket.write_all(answer(port).as_bytes()).await;
            }
        });
        Recorder { port, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// A first server redirecting everything to a second one (which would answer 200).
async fn redirect_pair() -> (Recorder, Recorder) {
    let second = Recorder::start(|_| {
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_owned()
    })
    .await;
    let target = second.port;
    let first = Recorder::start(move |_| {
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{target}/elsewhere\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
    })
    .await;
    (first, second)
}

/// Builds source `document` and runs its first watch to its first item (or failure).
async fn first_watch(document: Value) -> Result<(), ConnectorError> {
    let config = SourceConfig::from_json(document).unwrap();
    let connector = build(&config).unwrap();
    let attempt = async {
        let mut stream = connector.watch().await?;
        match stream.next().await {
            Some(Err(err)) => Err(err),
            _ => Ok(()),
        }
    };
    tokio::time::timeout(Duration::from_secs(20), attempt)
        .await
        .expect("the watch gave up in time")
}

/// Runs the adapter against a redirecting server: it must fail, the first server must
/// have been asked, and the second must never have been reached.
async fn assert_not_followed(kind: &str, extra: Value) {
    let (first, second) = redirect_pair().await;
    let mut document = json!({
        "id": format!("{kind}-redirected"),
        "type": kind,
        "endpoints": [format!("http://127.0.0.1:{}", first.port)],
        "timeout": "2s",
    });
    document
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let outcome = first_watch(document).await;
    assert!(
        outcome.is_err(),
        "{kind}: a redirect answer was taken as a view"
    );
    assert!(
        !first.requests().is_empty(),
        "{kind}: never asked the first server"
    );
    let followed = second.requests();
    assert!(
        followed.is_empty(),
        "{kind} followed the redirect: {followed:?}"
    );
}

#[cfg(feature = "consul")]
#[tokio::test]
async fn consul_sends_its_token_to_no_redirect() {
    assert_not_followed("consul", json!({ "token": SECRET })).await;
}

#[cfg(feature = "nacos")]
#[tokio::test]
async fn nacos_posts_its_login_to_no_redirect() {
    assert_not_followed("nacos", json!({ "username": "nacos", "password": SECRET })).await;
}

#[cfg(feature = "etcd")]
#[tokio::test]
async fn etcd_sends_its_password_to_no_redirect() {
    assert_not_followed("etcd", json!({ "username": "root", "password": SECRET })).await;
}

/// The check above would pass for a client that never sent anything; this one shows the
/// Consul token did reach the configured endpoint, so the second server's silence means
/// the redirect was refused, not that nothing was sent.
#[cfg(feature = "consul")]
#[tokio::test]
async fn the_configured_endpoint_does_get_the_token() {
    let (first, _second) = redirect_pair().await;
    let document = json!({
        "id": "consul-first", "type": "consul", "token": SECRET,
        "endpoints": [format!("http://127.0.0.1:{}", first.port)],
    });
    let _ = first_watch(document).await;
    let asked = first.requests();
    let asked = asked
        .first()
        .map(|r| r.to_ascii_lowercase())
        .unwrap_or_default();
    assert!(
        asked.contains(&format!("x-consul-token: {SECRET}")),
        "{asked}"
    );
}
