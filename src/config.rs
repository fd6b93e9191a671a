//! Configuration: built-in defaults < TOML file < `SWITCHBOARD_*` environment < CLI flags.
//!
//! Every key has a default, so `switchboard serve` runs with no file at all. Errors name
//! the offending key (and the environment variable, when that is where it came from) so a
//! bad config stops start-up with a message an operator can act on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchboard_connectors::SourceConfig;

pub use crate::auth::AuthConfig;
pub use crate::frontends::consul::ConsulConfig;
pub use crate::health::HealthConfig;
pub use crate::registry::RegistryConfig;

use crate::catalog::MergeRule;
use crate::duration::serde_text;
use crate::sync::SyncSpec;
use crate::vocab::NATIVE_SOURCE;

/// Prefix of environment overrides. `__` separates nested keys:
/// `SWITCHBOARD_REGISTRY__DEFAULT_TTL=10s` sets `registry.default_ttl`.
pub const ENV_PREFIX: &str = "SWITCHBOARD_";
/// Environment variables with the prefix that are not config keys.
const ENV_NOT_KEYS: &[&str] = &["SWITCHBOARD_CONFIG"];
/// Top-level config keys. A `SWITCHBOARD_*` variable naming none of them (a client's
/// `SWITCHBOARD_URL`, say) is not meant for the server and is ignored with a warning;
/// one naming a key under a known section is checked like the file.
const TOP_LEVEL_KEYS: &[&str] = &[
    "listen", "data_dir", "log", "registry", "api", "auth", "tls", "sources", "merge", "syncs",
    "consul", "health",
];

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Directory of the embedded store (created if missing).
    pub data_dir: PathBuf,
    /// Log filter in `tracing` syntax (`info`, `switchboard=debug`). `RUST_LOG` wins when set.
    pub log: String,
    pub registry: RegistryConfig,
    pub api: ApiConfig,
    /// `[auth]`: access control (off by default).
    pub auth: AuthConfig,
    pub tls: TlsConfig,
    /// `[consul]`: the Consul-compatible HTTP API (`/v1/`).
    pub consul: ConsulConfig,
    /// `[health]`: the health checks Switchboard runs for native instances.
    pub health: HealthConfig,
    /// External registries to federate (`[[sources]]`), each with a unique `id`.
    #[serde(skip_serializing)]
    pub sources: Vec<SourceConfig>,
    /// How overlapping sources merge, by service glob (`[[merge]]`); the first matching
    /// rule wins, `union` when none does. Rules set through the API come after these.
    pub merge: Vec<MergeRule>,
    /// Sync-back jobs (`[[syncs]]`): copy the merged view, or some sources of it, into the
    /// native registry or a writable source.
    #[serde(skip_serializing)]
    pub syncs: Vec<SyncSpec>,
    /// `SWITCHBOARD_*` variables that name no config key (reported at start-up).
    #[serde(skip)]
    pub ignored_env: Vec<String>,
}

/// The HTTP API.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Blocking-query wait when the client gives `index` but no `wait`.
    #[serde(with = "serde_text")]
    pub default_wait: Duration,
    /// Longest blocking-query wait; longer requests are cut to this.
    #[serde(with = "serde_text")]
    pub max_wait: Duration,
    /// Open connections, all clients together; beyond it new ones get 503.
    pub max_connections: usize,
    /// Open connections from one client address; beyond it new ones get 429.
    pub max_connections_per_client: usize,
    /// Parked watches (blocking queries and SSE streams), all clients together; beyond
    /// it 503.
    pub max_watches: usize,
    /// Parked watches from one client address; beyond it 429.
    pub max_watches_per_client: usize,
    /// A connection that sends no complete request head for this long is closed: a slow
    /// header as much as an idle keep-alive connection.
    #[serde(with = "serde_text")]
    pub idle_timeout: Duration,
    /// Most `sources:validate` dry runs at once; more get 429 `validate_busy`. Each one
    /// connects to an address a client chose, so they are few.
    pub validate_concurrency: usize,
    /// Longest a `sources:validate` dry run waits for the source's first full view.
    #[serde(with = "serde_text")]
    pub validate_timeout: Duration,
}

