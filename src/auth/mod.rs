//! Access control: tokens with a role ([`Role`]) over namespaces ([`Scope`]), checked by
//! every front door through [`Auth::identify`] with the credential it extracted.
//!
//! Off by default (a loopback `make run` needs none); when on, the first start with no
//! tokens creates an admin token and writes its secret to an owner-only file in the data
//! dir ([`Auth::start`]), as `consul acl bootstrap` does. Secrets are never stored or
//! logged: the store keeps their SHA-256 (`secret.rs`).

mod caller;
mod role;
mod scope;
mod secret;
mod tokens;
#[cfg(test)]
mod tokens_tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use caller::Caller;
pub use role::Role;
pub use scope::Scope;
pub use tokens::{Denied, Token, TokenError, TokenRequest, TokenView, Tokens};

use crate::store::{StoreError, TokenStore};

/// The bootstrap token's file in the data dir.
pub const BOOTSTRAP_FILE: &str = "bootstrap-token";

/// `[auth]` in the config file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether requests must present a token.
    pub enabled: bool,
    /// What a request with no token may do: `none`, or `read` (discovery, every
    /// namespace).
    pub anonymous: Anonymous,
    /// Whether `/metrics` needs a token (any live token; anonymous reads do not open it).
    pub protect_metrics: bool,
}

/// `auth.anonymous`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Anonymous {
    #[default]
    None,
    Read,
}

/// Access control as configured, with the tokens.
pub struct Auth {
    pub config: AuthConfig,
    pub tokens: Tokens,
}

impl Auth {
    /// Loads the tokens. With access control on and no token yet, creates the bootstrap
    /// admin token and writes its secret to [`BOOTSTRAP_FILE`] in `data_dir`.
    pub async fn start(
        config: AuthConfig,
        store: Arc<dyn TokenStore>,
        data_dir: &Path,
    ) -> Result<Auth, BootstrapError> {
        let tokens = Tokens::load(store)?;
        let auth = Auth { config, tokens };
        if !auth.config.enabled {
            tracing::info!("Access control is off: every client may read and change everything ([auth] enabled = true turns it on)");
        } else if auth.tokens.is_empty() {
            let file = bootstrap(&auth.tokens, data_dir).await?;
            tracing::warn!(file = %file.display(), "Access control is on and there was no token: created the admin token `bootstrap`; its secret is in this owner-only file");
        } else {
            tracing::info!(tokens = auth.tokens.len(), "Access control is on");
        }
        Ok(auth)
    }

    /// Creates a new admin token `bootstrap` beside the tokens there are, and writes its
    /// secret to [`BOOTSTRAP_FILE`]: for a stopped server whose admin secrets are lost.
    pub async fn rebootstrap(
        store: Arc<dyn TokenStore>,
        data_dir: &Path,
    ) -> Result<PathBuf, BootstrapError> {
        bootstrap(&Tokens::load(store)?, data_dir).await
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Whether requests without a token may read (`anonymous = "read"`).
    pub fn anonymous_reads(&self) -> bool {
        self.config.anonymous == Anonymous::Read
    }

    /// Who presents `credential` (none when the request carries no token).
    pub fn identify(&self, credential: Option<&str>) -> Result<Caller, Denied> {
        if !self.config.enabled {
            return Ok(Caller::Unchecked);
        }
        match credential {
            Some(secret) => self.tokens.authenticate(secret).map(Caller::Token),
            None => match self.config.anonymous {
                Anonymous::Read => Ok(Caller::Anonymous(Role::Read)),
                Anonymous::None => Err(Denied::Missing),
            },
        }
    }
}

/// Creates the admin token `bootstrap` over every namespace and writes its secret,
/// owner-only, to [`BOOTSTRAP_FILE`] in `data_dir`.
async fn bootstrap(tokens: &Tokens, data_dir: &Path) -> Result<PathBuf, BootstrapError> {
    let request = TokenRequest {
        name: "bootstrap".into(),
        role: Role::Admin,
        namespaces: vec!["*".into()],
        expires_in: None,
    };
    let (token, secret) = tokens
        .create(request, None)
        .await
        .map_err(|err| match err {
            TokenError::Store(err) => BootstrapError::Store(err),
            other => BootstrapError::Refused(other.to_string()),
        })?;
    let file = data_dir.join(BOOTSTRAP_FILE);
    if let Err(source) = crate::store::write_secret(&file, format!("{secret}\n").as_bytes()) {
        // A token nobody holds would stop the next start from bootstrapping again.
        tokens.revoke(&token.id).await?;
        return Err(BootstrapError::File { file, source });
    }
    Ok(file)
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot load the tokens: {0}")]
    Store(#[from] StoreError),
    #[error("cannot create the bootstrap token: {0}")]
    Refused(String),
    #[error("cannot write the bootstrap token to {file}: {source}")]
    File {
        file: PathBuf,
        source: std::io::Error,
    },
}
