//! The incremental path (re-merging only the endpoints a change touched, re-encoding only
//! their chunks) must publish exactly what a whole re-merge and re-encode would.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchboard_connectors::{Instance, InstanceKey, ServiceKey, Update};

use super::view::InstanceView;
use super::{Catalog, SourceMeta};
use crate::telemetry::Metrics;

const SOURCES: [&str; 3] = ["a", "b", "c"];

fn instance(id: usize, port: u16, weight: u32) -> Instance {
    let mut instance = Instance::new(format!("i{id}"), ServiceKey::named("svc"), "10.0.0.1", port);
    instance.weight = weight;
    instance
}

#[tokio::test]
async fn random_changes_publish_what_a_whole_re_merge_would() {
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let catalog = Catalog::start(Arc::new(Metrics::new()));
    let sources: Vec<Arc<str>> = SOURCES.iter().map(|s| Arc::from(*s)).collect();
    for (priority, source) in sources.iter().enumerate() {
        let meta = SourceMeta {
            priority: priority as i32,
            ..SourceMeta::default()
        };
        catalog.set_source(source, meta).await;
    }
    // Each source's instances by id, as the test believes them to be.
    let mut truth: Vec<Vec<Option<Instance>>> = vec![vec![None; 400]; SOURCES.len()];
    for round in 0..300 {
        let s = rng.gen_range(0..SOURCES.len());
        // In order, in one batch: the writer folds them into one publish.
        let mut updates = Vec::new();
        for _ in 0..rng.gen_range(1..20) {
            let id = rng.gen_range(0..400);
            if rng.gen_bool(0.3) {
                if truth[s][id].take().is_some() {
                    updates.push(Update::Remove(vec![InstanceKey {
                        service: ServiceKey::named("svc"),
                        id: format!("i{id}"),
                    }]));
                }
            } else {
                // Few ports, so sources often report the same endpoint.
                let next = instance(id, rng.gen_range(0..300), rng.gen_range(1..5));
                truth[s][id] = Some(next.clone());
                updates.push(Update::Upsert(vec![next]));
            }
        }
        let published = catalog.submit(&sources[s], updates).await;
        published.await.unwrap();
        // What a whole re-merge of the same reports serves, encoded from scratch.
        let snapshot = catalog.snapshot();
        let view = snapshot.service("public", "DEFAULT", "svc");
        let published: Vec<InstanceView> = (view.into_iter().flat_map(|v| v.instances()))
            .cloned()
            .collect();
        let metas: Vec<SourceMeta> = (0..SOURCES.len())
            .map(|priority| SourceMeta {
                priority: priority as i32,
                ..SourceMeta::default()
            })
            .collect();
        let held: Vec<Vec<Arc<Instance>>> = truth
            .iter()
            .map(|ids| ids.iter().flatten().cloned().map(Arc::new).collect())
            .collect();
        let reports = (0..SOURCES.len()).flat_map(|s| {
            held[s].iter().map({
                let (source, meta) = (&sources[s], &metas[s]);
                move |instance| super::merge::Reported {
                    source,
                    meta,
                    instance,
                }
            })
        });
        let expected = super::merge::merge(super::Policy::Union, reports.collect());
        if published != expected {
            let show = |views: &[InstanceView]| -> Vec<String> {
                views
                    .iter()
                    .map(|v| format!("{}:{}:{}:{:?}", v.port, v.id, v.weight, v.sources))
                    .collect()
            };
            let (got, want) = (show(&published), show(&expected));
            let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).collect();
            let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).collect();
            panic!("round {round}, seed {seed}: published has {extra:?}, lacks {missing:?}");
        }
        let body = view.map_or(bytes::Bytes::from_static(b"[]"), |v| v.encoded());
        assert_eq!(
            body,
            serde_json::to_vec(&expected).unwrap(),
            "round {round}, seed {seed}: the body is what encoding the list gives"
        );
    }
}
