//! Validation rules of `POST /api/v1/instances`, each at its boundaries: service names (and
//! the `name` alias), generated ids, addresses (`host:port`, bracketed IPv6, `host` +
//! `port`), weights, metadata key count and key/value sizes (in bytes, not characters), and
//! the other fields' codes.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::{assert_invalid, assert_problem, registration, with, Harness, INSTANCES};

#[tokio::test]
async fn service_names_are_1_to_253_chars_of_the_allowed_set() -> anyhow::Result<()> {
    let h = Harness::start().await?;

    for good in ["a".repeat(253), "A.b_c-9".into()] {
        let reply = h.post_instance(registration(&good, "10.0.0.1:80")).await?;
        assert_eq!(reply.expect(StatusCode::CREATED)["service"], good);
    }

    let bad = [
        "a".repeat(254),
        String::new(),
        "bad name".into(),
        "bad/name".into(),
        "bad:name".into(),
        "sérvice".into(),
        "服务".into(),
    ];
    let bodies = bad.iter().map(|name| registration(name, "10.0.0.1:80"));
    let missing = json!({ "address": "10.0.0.1:80" });
    h.assert_all_invalid(bodies.chain([missing]), "invalid_service_name", "service")
        .await
}

#[tokio::test]
async fn generated_ids_fit_the_id_limit_and_can_be_sent_back() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    // 216 characters leave just room for `-{uuid}` in 253; 253 must be shortened.
    for (len, port) in [(216, 81), (253, 82)] {
        let service = "s".repeat(len);
        let reply = h
            .post_instance(registration(&service, &format!("10.0.0.1:{port}")))
            .await?;
        let id = reply.expect(StatusCode::CREATED)["id"]
            .as_str()
            .expect("id")
            .to_owned();
        // `{service, shortened}-{uuid}`, at most 253 characters.
        assert!(id.len() <= 253, "{} characters: {id}", id.len());
        let (prefix, uuid) = id.split_at(id.len() - 37);
        assert!(
            !prefix.is_empty() && service.starts_with(prefix),
            "{len}: {id}"
        );
        assert!(uuid.starts_with('-'), "{len}: {id}");

        // Sent back as `id`, it replaces the instance (here with a new address).
        let body = json!({ "id": id, "service": service, "address": "10.0.0.2:80" });
        let reply = h.post_instance(body).await?;
        let replaced = reply.expect(StatusCode::OK);
        assert_eq!(replaced["id"], id.as_str());
        assert_eq!(replaced["address"], "10.0.0.2:80");
        let got = h.get_ok(&format!("{INSTANCES}/{id}")).await?;
        assert_eq!(got["address"], "10.0.0.2:80");
    }
    Ok(())
}

#[tokio::test]
async fn name_is_an_alias_of_service() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let reply = h
        .post_instance(json!({ "name": "aliased", "address": "10.0.0.1:80" }))
        .await?;
    assert_eq!(reply.expect(StatusCode::CREATED)["service"], "aliased");
    let listed = h.get_ok("/api/v1/services/aliased/instances").await?;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));

    // The alias is validated like `service`.
    let reply = h
        .post_instance(json!({ "name": "bad name", "address": "10.0.0.1:80" }))
        .await?;
    assert_invalid(&reply, "invalid_service_name", "service");

    // Both at once is ambiguous.
    let reply = h
        .post_instance(json!({ "service": "a", "name": "b", "address": "10.0.0.1:80" }))
        .await?;
    assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid_body");
    Ok(())
}

#[tokio::test]
async fn addresses_are_host_port_with_bracketed_ipv6() -> anyhow::Result<()> {
    let h = Harness::start().await?;

    for (address, host, port) in [
        ("10.0.0.1:1", "10.0.0.1", 1),
        ("example.com:65535", "example.com", 65535),
        ("localhost:8080", "localhost", 8080),
        ("[::1]:8080", "::1", 8080),
        ("[2001:db8::7]:443", "2001:db8::7", 443),
    ] {
        let reply = h.post_instance(registration("addr", address)).await?;
        let instance = reply.expect(StatusCode::CREATED);
        assert_eq!(instance["host"], host, "{address}");
        assert_eq!(instance["port"], port, "{address}");
        assert_eq!(instance["address"], address, "{address}");
    }

    let bad = [
        "10.0.0.1:0",
        "10.0.0.1:65536",
        "10.0.0.1:-1",
        "10.0.0.1:+80",
        "10.0.0.1",
        "10.0.0.1:",
        "10.0.0.1:http",
        "::1:8080",
        "[::1]8080",
        "[::1]:",
        "[zz::1]:80",
        "[10.0.0.1]:80",
        ":80",
        "bad host:80",
        "",
    ];
    let bodies = bad.map(|address| registration("addr", address));
    h.assert_all_invalid(bodies, "invalid_address", "address")
        .await
}

