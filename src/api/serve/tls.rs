//! HTTPS for the API: reads the `[tls]` files once at start-up into the rustls server
//! config the listener ([`super`]) hands each connection to. It offers HTTP/2 and
//! HTTP/1.1 by ALPN, and asks for a client certificate signed by `tls.client_ca` when
//! that is set. Every problem with a file is a [`TlsError`] naming the key and the file,
//! so a bad certificate stops start-up like a bad setting does.
//!
//! Only the `ring` provider is used (reqwest's rustls uses it too), passed explicitly so
//! nothing depends on a process-wide default provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{InconsistentKeys, RootCertStore, ServerConfig};

use crate::config::TlsConfig;

/// What ALPN offers, preferred first. Without ALPN a client gets HTTP/1.1.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A `[tls]` file that cannot be used. Not retryable: the file must be fixed.
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}`: {path} {problem}")]
pub struct TlsError {
    /// `tls.cert`, `tls.key` or `tls.client_ca`.
    pub key: &'static str,
    pub path: PathBuf,
    pub problem: String,
}

impl TlsError {
    fn new(key: &'static str, path: &Path, problem: impl Into<String>) -> TlsError {
        TlsError {
            key,
            path: path.to_owned(),
            problem: problem.into(),
        }
    }
}

/// The server config for `tls`, or `None` when TLS is off (no `cert` and `key`).
pub fn server_config(tls: &TlsConfig) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let (Some(cert_path), Some(key_path)) = (&tls.cert, &tls.key) else {
        return Ok(None);
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates("tls.cert", cert_path)?;
    let key = private_key(key_path)?;
    let certified = certified_key(&provider, chain, key, cert_path, key_path)?;

    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::new("tls.cert", cert_path, err.to_string()))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca_path) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates("tls.client_ca", ca_path)? {
                roots.add(cert).map_err(|err| {
                    TlsError::new("tls.client_ca", ca_path, format!("holds a bad CA: {err}"))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|err| TlsError::new("tls.client_ca", ca_path, err.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = ALPN.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(Some(Arc::new(config)))
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|err| TlsError::new(key, path, format!("cannot be read: {err}")))
}

/// Every certificate in the PEM file at `path`; at least one.
fn certificates(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read(key, path)?;
    let chain = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::new(key, path, not_pem(err)))?;
    if chain.is_empty() {
        return Err(TlsError::new(
            key,
            path,
            "holds no certificate (a PEM `CERTIFICATE` block)",
        ));
    }
    Ok(chain)
}

/// The first private key in the PEM file at `path`.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = read("tls.key", path)?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|err| {
        let problem = match err {
            pem::Error::NoItemsFound => "holds no private key (a PEM `PRIVATE KEY`, \
                 `RSA PRIVATE KEY` or `EC PRIVATE KEY` block, unencrypted)"
                .to_owned(),
            err => not_pem(err),
        };
        TlsError::new("tls.key", path, problem)
    })
}

/// The chain with its key, checked to belong together.
fn certified_key(
    provider: &CryptoProvider,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|err| TlsError::new("tls.key", key_path, format!("is not a usable key: {err}")))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // `Unknown`: the key cannot say its public half; the handshake will tell.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => Err(TlsError::new(
            "tls.key",
            key_path,
            format!(
                "does not match the certificate in {} (the first one, the server's own)",
                cert_path.display()
            ),
        )),
        Err(err) => Err(TlsError::new(
            "tls.cert",
            cert_path,
            format!("starts with a certificate that cannot be read: {err}"),
        )),
    }
}

/// A PEM syntax error, with the offending line as text rather than bytes.
fn not_pem(err: pem::Error) -> String {
    match err {
        // The marker is the section's label.
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "is not valid PEM: no `-----END {}-----` line",
            String::from_utf8_lossy(&end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => format!(
            "is not valid PEM: bad line `{}`",
            String::from_utf8_lossy(&line)
        ),
        err => format!("is not valid PEM: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    /// A SEC1 (`EC PRIVATE KEY`) P-256 key, and the same key as PKCS#8 for rcgen. Made
    /// with `openssl ecparam -genkey` for these tests only.
    const SEC1_KEY: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIA7CwnUvs1cgl3T22QT63rVxX91B5rCKB57iX8bGx7vuoAoGCCqGSM49
AwEHoUQDQgAEtruRmAVRgCOo8aRI1RH/HbPtaFpEgs+TRT7fz5mjombJxtXtVEu/
/fGMn1xZG2UXz30qjxearim3rQ2zLFd2/Q==
-----END EC PRIVATE KEY-----
";
    const SEC1_KEY_AS_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgDsLCdS+zVyCXdPbZ
BPretXFf3UHmsIoHnuJfxsbHu+6hRANCAAS2u5GYBVGAI6jxpEjVEf8ds+1oWkSC
z5NFPt/PmaOiZsnG1e1US7/98YyfXFkbZRfPfSqPF5quKbetDbMsV3b9
-----END PRIVATE KEY-----
";
    /// A PKCS#1 (`RSA PRIVATE KEY`) key (`openssl genrsa -traditional 2048`), for these
    /// tests only.
    const PKCS1_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEAo5ktfK5Oc91enHotn1oLgtPCLKpSQdP6mEG3G0EEgC1WAUzy
8ndz8DkvhBluVC5Ro5/eb7LenO9i/+LYQQh8H11530piGkDovSReDIntDw3XWHXg
9DroDg9A3OIcAfDDU2/SLO359voGurYIw44QkL7ceBixlkTVGN9+8Tf8E7pRcemp
67tj0uL4191P7EOo7pqajCdEIILhRWXKCdRJwDsUYvvnW1bfnar5fcFjWsM7WVIy
q34giaXVOmUUa2rNO5ZtuwcQXLzesjdfwdG67RdVgpfxD1C4ph54bH1jBiDn7nI8
X+y3WCW6iDd1dXSyV/OZkPw7nd0ms/nhNlZ7UQIDAQABAoIBABQQkwaAEt1tTL+s
kPiiuLdznRSxEYxjETC4G5rvPRvy44HelAv2qFyxyND+9PwEX80tjACfW6P8DMR1
SCBmx+Fpa6t+Ehzl8d2TzqijSHTAlfUypPPTXzdtOb91iGmZA73RoMGTsOUQin9/
GMFSRNgZ3oyou6wiVk/6BlXTr9oj3UmkwKnLHa89FLxR7WPiyewoPO6L/O/7/40w
8K7GmJvdqTtvlsuKafbP9pDMaFKjEnHW7CceGXMZwrqfUeM7/4Qr9KPtj0iAZxGN
k8r0WwlmiWZ74wWN4HD0my/SviOlZwrgYskdcw9qx3zOiOU7QDMqc/LkCdZ9mGJP
ewgFr5kCgYEAz56pwY+B+DShvWVoqoeBCHorVsupqk/7GonPclXqPM2V1DQeTcjS
NXT4LGX7aoyW3AdrSk1dEVi7mHuF2XByhigAELx4bDpTIQBZOFp7RGr4cJUGwJbC
7lrEoda2Ndz07tsl+g/HLgXf5EYJXeCHr5xtDQz+kW0VlZoZsHqtJBkCgYEAybh2
ki/PRIUa+mf76C7w+0AtSUK+mP3JQtjbYj3ypUSVvreHQNghRWaYgWs0BN3pAjcu
RSOiTieSjs8OzAACdyO4SeWBYZReGxgSPYGJdjWh6InKU59UXLwCD61SIbn9Ivvq
NcW9Bo2BaPMDnmUcjD18RBJSSfH9r8RUPvg1N/kCgYEAxQKdutpeThRDVeEgjJDA
VDb5YQcpHD+A2xHiE3CLMN80SYSbLNxe+/Lee+LZy6VUkb1Ihd0bbxZwDKVJwab+
RWc3iKoO60P9Fdeq0dqqFaYb0VjYa2+j0WG4LIn9pObiVLUHOF44dueEKKx8vuQM
XQtmP3gRKBYG4Uq1Dc2a9iECgYEAlSbptUnYjaeFvSVp49HhqUVYttS9LU5ppB3I
iSmY4o6F0pDNVyr33uLvXLIxsm+KvHKkqcahWfx0p1d+b2SKbiFhQHKMaeRUeOAh
jIzdYSRi5RgNHCuxKyhwtbrIAdwNyfJOyRe+nru+tiUJxfKpWyCTY5nQcpCVrYMT
b8QDRbECgYALaFa5gR/TxXWgppRgh8G0wt4e093GFgN03SgKbfM3gqBkcdxAYh9/
dWHzaN6QmJCwWSd7WHmHTjPlE1zuhJckb+iAVWIhDADwJBnAkeMTz2xarD+SO3Tp
KdxwIdfW8Z4ijirmqMkKXVm9YbSdVNBUAwaBsQPdWkpfkGlg82Av/A==
-----END RSA PRIVATE KEY-----
";

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            Files {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        }

        /// A self-signed certificate for `key`, written as `name`.
        fn cert_for(&self, name: &str, key: &KeyPair) -> PathBuf {
            let params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
            self.write(name, &params.self_signed(key).unwrap().pem())
        }
    }

    fn tls(cert: &Path, key: &Path, client_ca: Option<&Path>) -> TlsConfig {
        TlsConfig {
            cert: Some(cert.to_owned()),
            key: Some(key.to_owned()),
            client_ca: client_ca.map(Path::to_owned),
        }
    }

    fn error(tls: &TlsConfig) -> String {
        server_config(tls).unwrap_err().to_string()
    }

    #[test]
    fn off_without_cert_and_key() {
        assert!(server_config(&TlsConfig::default()).unwrap().is_none());
    }

    #[test]
    fn a_pkcs8_or_sec1_key_with_its_certificate_offers_h2_and_http1() {
        let files = Files::new();
        let key = KeyPair::generate().unwrap();
        let cert = files.cert_for("cert.pem", &key);
        let pkcs8 = files.write("key.pem", &key.serialize_pem());
        let config = server_config(&tls(&cert, &pkcs8, None)).unwrap().unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );

        let key = KeyPair::from_pem(SEC1_KEY_AS_PKCS8).unwrap();
        let cert = files.cert_for("sec1-cert.pem", &key);
        let sec1 = files.write("sec1-key.pem", SEC1_KEY);
        let ca = files.cert_for("ca.pem", &KeyPair::generate().unwrap());
        assert!(server_config(&tls(&cert, &sec1, Some(&ca)))
            .unwrap()
            .is_some());
    }

    #[test]
    fn each_bad_file_is_named_with_its_key() {
        let files = Files::new();
        let key = KeyPair::generate().unwrap();
        let cert = files.cert_for("cert.pem", &key);
        let good_key = files.write("key.pem", &key.serialize_pem());
        let other_key = files.write("other.pem", &KeyPair::generate().unwrap().serialize_pem());
        let pkcs1 = files.write("pkcs1.pem", PKCS1_KEY);
        let missing = files.dir.path().join("missing.pem");
        let garbage = files.write("garbage.pem", "not PEM at all\n");
        let truncated = files.write("truncated.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");

        let cases = [
            (
                tls(&missing, &good_key, None),
                "tls.cert",
                &missing,
                "cannot be read",
            ),
            (
                tls(&garbage, &good_key, None),
                "tls.cert",
                &garbage,
                "no certificate",
            ),
            (
                tls(&truncated, &good_key, None),
                "tls.cert",
                &truncated,
                "-----END CERTIFICATE-----",
            ),
            (
                tls(&cert, &missing, None),
                "tls.key",
                &missing,
                "cannot be read",
            ),
            (tls(&cert, &cert, None), "tls.key", &cert, "no private key"),
            (
                tls(&cert, &other_key, None),
                "tls.key",
                &other_key,
                "does not match",
            ),
            // Read and loaded (a key of another kind would not get this far), not its.
            (
                tls(&cert, &pkcs1, None),
                "tls.key",
                &pkcs1,
                "does not match",
            ),
            (
                tls(&cert, &good_key, Some(&garbage)),
                "tls.client_ca",
                &garbage,
                "no certificate",
            ),
            (
                tls(&cert, &good_key, Some(&missing)),
                "tls.client_ca",
                &missing,
                "cannot be read",
            ),
        ];
        for (config, key, path, problem) in cases {
            let err = error(&config);
            let named = format!("`{key}`: {}", path.display());
            assert!(
                err.contains(&named) && err.contains(problem),
                "{config:?}: {err}"
            );
        }
    }
}
