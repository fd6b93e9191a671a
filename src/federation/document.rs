//! Source documents as JSON: merge patches and write-only secrets.
//!
//! A PATCH applies an RFC 7386 merge patch to a source's document; a PUT may send back a
//! document it read, whose secrets read `***`. Both end in [`restore_secrets`] against the
//! stored document (secrets in clear) before the result is parsed, so `***` keeps the
//! stored secret instead of becoming the new one.

use serde_json::Value;

/// The mask `SourceConfig` serializes secrets as.
use switchboard_connectors::SECRET_MASK as MASK;

/// Applies `patch` to `target` as a JSON merge patch (RFC 7386): objects merge key by key,
/// recursively; `null` removes a key; any other value (arrays too) replaces the target.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(target) = target else {
        unreachable!("made an object above");
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Wherever `new` holds the string `***`, puts the value at the same path in `old`, when
/// `old` has one there (objects by key, arrays by index). A `***` with nothing behind it
/// in `old` stays, and is then taken as the secret itself.
pub(crate) fn restore_secrets(new: &mut Value, old: &Value) {
    if new.as_str() == Some(MASK) {
        if !old.is_null() {
            *new = old.clone();
        }
        return;
    }
    match (new, old) {
        (Value::Object(new), Value::Object(old)) => {
            for (key, value) in new.iter_mut() {
                if let Some(old) = old.get(key) {
                    restore_secrets(value, old);
                }
            }
        }
        (Value::Array(new), Value::Array(old)) => {
            for (value, old) in new.iter_mut().zip(old) {
                restore_secrets(value, old);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use switchboard_connectors::SourceConfig;

    use super::*;

    fn patched(target: Value, patch: Value) -> Value {
        let mut target = target;
        merge_patch(&mut target, &patch);
        target
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        // RFC 7386, appendix A: (original, patch, result).
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (original, patch, result) in cases {
            let what = format!("{original} + {patch}");
            assert_eq!(patched(original, patch), result, "{what}");
        }
        // RFC 7386, section 3.
        let original = json!({
            "title": "Goodbye!",
            "author": { "givenName": "John", "familyName": "Doe" },
            "tags": ["example", "sample"],
            "content": "This will be unchanged"
        });
        let patch = json!({
            "title": "Hello!",
            "phoneNumber": "+01-123-456-7890",
            "author": { "familyName": null },
            "tags": ["example"]
        });
        let result = json!({
            "title": "Hello!",
            "author": { "givenName": "John" },
            "tags": ["example"],
            "content": "This will be unchanged",
            "phoneNumber": "+01-123-456-7890"
        });
        assert_eq!(patched(original, patch), result);
    }

    #[test]
    fn masks_take_the_old_value_at_the_same_path() {
        let old = json!({
            "password": "hunter2",
            "tls": { "ca": "/ca.pem", "key": "/k.pem" },
            "list": ["a", "secret"],
            "token": null,
        });
        let mut new = json!({
            "password": "***",
            "tls": { "ca": "/new-ca.pem", "key": "***" },
            "list": ["b", "***", "***"],
            "token": "***",
            "extra": "***",
            "kept": "s3cr3t",
        });
        restore_secrets(&mut new, &old);
        let expected = json!({
            "password": "hunter2",
            "tls": { "ca": "/new-ca.pem", "key": "/k.pem" },
            "list": ["b", "secret", "***"],
            "token": "***",
            "extra": "***",
            "kept": "s3cr3t",
        });
        assert_eq!(new, expected);
    }

    fn stored() -> Value {
        json!({
            "id": "etcd-a",
            "type": "etcd",
            "endpoints": ["https://10.0.0.1:2379"],
            "username": "root",
            "password": "hunter2",
            "tls": { "ca": "/ca.pem", "cert": "/c.pem", "key": "/k.pem" },
        })
    }

    #[test]
    fn a_document_read_back_keeps_its_secrets() {
        let original = SourceConfig::from_json(stored()).unwrap();
        let mut shown = serde_json::to_value(&original).unwrap();
        assert_eq!(shown["password"], "***");
        assert_eq!(shown["tls"]["key"], "***");
        restore_secrets(&mut shown, &stored());
        assert_eq!(SourceConfig::from_json(shown).unwrap(), original);
    }

    #[test]
    fn a_patch_of_the_shown_document_changes_only_what_it_names() {
        let original = SourceConfig::from_json(stored()).unwrap();
        let mut document = serde_json::to_value(&original).unwrap();
        merge_patch(&mut document, &json!({ "service_prefix": "x-" }));
        restore_secrets(&mut document, &stored());
        let changed = SourceConfig::from_json(document).unwrap();
        assert_eq!(changed.common.service_prefix.as_deref(), Some("x-"));
        let mut expected = original;
        expected.common.service_prefix = Some("x-".to_owned());
        assert_eq!(changed, expected);
    }
}
