//! The servers a page's commands talk to, and the rewriting of the addresses the docs
//! show into theirs. Pages are written for one machine with everything on its usual port;
//! the test gives each page its own Switchboard, and the etcd, Consul (the double) or
//! Nacos (rnacos) its runnable blocks name, each on a free port and dropped (killed) with
//! the page, also when it fails.

use consul_double::ConsulDouble;

use crate::support::etcd::EtcdServer;
use crate::support::rnacos::RnacosServer;

/// How the docs write each server's address.
const SWITCHBOARD: &[&str] = &["127.0.0.1:8700", "localhost:8700"];
const ETCD: &[&str] = &["127.0.0.1:2379", "localhost:2379"];
const CONSUL: &[&str] = &["127.0.0.1:8500", "localhost:8500"];
const NACOS: &[&str] = &["127.0.0.1:8848", "localhost:8848"];

/// The binary `make run` builds, as the docs call it.
const BINARY: &str = "./target/release/switchboard";

/// The backends of one page, kept running while the page runs.
pub struct Backends {
    /// Documented text → this test's.
    rewrites: Vec<(&'static str, String)>,
    _etcd: Option<EtcdServer>,
    _consul: Option<ConsulDouble>,
    _nacos: Option<RnacosServer>,
}

impl Backends {
    /// Starts the backends whose documented address appears in `code` (every runnable
    /// block of the page); `switchboard` is the test server's `host:port`.
    pub async fn start(code: &str, switchboard: &str) -> Backends {
        let mut rewrites = Vec::new();
        let mut add = |documented: &[&'static str], actual: &str| {
            rewrites.extend(documented.iter().map(|d| (*d, actual.to_owned())));
        };
        add(SWITCHBOARD, switchboard);
        add(&[BINARY], env!("CARGO_BIN_EXE_switchboard"));
        let names = |documented: &[&str]| documented.iter().any(|d| contains(code, d));
        let etcd = match names(ETCD) {
            true => Some(EtcdServer::start().await),
            false => None,
        };
        if let Some(etcd) = &etcd {
            add(ETCD, &format!("127.0.0.1:{}", etcd.client_port()));
        }
        let consul = match names(CONSUL) {
            true => Some(ConsulDouble::start().await),
            false => None,
        };
        if let Some(consul) = &consul {
            add(CONSUL, &consul.addr().to_string());
        }
        let nacos = match names(NACOS) {
            true => Some(RnacosServer::start().await),
            false => None,
        };
        if let Some(nacos) = &nacos {
            add(NACOS, nacos.endpoint().trim_start_matches("http://"));
        }
        Backends {
            rewrites,
            _etcd: etcd,
            _consul: consul,
            _nacos: nacos,
        }
    }

    /// `text` with every documented address (and the binary's path) replaced by this
    /// test's.
    pub fn rewrite(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (documented, actual) in &self.rewrites {
            text = replace_whole(&text, documented, actual);
        }
        text
    }
}

/// Whether `text` holds `word` not followed by more of a port or a name (so
/// `127.0.0.1:8500` is not found in `127.0.0.1:85001`).
fn contains(text: &str, word: &str) -> bool {
    replace_whole(text, word, "") != text
}

fn replace_whole(text: &str, word: &str, by: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        let after = &rest[at + word.len()..];
        let whole = !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        out.push_str(&rest[..at]);
        out.push_str(if whole { by } else { word });
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_addresses_and_names_are_replaced() {
        let text = "curl 127.0.0.1:8500/v1 127.0.0.1:85001 ./target/release/switchboard-bench";
        assert_eq!(
            replace_whole(text, "127.0.0.1:8500", "127.0.0.1:4242"),
            "curl 127.0.0.1:4242/v1 127.0.0.1:85001 ./target/release/switchboard-bench"
        );
        assert!(!contains(text, BINARY));
        assert!(contains(text, "127.0.0.1:8500"));
    }
}
