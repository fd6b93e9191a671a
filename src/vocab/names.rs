//! The rules every front door applies to names, ids and statuses, and the error they
//! give: one definition, so the native API and the imitating front doors agree.

use switchboard_connectors::Status;

/// Longest service, namespace, group or instance id.
pub const MAX_NAME_LEN: usize = 253;

/// A rejected input: which field, a stable code, and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub code: &'static str,
    pub field: &'static str,
    pub message: String,
}

pub fn invalid(
    code: &'static str,
    field: &'static str,
    message: impl Into<String>,
) -> ValidationError {
    ValidationError {
        code,
        field,
        message: message.into(),
    }
}

/// Service, namespace and group names: 1-253 characters of `[A-Za-z0-9._-]`.
pub fn validate_name(
    name: &str,
    code: &'static str,
    field: &'static str,
) -> Result<(), ValidationError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            code,
            field,
            format!("{field} must be 1-{MAX_NAME_LEN} characters of [A-Za-z0-9._-]"),
        ))
    }
}

pub fn validate_id(id: &str) -> Result<(), ValidationError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_NAME_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "invalid_id",
            "id",
            format!("id must be 1-{MAX_NAME_LEN} characters of [A-Za-z0-9.:_-]"),
        ))
    }
}

pub fn parse_status(text: &str) -> Result<Status, ValidationError> {
    Status::parse(text).ok_or_else(|| {
        invalid(
            "invalid_status",
            "status",
            format!("status must be one of active, inactive, maintenance, offline; got `{text}`"),
        )
    })
}
