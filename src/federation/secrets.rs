//! Credentials stay with the endpoints they were given for.
//!
//! A stored password, token or client key was given for the hosts and TLS settings of the
//! document it came with. A `PUT` or `PATCH` that points the source elsewhere (other
//! `endpoints`, another CA or client certificate) must therefore either send each secret
//! again or drop it; otherwise the next connection would hand the old secret to the new
//! host. Sending the mask `***` back counts as not sending it. Sync jobs hold no secrets
//! of their own: their target is a source, so this rule covers sync targets too.

use serde_json::Value;
use switchboard_connectors::SECRET_MASK;

/// JSON pointers of the secrets a source document can hold, with the name an error shows.
const SECRETS: [(&str, &str); 3] = [
    ("/password", "password"),
    ("/token", "token"),
    ("/tls/key", "tls.key"),
];

/// The secrets of `current` (the stored document) that `document` (what the change would
/// store, before masks are restored) still carries although `request` (the PUT body or
/// the PATCH) did not send them, when the change moves the source to other endpoints or
/// TLS settings. Empty when the change may go ahead.
pub(super) fn missing_secrets(current: &Value, document: &Value, request: &Value) -> Vec<String> {
    if !moves(current, document) {
        return Vec::new();
    }
    SECRETS
        .iter()
        .filter(|(pointer, _)| {
            let stored = present(current.pointer(pointer));
            let kept = present(document.pointer(pointer));
            stored && kept && !supplied(request.pointer(pointer))
        })
        .map(|(_, name)| (*name).to_owned())
        .collect()
}

/// Whether `document` connects somewhere else than `current`: other endpoints, or other
/// TLS settings (the client key aside, which is one of the secrets).
fn moves(current: &Value, document: &Value) -> bool {
    let tls_of = |document: &Value| {
        let mut tls = document.get("tls").cloned().unwrap_or(Value::Null);
        if let Some(tls) = tls.as_object_mut() {
            tls.remove("key");
        }
        tls
    };
    current.get("endpoints") != document.get("endpoints") || tls_of(current) != tls_of(document)
}

fn present(value: Option<&Value>) -> bool {
    value.is_some_and(|value| !value.is_null())
}

/// Sent in clear: a value that is neither `null` (a drop) nor the mask.
fn supplied(value: Option<&Value>) -> bool {
    present(value) && value.and_then(Value::as_str) != Some(SECRET_MASK)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::federation::document::merge_patch;

    fn stored() -> Value {
        json!({
            "id": "e", "type": "etcd", "endpoints": ["https://10.0.0.1:2379"],
            "username": "root", "password": "hunter2",
            "tls": { "ca": "/ca.pem", "cert": "/c.pem", "key": "/k.pem" },
        })
    }

    /// What a PATCH would be refused for.
    fn patched(patch: Value) -> Vec<String> {
        let mut document = stored();
        merge_patch(&mut document, &patch);
        missing_secrets(&stored(), &document, &patch)
    }

    #[test]
    fn a_patch_that_moves_the_source_must_resend_or_drop_each_secret() {
        let elsewhere = json!(["https://10.9.9.9:2379"]);
        assert_eq!(
            patched(json!({ "endpoints": elsewhere })),
            ["password", "tls.key"]
        );
        let masked = json!({ "endpoints": elsewhere, "password": "***", "tls": { "key": "***" } });
        assert_eq!(patched(masked), ["password", "tls.key"]);
        let resent = json!({ "endpoints": elsewhere, "password": "pw2", "tls": { "key": "/k2" } });
        assert!(patched(resent).is_empty());
        let dropped = json!({ "endpoints": elsewhere, "password": null, "tls": { "key": null } });
        assert!(patched(dropped).is_empty());
        let half = json!({ "endpoints": elsewhere, "password": null });
        assert_eq!(patched(half), ["tls.key"]);
    }

    #[test]
    fn tls_settings_count_as_moving_but_other_fields_do_not() {
        assert_eq!(
            patched(json!({ "tls": { "ca": "/other-ca.pem" } })),
            ["password", "tls.key"]
        );
        assert_eq!(
            patched(json!({ "tls": { "cert": "/other.pem" } })),
            ["password", "tls.key"]
        );
        assert!(patched(json!({ "priority": 3, "password": "***" })).is_empty());
        assert!(patched(json!({ "username": "other" })).is_empty());
        // Resending only the key (the mask aside) does not move the source.
        assert!(patched(json!({ "tls": { "key": "/k2.pem" } })).is_empty());
    }

    #[test]
    fn a_put_that_moves_the_source_must_not_echo_the_mask() {
        let mut document = stored();
        document["endpoints"] = json!(["https://10.9.9.9:2379"]);
        document["password"] = json!("***");
        document["tls"]["key"] = json!("***");
        let missing = missing_secrets(&stored(), &document, &document);
        assert_eq!(missing, ["password", "tls.key"]);
        // Leaving a secret out of a PUT drops it.
        document.as_object_mut().unwrap().remove("password");
        document["tls"]["key"] = json!("/k2.pem");
        assert!(missing_secrets(&stored(), &document, &document).is_empty());
    }

    #[test]
    fn a_consul_token_follows_the_same_rule() {
        let current =
            json!({ "id": "c", "type": "consul", "endpoints": ["http://a:8500"], "token": "t" });
        let patch = json!({ "endpoints": ["http://b:8500"] });
        let mut document = current.clone();
        merge_patch(&mut document, &patch);
        assert_eq!(missing_secrets(&current, &document, &patch), ["token"]);
    }

    /// Every path a document's config shows as `***`, as JSON pointers.
    fn masked(value: &Value, at: String, out: &mut Vec<String>) {
        match value {
            Value::String(text) if text == SECRET_MASK => out.push(at),
            Value::Object(map) => {
                for (key, value) in map {
                    masked(value, format!("{at}/{key}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn the_secrets_are_what_the_api_masks() {
        let tls = json!({ "ca": "/ca.pem", "cert": "/c.pem", "key": "/k.pem" });
        let documents = [
            json!({ "id": "e", "type": "etcd", "endpoints": ["https://a:2379"],
                    "username": "u", "password": "p", "tls": tls }),
            json!({ "id": "c", "type": "consul", "endpoints": ["https://a:8501"],
                    "token": "t", "tls": tls }),
            json!({ "id": "n", "type": "nacos", "endpoints": ["http://a:8848"],
                    "username": "u", "password": "p" }),
        ];
        let known: Vec<&str> = SECRETS.iter().map(|(pointer, _)| *pointer).collect();
        for document in documents {
            let config = switchboard_connectors::SourceConfig::from_json(document.clone());
            let shown = serde_json::to_value(config.unwrap()).unwrap();
            let mut found = Vec::new();
            masked(&shown, String::new(), &mut found);
            assert!(!found.is_empty(), "{shown}");
            for pointer in found {
                assert!(
                    known.contains(&pointer.as_str()),
                    "{pointer} is masked but not in SECRETS"
                );
            }
        }
    }
}
