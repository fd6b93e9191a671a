//! Happy paths of discovery: the service listing, a service's instances with each filter
//! and the `X-Switchboard-Index` header (blocking parameters whose index has passed answer
//! at once), catalog and service stats, and the admin endpoints (`/admin/all`, removing a
//! service).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;

use crate::{
    assert_fields, assert_has_keys, assert_non_null, assert_problem, ids, keys, timestamp, Harness,
};

/// Registers the instances the discovery tests filter: `a` and `b` in `public/DEFAULT`,
/// `c` in namespace `prod`, `d` in group `canary`, all of service `catalog`.
async fn seed_catalog(h: &Harness) -> anyhow::Result<()> {
    for body in [
        json!({ "id": "a", "service": "catalog", "address": "10.0.0.1:80", "protocol": "http",
            "tags": ["blue", "v1"], "metadata": { "zone": "us-1", "tier": "web" } }),
        json!({ "id": "b", "service": "catalog", "address": "10.0.0.2:80", "protocol": "grpc",
            "tags": ["green"], "metadata": { "zone": "eu-1" }, "status": "maintenance" }),
        json!({ "id": "c", "service": "catalog", "namespace": "prod", "address": "10.0.1.1:80" }),
        json!({ "id": "d", "service": "catalog", "group": "canary", "address": "10.0.2.1:80" }),
        json!({ "id": "other-1", "service": "other", "address": "10.0.3.1:80" }),
    ] {
        h.register(body).await?;
    }
    Ok(())
}

/// A started app with the [`seed_catalog`] instances.
async fn seeded() -> anyhow::Result<Harness> {
    let h = Harness::start().await?;
    seed_catalog(&h).await?;
    Ok(h)
}

/// Asserts each of `uris` answers 404 `code`.
async fn assert_all_not_found(h: &Harness, uris: &[&str], code: &str) -> anyhow::Result<()> {
    for uri in uris {
        assert_problem(&h.get(uri).await?, StatusCode::NOT_FOUND, code);
    }
    Ok(())
}

#[tokio::test]
async fn service_listing() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    assert_eq!(h.get_ok("/api/v1/services").await?, json!([]));

    seed_catalog(&h).await?;
    let reply = h.get("/api/v1/services").await?;
    let listing = reply
        .expect(StatusCode::OK)
        .as_array()
        .expect("array")
        .clone();
    let catalog_index = reply.index_header();
    let names: Vec<_> = listing
        .iter()
        .map(|s| format!("{}/{}/{}", s["namespace"], s["group"], s["name"]).replace('"', ""))
        .collect();
    assert_eq!(
        names,
        vec![
            "prod/DEFAULT/catalog",
            "public/DEFAULT/catalog",
            "public/DEFAULT/other",
            "public/canary/catalog",
        ]
    );
    let main = &listing[1];
    assert_has_keys(
        main,
        &[
            "name",
            "namespace",
            "group",
            "instance_count",
            "healthy_count",
            "sources",
            "index",
        ],
    );
    assert_fields(
        main,
        &[
            ("instance_count", json!(2)),
            ("healthy_count", json!(1)),
            ("sources", json!(["native"])),
        ],
    );
    assert!(listing.iter().all(|s| s["index"]
        .as_u64()
        .is_some_and(|i| i > 0 && i <= catalog_index)));

    let prod = h.get_ok("/api/v1/services?namespace=prod").await?;
    assert_eq!(prod.as_array().map(Vec::len), Some(1));
    let canary = h.get_ok("/api/v1/services?group=canary").await?;
    assert_eq!(canary[0]["group"], "canary");
    let nowhere = h.get_ok("/api/v1/services?namespace=nowhere").await?;
    assert_eq!(nowhere, json!([]));
    Ok(())
}