#[tokio::test]
async fn host_and_port_form_is_an_alternative_to_address() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let split =
        |host: Value, port: Value| json!({ "service": "split", "host": host, "port": port });

    let reply = h
        .post_instance(split(json!("10.0.0.2"), json!(9000)))
        .await?;
    let instance = reply.expect(StatusCode::CREATED);
    assert_eq!(instance["address"], "10.0.0.2:9000");

    // A separate host may be a bare (or bracketed) IPv6 address.
    for (host, port) in [("::1", 9001), ("[::1]", 9002)] {
        let reply = h.post_instance(split(json!(host), json!(port))).await?;
        let instance = reply.expect(StatusCode::CREATED);
        assert_eq!(instance["host"], "::1");
        assert_eq!(instance["address"], format!("[::1]:{port}"));
    }

    let ports = [0, 65536, -1].map(|port| split(json!("10.0.0.2"), json!(port)));
    h.assert_all_invalid(ports, "invalid_address", "port")
        .await?;
    // Brackets must come in one balanced pair.
    let hosts = ["bad host", "[::1", "::1]", "[[::1]]"].map(|host| split(json!(host), json!(80)));
    h.assert_all_invalid(hosts, "invalid_address", "host")
        .await?;

    // Half of the pair, both forms at once, or neither.
    let bodies = [
        json!({ "service": "split", "host": "10.0.0.2" }),
        json!({ "service": "split", "port": 80 }),
        json!({ "service": "split", "address": "10.0.0.2:80", "host": "10.0.0.2" }),
        json!({ "service": "split", "address": "10.0.0.2:80", "port": 80 }),
        json!({ "service": "split" }),
    ];
    h.assert_all_invalid(bodies, "invalid_address", "address")
        .await?;

    // A port that is not a JSON integer is a body error, not an address error.
    h.assert_all_invalid_body([split(json!("10.0.0.2"), json!("80"))])
        .await
}

#[tokio::test]
async fn weight_is_0_to_10000() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let base = registration("weighted", "10.0.0.1:80");

    let reply = h.post_instance(base.clone()).await?;
    assert_eq!(reply.expect(StatusCode::CREATED)["weight"], 100, "default");
    for (port, weight) in [(81, 0), (82, 10_000)] {
        let body = with(base.clone(), "address", json!(format!("10.0.0.1:{port}")));
        let reply = h.post_instance(with(body, "weight", json!(weight))).await?;
        assert_eq!(reply.expect(StatusCode::CREATED)["weight"], weight);
    }
    let weighted = |weight: Value| with(base.clone(), "weight", weight);
    h.assert_all_invalid(
        [-1, 10_001].map(|w| weighted(json!(w))),
        "invalid_weight",
        "weight",
    )
    .await?;
    h.assert_all_invalid_body([json!(1.5), json!("100")].map(weighted))
        .await
}

#[tokio::test]
async fn metadata_limits_keys_and_sizes_in_bytes() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let mut port = 1000;
    let mut post = |metadata: Value| {
        port += 1;
        let body = registration("meta", &format!("10.0.0.1:{port}"));
        h.post_instance(with(body, "metadata", metadata))
    };
    let object = |pairs: Vec<(String, String)>| {
        Value::Object(pairs.into_iter().map(|(k, v)| (k, json!(v))).collect())
    };

    // Key count: 64 ok, 65 rejected.
    let keys64: Vec<_> = (0..64).map(|i| (format!("k{i}"), "v".to_owned())).collect();
    let reply = post(object(keys64.clone())).await?;
    assert_eq!(
        reply.expect(StatusCode::CREATED)["metadata"]
            .as_object()
            .map(|m| m.len()),
        Some(64)
    );
    let mut keys65 = keys64;
    keys65.push(("one-more".into(), "v".into()));
    assert_invalid(&post(object(keys65)).await?, "invalid_metadata", "metadata");

    // Key size: 128 bytes ok, 129 rejected; two-byte characters count twice. Value size:
    // 1024 bytes ok, 1025 rejected; empty values are fine, empty keys are not.
    let key = |key: String| (key, "v".to_owned());
    let value = |value: String| ("k".to_owned(), value);
    for ((key, value), ok) in [
        (key("k".repeat(128)), true),
        (key("k".repeat(129)), false),
        (key("é".repeat(64)), true),
        (key("é".repeat(65)), false),
        (key(String::new()), false),
        (value("v".repeat(1024)), true),
        (value("v".repeat(1025)), false),
        (value("é".repeat(512)), true),
        (value("é".repeat(513)), false),
        (value(String::new()), true),
    ] {
        let reply = post(object(vec![(key.clone(), value.clone())])).await?;
        if ok {
            let instance = reply.expect(StatusCode::CREATED);
            assert_eq!(instance["metadata"][&key], value.as_str());
        } else {
            assert_invalid(&reply, "invalid_metadata", "metadata");
        }
    }

    // Values must be strings.
    let reply = post(json!({ "k": 1 })).await?;
    assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid_body");
    Ok(())
}

#[tokio::test]
async fn other_fields_are_validated_too() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let base = registration("others", "10.0.0.1:80");
    let tags: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
    for (key, value, code) in [
        ("namespace", json!("bad ns"), "invalid_namespace"),
        ("group", json!(""), "invalid_group"),
        ("id", json!("bad id"), "invalid_id"),
        ("id", json!("i".repeat(254)), "invalid_id"),
        ("protocol", json!(""), "invalid_protocol"),
        ("protocol", json!("h".repeat(33)), "invalid_protocol"),
        ("version", json!(""), "invalid_version"),
        ("status", json!("up"), "invalid_status"),
        ("tags", json!([""]), "invalid_tags"),
        ("tags", json!(tags), "invalid_tags"),
        ("ttl_seconds", json!(0), "invalid_ttl"),
        ("ttl_seconds", json!(86_401), "invalid_ttl"),
        (
            "deregister_after_seconds",
            json!(0),
            "invalid_deregister_after",
        ),
    ] {
        let reply = h.post_instance(with(base.clone(), key, value)).await?;
        assert_invalid(&reply, code, key);
    }
    Ok(())
}
