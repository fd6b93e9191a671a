//! TLS in front of a plain-TCP test backend (the Consul double speaks only HTTP): a
//! throwaway PKI made at test time with `rcgen` (a CA, a server certificate for
//! `127.0.0.1` and `localhost`, a client certificate), its PEM files in a temp dir for a
//! source's `tls` table, and a proxy that terminates TLS (optionally demanding a client
//! certificate from that CA) and forwards the plaintext to the backend. Dropping the proxy
//! stops it and every connection it carries. [`Ca`] also makes the certificates of the
//! tests of Switchboard's own HTTPS.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// A certificate authority that can sign leaf certificates.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("generate a CA key");
        let cert = params.self_signed(&key).expect("self-sign the CA");
        Ca { cert, key }
    }

    /// A leaf certificate for `sans` with the one extended key usage `purpose`, since
    /// webpki checks it on both sides.
    pub fn sign(
        &self,
        sans: Vec<SanType>,
        purpose: ExtendedKeyUsagePurpose,
    ) -> (Certificate, KeyPair) {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "switchboard test");
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().expect("generate a leaf key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign a leaf certificate");
        (cert, key)
    }

    /// The CA's certificate, as PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }
}

/// A TLS-terminating proxy to one backend; see the module docs.
pub struct TlsProxy {
    addr: SocketAddr,
    dir: TempDir,
    handshakes: Arc<AtomicUsize>,
    handshakes_failed: Arc<AtomicUsize>,
    accept_loop: JoinHandle<()>,
}

impl TlsProxy {
    /// Listens on 127.0.0.1:0 and forwards to `backend`; with `require_client_cert`, a
    /// client without a certificate from the proxy's CA fails the handshake.
    pub async fn start(backend: SocketAddr, require_client_cert: bool) -> TlsProxy {
        let ca = Ca::new("switchboard test CA");
        let localhost = "localhost".try_into().expect("a DNS name");
        let server_sans = vec![
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::DnsName(localhost),
        ];
        let (server_cert, server_key) = ca.sign(server_sans, ExtendedKeyUsagePurpose::ServerAuth);
        let (client_cert, client_key) = ca.sign(Vec::new(), ExtendedKeyUsagePurpose::ClientAuth);

        let dir = tempfile::tempdir().expect("a temp dir for the PEM files");
        let files = [
            ("ca.pem", ca.cert.pem()),
            ("client.pem", client_cert.pem()),
            ("client-key.pem", client_key.serialize_pem()),
        ];
        for (name, pem) in files {
            std::fs::write(dir.path().join(name), pem).expect("write a PEM file");
        }

        // An explicit provider (ring, as reqwest's rustls uses), so no process-wide
        // default provider has to be installed by whichever test runs first.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions");
        let builder = if require_client_cert {
            let mut roots = RootCertStore::empty();
            roots.add(ca.cert.der().clone()).expect("the CA as a root");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("a client certificate verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let config = builder
            .with_single_cert(vec![server_cert.der().clone()], key)
            .expect("the server certificate and key");

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("the proxy's address");
        let handshakes = Arc::new(AtomicUsize::new(0));
        let handshakes_failed = Arc::new(AtomicUsize::new(0));
        let accept_loop = tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(Arc::new(config)),
            backend,
            handshakes.clone(),
            handshakes_failed.clone(),
        ));
        TlsProxy {
            addr,
            dir,
            handshakes,
            handshakes_failed,
            accept_loop,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// PEM of the CA that signed the proxy's and the client's certificates.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// PEM of a client certificate the proxy accepts.
    pub fn client_cert_path(&self) -> PathBuf {
        self.dir.path().join("client.pem")
    }

    /// PEM (PKCS#8) key of [`TlsProxy::client_cert_path`].
    pub fn client_key_path(&self) -> PathBuf {
        self.dir.path().join("client-key.pem")
    }

    /// Writes the PEM of a fresh CA that signed nothing of this proxy's; returns its path.
    pub fn unrelated_ca_path(&self) -> PathBuf {
        let path = self.dir.path().join("unrelated-ca.pem");
        std::fs::write(&path, Ca::new("an unrelated CA").cert.pem()).expect("write a PEM file");
        path
    }

    /// Handshakes completed so far.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// Handshakes that failed so far (e.g. a client without an acceptable certificate).
    pub fn handshakes_failed(&self) -> usize {
        self.handshakes_failed.load(Ordering::SeqCst)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        // The connections live in the loop's `JoinSet`, which aborts them when dropped.
        self.accept_loop.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    backend: SocketAddr,
    handshakes: Arc<AtomicUsize>,
    handshakes_failed: Arc<AtomicUsize>,
) {
    let mut connections = JoinSet::new();
    while let Ok((socket, _)) = listener.accept().await {
        // Reap finished connections so a long test does not pile them up.
        while connections.try_join_next().is_some() {}
        let (acceptor, handshakes, failed) = (
            acceptor.clone(),
            handshakes.clone(),
            handshakes_failed.clone(),
        );
        connections.spawn(async move {
            let mut tls = match acceptor.accept(socket).await {
                Ok(tls) => tls,
                Err(_) => {
                    failed.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            };
            handshakes.fetch_add(1, Ordering::SeqCst);
            // The backend going away just ends this connection, as a real agent would.
            if let Ok(mut plain) = TcpStream::connect(backend).await {
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            }
        });
    }
}
