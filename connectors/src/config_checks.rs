//! What the adapters' config tests share: parsing a table from JSON with serde's message
//! on failure, and the message of a config error.

use serde::de::DeserializeOwned;

use crate::ConnectorError;

/// `json` as an adapter's config, or serde's message (which names the field).
pub(crate) fn parse<T: DeserializeOwned>(json: serde_json::Value) -> Result<T, String> {
    serde_json::from_value(json).map_err(|e| e.to_string())
}

/// The message of a [`ConnectorError::Config`]; anything else fails the test.
pub(crate) fn config_error(checked: Result<(), ConnectorError>) -> String {
    match checked {
        Err(ConnectorError::Config(message)) => message,
        other => panic!("expected a config error, got {other:?}"),
    }
}
