//! The rules every front door applies to names, ids and statuses, and the error they
//! give: one definition, so the native API and the imitating front doors agree.

use switchboard_connectors::Status;

/// Longest service, namespace, group or instance id.
pub const MAX_NAME_LEN: usize = 253;

/// [`validate_name`]'s characters as a JSON Schema pattern (with [`MAX_NAME_LEN`]), so the
/// OpenAPI document states the rule the server applies.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9._-]+$";

/// [`validate_id`]'s characters as a JSON Schema pattern (with [`MAX_NAME_LEN`]).
pub const ID_PATTERN: &str = "^[A-Za-z0-9.:_-]+$";

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The patterns' character classes, read back: every ASCII byte a pattern allows is
    /// one the validator accepts, and no other.
    #[test]
    fn patterns_state_the_validators_rules() {
        let allowed = |pattern: &str, b: u8| {
            let class = &pattern[2..pattern.len() - 3];
            let c = b as char;
            (class.contains("A-Z") && c.is_ascii_uppercase())
                || (class.contains("a-z") && c.is_ascii_lowercase())
                || (class.contains("0-9") && c.is_ascii_digit())
                || class
                    .replace("A-Z", "")
                    .replace("a-z", "")
                    .replace("0-9", "")
                    .contains(c)
        };
        for b in 0..=127u8 {
            let text = (b as char).to_string();
            let name_ok = validate_name(&text, "invalid_name", "name").is_ok();
            assert_eq!(name_ok, allowed(NAME_PATTERN, b), "name byte {b}");
            assert_eq!(
                validate_id(&text).is_ok(),
                allowed(ID_PATTERN, b),
                "id byte {b}"
            );
        }
        let longest = "a".repeat(MAX_NAME_LEN);
        assert!(validate_name(&longest, "invalid_name", "name").is_ok());
        assert!(validate_name(&format!("{longest}a"), "invalid_name", "name").is_err());
    }
}