/// HTTPS for the API (`[tls]`): off until `cert` and `key` are set. The files are read
/// at start-up, by `api::tls`; here only which of them go together is checked.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's own certificate first.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert` (PKCS#8, PKCS#1 or SEC1, unencrypted).
    pub key: Option<PathBuf>,
    /// PEM CA certificates; when set, every client must present a certificate signed by
    /// one of them (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8700)),
            data_dir: PathBuf::from("./data"),
            log: "info".to_owned(),
            registry: RegistryConfig::default(),
            api: ApiConfig::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
            consul: ConsulConfig::default(),
            health: HealthConfig::default(),
            sources: Vec::new(),
            merge: Vec::new(),
            syncs: Vec::new(),
            ignored_env: Vec::new(),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            default_wait: Duration::from_secs(300),
            max_wait: Duration::from_secs(300),
            max_connections: 10_000,
            max_connections_per_client: 1_000,
            max_watches: 10_000,
            max_watches_per_client: 1_000,
            idle_timeout: Duration::from_secs(30),
            validate_concurrency: 4,
            validate_timeout: Duration::from_secs(5),
        }
    }
}

/// Values given on the command line; they override everything else.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config key `{key}`{origin}: {message}")]
    Key {
        key: String,
        origin: String,
        message: String,
    },
}

impl Config {
    /// Loads the config from an optional file, the process environment and CLI overrides.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        Self::load_from(file, std::env::vars(), overrides)
    }

    /// [`Config::load`] with an explicit environment, for tests.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some(path) => read_table(path)?,
            None => toml::Table::new(),
        };
        let (origins, ignored_env) = overlay_env(&mut table, env);
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|err| {
                let key = err.path().to_string();
                let origin = origins
                    .get(&key)
                    .map(|var| format!(" (from environment variable {var})"))
                    .unwrap_or_default();
                let message = err.into_inner().to_string();
                // toml repeats the key on a line of its own; we name it already.
                let message = message
                    .split("\nin `")
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                ConfigError::Key {
                    key,
                    origin,
                    message,
                }
            })?;
        config.ignored_env = ignored_env;
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(dir) = &overrides.data_dir {
            config.data_dir = dir.clone();
        }
        let tls = &mut config.tls;
        tls.cert = overrides.tls_cert.clone().or(tls.cert.take());
        tls.key = overrides.tls_key.clone().or(tls.key.take());
        tls.client_ca = overrides.tls_client_ca.clone().or(tls.client_ca.take());
        config.validate()?;
        Ok(config)
    }

    /// Checks the rules a type cannot express.
    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, message: &str| {
            Err(ConfigError::Key {
                key: key.to_owned(),
                origin: String::new(),
                message: message.to_owned(),
            })
        };
        if self.registry.default_ttl < Duration::from_secs(1) {
            return fail("registry.default_ttl", "must be at least 1s");
        }
        if self.registry.expiry_interval.is_zero() {
            return fail("registry.expiry_interval", "must be greater than 0");
        }
        if self.registry.heartbeat_flush_interval.is_zero() {
            return fail(
                "registry.heartbeat_flush_interval",
                "must be greater than 0",
            );
        }
        if self.api.max_body_bytes < 1024 {
            return fail("api.max_body_bytes", "must be at least 1024");
        }
        if self.api.default_wait > self.api.max_wait {
            return fail("api.default_wait", "must not exceed api.max_wait");
        }
        if self.api.max_wait > Duration::from_secs(600) {
            return fail("api.max_wait", "must not exceed 10m");
        }
        for (total_key, key, total, per_client) in [
            (
                "api.max_connections",
                "api.max_connections_per_client",
                self.api.max_connections,
                self.api.max_connections_per_client,
            ),
            (
                "api.max_watches",
                "api.max_watches_per_client",
                self.api.max_watches,
                self.api.max_watches_per_client,
            ),
        ] {
            // Checked first, so a zero total is named itself rather than reported as a
            // share exceeding it.
            if total == 0 {
                return fail(total_key, "must be greater than 0");
            }
            if per_client == 0 {
                return fail(key, "must be greater than 0");
            }
            if per_client > total {
                return fail(key, &format!("must not exceed {total_key} ({total})"));
            }
        }
        if self.api.idle_timeout < Duration::from_secs(1) {
            return fail("api.idle_timeout", "must be at least 1s");
        }
        if !(1..=1024).contains(&self.api.validate_concurrency) {
            return fail("api.validate_concurrency", "must be between 1 and 1024");
        }
        if !(1..=10_000).contains(&self.health.concurrency) {
            return fail("health.concurrency", "must be between 1 and 10000");
        }
        let timeout = self.api.validate_timeout;
        if timeout.is_zero() || timeout > Duration::from_secs(60) {
            return fail("api.validate_timeout", "must be more than 0 and at most 1m");
        }
        let tls = &self.tls;
        match (&tls.cert, &tls.key) {
            (Some(_), None) => return fail("tls.key", "must be set with tls.cert"),
            (None, Some(_)) => return fail("tls.cert", "must be set with tls.key"),
            (None, None) if tls.client_ca.is_some() => {
                return fail(
                    "tls.client_ca",
                    "needs tls.cert and tls.key: client certificates are asked for over TLS",
                );
            }
            _ => {}
        }
        if self.consul.datacenter.is_empty() {
            return fail("consul.datacenter", "must not be empty");
        }
        if self.consul.node_name.is_empty() {
            return fail("consul.node_name", "must not be empty");
        }
        if self
            .consul
            .listen
            .is_some_and(|consul| consul == self.listen)
        {
            return fail(
                "consul.listen",
                "must differ from listen (the main listener serves /v1/ already)",
            );
        }
        for (i, rule) in self.merge.iter().enumerate() {
            if let Err((field, message)) = rule.validate() {
                return fail(&format!("merge[{i}].{field}"), &message);
            }
        }
        let mut sync_ids = std::collections::HashSet::new();
        for (i, sync) in self.syncs.iter().enumerate() {
            if let Err(err) = sync.validate() {
                return fail(
                    &format!("syncs[{i}].{}", err.field.unwrap_or_default()),
                    &err.message,
                );
            }
            if !sync_ids.insert(&sync.id) {
                return fail(
                    &format!("syncs[{i}].id"),
                    &format!("duplicate sync id `{}`", sync.id),
                );
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, source) in self.sources.iter().enumerate() {
            let key = format!("sources[{i}].id");
            if source.id() == NATIVE_SOURCE {
                return fail(
                    &key,
                    "`native` is the built-in registry's id; choose another",
                );
            }
            if !seen.insert(source.id()) {
                return fail(&key, &format!("duplicate source id `{}`", source.id()));
            }
            if let Err(err) = source.validate() {
                return fail(&format!("sources[{i}]"), &err.to_string());
            }
        }
        Ok(())
    }
}

fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    text.parse::<toml::Table>()
        .map_err(|err| ConfigError::Syntax {
            path: path.to_owned(),
            message: err.to_string(),
        })
}

/// Writes `SWITCHBOARD_*` variables into the table and returns which key came from which
/// variable, and the variables that name no config key. Values are read as TOML when they
/// parse (`10`, `true`), else as strings.
fn overlay_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut origins = BTreeMap::new();
    let mut ignored = Vec::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if ENV_NOT_KEYS.contains(&var.as_str()) || rest.is_empty() {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if !TOP_LEVEL_KEYS.contains(&path[0].as_str()) {
            ignored.push(var);
            continue;
        }
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let mut node = &mut *table;
        for part in &path[..path.len() - 1] {
            let entry = node
                .entry(part.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            node = entry.as_table_mut().expect("just made a table");
        }
        node.insert(path[path.len() - 1].clone(), value);
        origins.insert(path.join("."), var);
    }
    (origins, ignored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn defaults_apply_with_no_file() {
        let config = Config::load_from(None, env(&[]), &Overrides::default()).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8700");
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.registry.default_ttl, Duration::from_secs(30));
        assert_eq!(config.api.max_body_bytes, 65536);
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let file = write("listen = \"127.0.0.1:9000\"\n[registry]\ndefault_ttl = \"10s\"\n");
        let vars = env(&[
            ("SWITCHBOARD_REGISTRY__DEFAULT_TTL", "20s"),
            ("SWITCHBOARD_DATA_DIR", "/tmp/from-env"),
            ("SWITCHBOARD_CONFIG", "ignored.toml"),
            ("OTHER", "x"),
        ]);
        let overrides = Overrides {
            data_dir: Some(PathBuf::from("/tmp/from-flag")),
            ..Overrides::default()
        };
        let config = Config::load_from(Some(file.path()), vars, &overrides).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(config.registry.default_ttl, Duration::from_secs(20));
        assert_eq!(config.data_dir, PathBuf::from("/tmp/from-flag"));
    }

    #[test]
    fn errors_name_the_key() {
        let file = write("[registry]\ndefault_ttl = \"soon\"\n");
        let err = Config::load_from(Some(file.path()), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("registry.default_ttl"), "{err}");

        let file = write("[registry]\ndefualt_ttl = \"5s\"\n");
        let err = Config::load_from(Some(file.path()), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("defualt_ttl"), "{err}");

        let err = Config::load_from(
            None,
            env(&[("SWITCHBOARD_REGISTRY__DEFUALT_TTL", "5s")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("SWITCHBOARD_REGISTRY__DEFUALT_TTL"), "{err}");

        let err = Config::load_from(
            None,
            env(&[("SWITCHBOARD_API__MAX_BODY_BYTES", "lots")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("api.max_body_bytes"), "{err}");
        assert!(err.contains("SWITCHBOARD_API__MAX_BODY_BYTES"), "{err}");

        let file = write("[registry]\ndefault_ttl = \"0s\"\n");
        let err = Config::load_from(Some(file.path()), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("registry.default_ttl") && err.contains("at least"),
            "{err}"
        );
    }

    #[test]
    fn validate_limits_default_small_and_refuse_nonsense() {
        let config = Config::load_from(None, env(&[]), &Overrides::default()).unwrap();
        assert_eq!(config.api.validate_concurrency, 4);
        assert_eq!(config.api.validate_timeout, Duration::from_secs(5));
        let cases = [
            (
                "[api]\nvalidate_concurrency = 0\n",
                "api.validate_concurrency",
            ),
            ("[api]\nvalidate_timeout = \"0s\"\n", "api.validate_timeout"),
            ("[api]\nvalidate_timeout = \"2m\"\n", "api.validate_timeout"),
            ("[health]\nconcurrency = 0\n", "health.concurrency"),
        ];
        for (text, key) in cases {
            let file = write(text);
            let err = Config::load_from(Some(file.path()), env(&[]), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn connection_and_watch_limits_refuse_nonsense() {
        let config = Config::load_from(None, env(&[]), &Overrides::default()).unwrap();
        assert_eq!(config.api.max_connections, 10_000);
        assert_eq!(config.api.max_connections_per_client, 1_000);
        assert_eq!(config.api.max_watches, 10_000);
        assert_eq!(config.api.max_watches_per_client, 1_000);
        assert_eq!(config.api.idle_timeout, Duration::from_secs(30));
        let cases = [
            (
                "[api]\nmax_connections = 10\nmax_connections_per_client = 11\n",
                "api.max_connections_per_client",
                "must not exceed",
            ),
            (
                "[api]\nmax_connections_per_client = 0\n",
                "api.max_connections_per_client",
                "greater than 0",
            ),
            (
                "[api]\nmax_connections = 0\n",
                "api.max_connections",
                "greater than 0",
            ),
            (
                "[api]\nmax_watches = 0\n",
                "api.max_watches",
                "greater than 0",
            ),
            (
                "[api]\nmax_watches = 100\nmax_watches_per_client = 101\n",
                "api.max_watches_per_client",
                "must not exceed",
            ),
            (
                "[api]\nmax_watches_per_client = 0\n",
                "api.max_watches_per_client",
                "greater than 0",
            ),
            (
                "[api]\nidle_timeout = \"500ms\"\n",
                "api.idle_timeout",
                "at least 1s",
            ),
            (
                "[api]\nidle_timeout = \"0s\"\n",
                "api.idle_timeout",
                "at least 1s",
            ),
        ];
        for (text, key, message) in cases {
            let file = write(text);
            let err = Config::load_from(Some(file.path()), env(&[]), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(key) && err.contains(message), "{text}: {err}");
        }
        // The environment sets them as the file does, and is checked the same way.
        let vars = env(&[("SWITCHBOARD_API__MAX_WATCHES_PER_CLIENT", "100")]);
        let config = Config::load_from(None, vars, &Overrides::default()).unwrap();
        assert_eq!(config.api.max_watches_per_client, 100);
        let vars = env(&[("SWITCHBOARD_API__MAX_WATCHES_PER_CLIENT", "20000")]);
        let err = Config::load_from(None, vars, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("api.max_watches_per_client"), "{err}");
    }

    #[test]
    fn tls_paths_go_together_and_flags_override_the_environment() {
        let config = Config::load_from(None, env(&[]), &Overrides::default()).unwrap();
        assert!(config.tls.cert.is_none() && config.tls.key.is_none());
        let file = write("[tls]\ncert = \"file.pem\"\nkey = \"file-key.pem\"\n");
        let vars = env(&[
            ("SWITCHBOARD_TLS__KEY", "env-key.pem"),
            ("SWITCHBOARD_TLS__CLIENT_CA", "env-ca.pem"),
        ]);
        let overrides = Overrides {
            tls_client_ca: Some(PathBuf::from("flag-ca.pem")),
            ..Overrides::default()
        };
        let config = Config::load_from(Some(file.path()), vars, &overrides).unwrap();
        assert_eq!(config.tls.cert, Some(PathBuf::from("file.pem")));
        assert_eq!(config.tls.key, Some(PathBuf::from("env-key.pem")));
        assert_eq!(config.tls.client_ca, Some(PathBuf::from("flag-ca.pem")));

        let cases = [
            (
                "[tls]\ncert = \"c.pem\"\n",
                "tls.key",
                "must be set with tls.cert",
            ),
            (
                "[tls]\nkey = \"k.pem\"\n",
                "tls.cert",
                "must be set with tls.key",
            ),
            (
                "[tls]\nclient_ca = \"ca.pem\"\n",
                "tls.client_ca",
                "needs tls.cert",
            ),
            ("[tls]\ncrt = \"c.pem\"\n", "tls.crt", "unknown field"),
        ];
        for (text, key, message) in cases {
            let file = write(text);
            let err = Config::load_from(Some(file.path()), env(&[]), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(key) && err.contains(message), "{text}: {err}");
        }
        // A flag completes what the file started.
        let file = write("[tls]\ncert = \"c.pem\"\n");
        let overrides = Overrides {
            tls_key: Some(PathBuf::from("k.pem")),
            ..Overrides::default()
        };
        let config = Config::load_from(Some(file.path()), env(&[]), &overrides).unwrap();
        assert_eq!(config.tls.key, Some(PathBuf::from("k.pem")));
    }

    #[test]
    fn variables_naming_no_key_are_ignored_not_fatal() {
        let vars = env(&[("SWITCHBOARD_URL", "http://127.0.0.1:8700")]);
        let config = Config::load_from(None, vars, &Overrides::default()).unwrap();
        assert_eq!(config.ignored_env, vec!["SWITCHBOARD_URL"]);
    }

    #[test]
    fn bad_sources_are_config_errors_naming_the_source_and_field() {
        let cases = [
            (
                "type = \"consul\"\nendpoints = [\"http://a:1\"]\nwait = \"11m\"",
                "`wait`",
            ),
            ("type = \"consul\"\nendpoints = []", "`endpoints`"),
            (
                "type = \"consul\"\nendpoints = [\"http://a:1\"]\ntokn = \"x\"",
                "tokn",
            ),
            ("type = \"etcd\"\nendpoints = [\"a:1\"]", "`endpoints[0]`"),
            (
                "type = \"zookeeper\"\nendpoints = [\"http://a:1\"]",
                "zookeeper",
            ),
        ];
        for (table, expected) in cases {
            let file = write(&format!("[[sources]]\nid = \"s\"\n{table}\n"));
            let err = Config::load_from(Some(file.path()), env(&[]), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("sources") && err.contains(expected),
                "{table}: {err}"
            );
        }
    }

    #[test]
    fn sync_jobs_parse_and_bad_ones_name_the_key() {
        let load = |text: &str| {
            let file = write(text);
            Config::load_from(Some(file.path()), env(&[]), &Overrides::default())
                .map_err(|err| err.to_string())
        };
        let config = load("[[syncs]]\nid = \"j\"\nfrom = \"etcd\"\nto = \"native\"\n").unwrap();
        assert_eq!(config.syncs[0].id, "j");
        assert_eq!(config.syncs[0].debounce, Duration::from_millis(500));
        let cases = [
            ("[[syncs]]\nid = \"j\"\n", "missing field `to`"),
            (
                "[[syncs]]\nid = \"j\"\nto = \"n\"\nservices = \"a/b\"\n",
                "syncs[0].services[0]",
            ),
            (
                "[[syncs]]\nid = \"j\"\nto = \"n\"\n[[syncs]]\nid = \"j\"\nto = \"m\"\n",
                "syncs[1].id",
            ),
        ];
        for (text, expected) in cases {
            let err = load(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn merge_rules_parse_and_bad_ones_name_the_key() {
        let file = write("[[merge]]\nservices = \"pay-*\"\npolicy = \"failover\"\n");
        let config = Config::load_from(Some(file.path()), env(&[]), &Overrides::default()).unwrap();
        assert_eq!(config.merge[0].services, vec!["pay-*"]);
        let file = write("[[merge]]\nservices = [\"a/b\"]\npolicy = \"union\"\n");
        let err = Config::load_from(Some(file.path()), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("merge[0].services[0]"), "{err}");
        let file = write("[[merge]]\nservices = \"a\"\npolicy = \"random\"\n");
        let err = Config::load_from(Some(file.path()), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("merge[0].policy") && err.contains("random"),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_name_the_file() {
        let file = write("listen = \n");
        let err = Config::load_from(Some(file.path()), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid TOML"), "{err}");
    }

    #[test]
    fn example_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                Config::load_from(Some(&path), env(&[]), &Overrides::default())
                    .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
                seen += 1;
            }
        }
        assert!(seen > 0, "no example configs found");
    }
}