#[tokio::test]
async fn instances_with_each_filter() -> anyhow::Result<()> {
    let h = seeded().await?;

    let reply = h.get("/api/v1/services/catalog/instances").await?;
    assert_eq!(ids(reply.expect(StatusCode::OK)), vec!["a", "b"]);
    let index = reply.index_header();
    let listing = h.get("/api/v1/services").await?;
    let summary =
        listing.json.as_array().expect("array").iter().find(|s| {
            s["name"] == "catalog" && s["namespace"] == "public" && s["group"] == "DEFAULT"
        });
    assert_eq!(
        summary.expect("listed")["index"],
        index,
        "header = listing index"
    );

    for (query, expected) in [
        ("namespace=prod", vec!["c"]),
        ("namespace=public", vec!["a", "b"]),
        ("group=canary", vec!["d"]),
        ("namespace=prod&group=canary", vec![]),
        ("status=active", vec!["a"]),
        ("status=maintenance", vec!["b"]),
        ("status=offline", vec![]),
        ("healthy=true", vec!["a"]),
        ("healthy=false", vec!["b"]),
        ("healthy=1", vec!["a"]),
        ("protocol=grpc", vec!["b"]),
        ("protocol=http", vec!["a"]),
        ("protocol=udp", vec![]),
        ("tag=blue", vec!["a"]),
        ("tag=blue&tag=v1", vec!["a"]),
        ("tag=blue&tag=green", vec![]),
        ("source=native", vec!["a", "b"]),
        ("source=consul", vec![]),
        ("meta.zone=eu-1", vec!["b"]),
        ("meta.zone=us-1&meta.tier=web", vec!["a"]),
        ("meta.zone=us-1&meta.tier=db", vec![]),
        ("meta.missing=x", vec![]),
        (
            "status=active&protocol=http&tag=v1&meta.zone=us-1&source=native",
            vec!["a"],
        ),
        ("cb=123&unknown=ignored", vec!["a", "b"]),
    ] {
        let uri = format!("/api/v1/services/catalog/instances?{query}");
        let reply = h.get(&uri).await?;
        assert_eq!(ids(reply.expect(StatusCode::OK)), expected, "{query}");
        // Filters do not change the header: it is the index of the service the placement
        // (namespace, group) selects, 0 when there is none.
        let placement: Vec<&str> = query
            .split('&')
            .filter(|p| p.starts_with("namespace=") || p.starts_with("group="))
            .collect();
        let uri = format!("/api/v1/services/catalog/instances?{}", placement.join("&"));
        let unfiltered = h.get(&uri).await?;
        assert_eq!(reply.index_header(), unfiltered.index_header(), "{query}");
    }

    // A service nobody registered: empty, with the index absent services share (the
    // last emptying, or the catalog's start): above 0, never above the catalog's.
    let reply = h.get("/api/v1/services/nobody/instances").await?;
    assert_eq!(reply.expect(StatusCode::OK), &json!([]));
    let absent = reply.index_header();
    assert!(absent > 0 && absent <= listing.index_header(), "{absent}");

    // Blocking queries whose index is already passed answer at once, and so does an index
    // from a wiped data dir (above anything this catalog issued, the listing's index).
    for query in [
        format!("index={}", index - 1),
        format!("index={}&wait=5m", listing.index_header() + 1),
        "index=18446744073709551615&wait=5m".into(),
    ] {
        let blocking = format!("/api/v1/services/catalog/instances?{query}");
        let reply = tokio::time::timeout(Duration::from_secs(10), h.get(&blocking)).await??;
        assert_eq!(ids(reply.expect(StatusCode::OK)), vec!["a", "b"], "{query}");
        assert_eq!(reply.index_header(), index, "{query}");
    }
    // The current index, with nothing changing, is answered only when the wait is over.
    let wait = Duration::from_millis(300);
    let asked = Instant::now();
    let blocking = format!("/api/v1/services/catalog/instances?index={index}&wait=300ms");
    let reply = h.get(&blocking).await?;
    let answered = asked.elapsed();
    assert!(answered >= wait, "answered after only {answered:?}");
    assert_eq!(ids(reply.expect(StatusCode::OK)), vec!["a", "b"]);
    assert_eq!(reply.index_header(), index);
    Ok(())
}

#[tokio::test]
async fn a_service_that_emptied_answers_a_blocking_query_from_before_at_once() -> anyhow::Result<()>
{
    let h = Harness::start().await?;
    h.register(json!({ "id": "brief-1", "service": "brief", "address": "10.0.0.1:80" }))
        .await?;
    let before = h
        .get("/api/v1/services/brief/instances")
        .await?
        .index_header();
    let reply = h.delete("/api/v1/instances/brief-1").await?;
    assert!(reply.status.is_success(), "{:?}", reply.status);

    // The removal is news to a client holding the index from before it.
    let blocking = format!("/api/v1/services/brief/instances?index={before}&wait=5m");
    let reply = tokio::time::timeout(Duration::from_secs(10), h.get(&blocking)).await??;
    assert_eq!(reply.expect(StatusCode::OK), &json!([]));
    let emptied = reply.index_header();
    assert!(emptied > before, "{emptied} > {before}");

    // With the index it was given, and with `index=0`, a client waits for an instance.
    for index in [emptied, 0] {
        let wait = Duration::from_millis(300);
        let asked = Instant::now();
        let blocking = format!("/api/v1/services/brief/instances?index={index}&wait=300ms");
        let reply = h.get(&blocking).await?;
        let answered = asked.elapsed();
        assert!(
            answered >= wait,
            "index={index} answered after only {answered:?}"
        );
        assert_eq!(reply.expect(StatusCode::OK), &json!([]));
    }
    Ok(())
}

