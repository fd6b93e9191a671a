//! Why a change to the set of sources was refused.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// The source document is not acceptable; `field` names the key at fault.
    #[error("{message}")]
    Invalid {
        field: Option<String>,
        message: String,
    },
    /// A change moves the source to other endpoints or TLS settings but keeps stored
    /// secrets (named) the request neither sent again nor dropped.
    #[error("the change points the source at other endpoints or TLS settings, so send {} again or drop {} (`null`); the stored values are not carried over", .0.join(", "), if .0.len() == 1 { "it" } else { "them" })]
    SecretsRequired(Vec<String>),
    #[error("a source with id `{0}` already exists")]
    Exists(String),
    #[error("no source `{0}`")]
    NotFound(String),
    #[error("source `{0}` comes from the config file; change it there (the API cannot)")]
    ReadOnly(String),
    /// The store failed; nothing was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FederationError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> FederationError {
        FederationError::Invalid {
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

impl From<switchboard_connectors::SourceConfigError> for FederationError {
    fn from(err: switchboard_connectors::SourceConfigError) -> FederationError {
        FederationError::Invalid {
            message: err.to_string(),
            field: err.field,
        }
    }
}
