//! A partition keeps its served instance count as buckets change; these tests recount.

use std::time::Duration;

use super::*;

fn recount(p: &Partition) -> usize {
    p.served
        .values()
        .flatten()
        .filter_map(|raw| p.services.get(raw))
        .map(Instances::len)
        .sum()
}

fn at(service: &str, id: &str, port: u16) -> Instance {
    Instance::new(id, ServiceKey::named(service), "10.0.0.1", port)
}

#[test]
fn the_served_instance_count_is_kept_through_every_kind_of_change() {
    let mut p = Partition {
        meta: SourceMeta {
            empty_confirm: Some(Duration::from_secs(10)),
            ..SourceMeta::default()
        },
        ..Partition::default()
    };
    let now = Instant::now();
    let mut touched = Touched::default();
    let remove = |service: &str, id: &str| {
        Update::Remove(vec![InstanceKey {
            service: ServiceKey::named(service),
            id: id.into(),
        }])
    };
    let steps = vec![
        Update::Reset(vec![
            at("a", "a1", 1),
            at("a", "a2", 2),
            at("hidden", "h1", 1),
        ]),
        Update::Upsert(vec![at("a", "a1", 9), at("b", "b1", 1)]),
        remove("a", "a2"),
        remove("a", "a1"),
        Update::Upsert(vec![at("a", "a3", 3)]),
        Update::Service(
            ServiceKey::named("b"),
            vec![at("b", "b2", 2), at("b", "b3", 3)],
        ),
        remove("b", "nope"),
    ];
    p.rename(
        Arc::new(NameMap {
            exclude: vec!["hidden".into()],
            ..NameMap::default()
        }),
        &mut touched,
    );
    for step in steps {
        p.apply(step, now, true, &mut touched);
        assert_eq!(p.instance_count(), recount(&p));
    }
    p.rename(Arc::new(NameMap::default()), &mut touched);
    assert_eq!(p.instance_count(), recount(&p));
    assert_eq!(
        p.instance_count(),
        4,
        "a3, b2, b3 and the no longer hidden h1"
    );
    p.apply(Update::Reset(Vec::new()), now, true, &mut touched);
    p.expire_holds(now + Duration::from_secs(10), &mut touched);
    assert_eq!(p.instance_count(), 0);
}