#[tokio::test]
async fn catalog_stats() -> anyhow::Result<()> {
    let h = seeded().await?;
    let stats = &h.get_ok("/api/v1/stats").await?;
    assert_non_null(
        stats,
        &[
            "total_services",
            "total_instances",
            "healthy_instances",
            "unhealthy_instances",
            "service_stats",
            "timestamp",
        ],
    );
    assert_fields(
        stats,
        &[
            ("total_services", json!(4)),
            ("total_instances", json!(5)),
            ("healthy_instances", json!(4)),
            ("unhealthy_instances", json!(1)),
            ("service_stats", json!({ "catalog": 4, "other": 1 })),
            ("protocols", json!({ "grpc": 1, "http": 4 })),
            (
                "statuses",
                json!({ "active": 4, "inactive": 0, "maintenance": 1, "offline": 0 }),
            ),
            ("sources", json!({ "native": 5 })),
        ],
    );
    timestamp(&stats["timestamp"]);
    Ok(())
}

#[tokio::test]
async fn service_stats() -> anyhow::Result<()> {
    let h = seeded().await?;
    let stats = &h.get_ok("/api/v1/services/catalog/stats").await?;
    assert_fields(
        stats,
        &[
            ("service_name", json!("catalog")),
            ("namespace", json!("public")),
            ("group", json!("DEFAULT")),
            ("total_instances", json!(2)),
            ("healthy_instances", json!(1)),
            ("unhealthy_instances", json!(1)),
            ("protocols", json!({ "grpc": 1, "http": 1 })),
            (
                "statuses",
                json!({ "active": 1, "inactive": 0, "maintenance": 1, "offline": 0 }),
            ),
        ],
    );
    assert_eq!(ids(&stats["instances"]), vec!["a", "b"]);
    timestamp(&stats["timestamp"]);

    let prod = h
        .get_ok("/api/v1/services/catalog/stats?namespace=prod")
        .await?;
    assert_eq!(ids(&prod["instances"]), vec!["c"]);

    let unknown = [
        "/api/v1/services/nobody/stats",
        "/api/v1/services/catalog/stats?namespace=nowhere",
    ];
    assert_all_not_found(&h, &unknown, "service_not_found").await
}

#[tokio::test]
async fn admin_all_groups_instances_by_service_name() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    assert_eq!(h.get_ok("/api/v1/admin/all").await?, json!({}));

    seed_catalog(&h).await?;
    let all = h.get_ok("/api/v1/admin/all").await?;
    assert_eq!(keys(&all), BTreeSet::from(["catalog", "other"]));
    // Same name in other namespaces and groups shares the list.
    assert_eq!(ids(&all["catalog"]), vec!["a", "b", "c", "d"]);
    assert_eq!(ids(&all["other"]), vec!["other-1"]);
    Ok(())
}

#[tokio::test]
async fn admin_removes_a_service() -> anyhow::Result<()> {
    let h = seeded().await?;
    let reply = h.delete("/api/v1/admin/services/catalog").await?;
    assert_fields(
        reply.expect(StatusCode::OK),
        &[
            ("service_name", json!("catalog")),
            ("namespace", json!("public")),
            ("group", json!("DEFAULT")),
            ("total_instances", json!(2)),
            ("removed_count", json!(2)),
            ("errors", json!([])),
        ],
    );

    let reply = h.delete("/api/v1/admin/services/catalog").await?;
    assert_problem(&reply, StatusCode::NOT_FOUND, "service_not_found");
    let reply = h.get("/api/v1/services/catalog/stats").await?;
    assert_problem(&reply, StatusCode::NOT_FOUND, "service_not_found");
    let gone = ["/api/v1/instances/a", "/api/v1/instances/b"];
    assert_all_not_found(&h, &gone, "instance_not_found").await?;
    let listed = h.get_ok("/api/v1/services/catalog/instances").await?;
    assert_eq!(listed, json!([]));

    // Other namespaces and groups of the same name are untouched, and can go by name too.
    let prod = h
        .get_ok("/api/v1/services/catalog/instances?namespace=prod")
        .await?;
    assert_eq!(ids(&prod), vec!["c"]);
    let reply = h
        .delete("/api/v1/admin/services/catalog?group=canary")
        .await?;
    assert_eq!(reply.expect(StatusCode::OK)["removed_count"], 1);
    let names: Vec<_> = h
        .get_ok("/api/v1/services")
        .await?
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["namespace"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, vec!["prod", "public"]);
    Ok(())
}
