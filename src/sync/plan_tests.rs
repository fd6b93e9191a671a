//! The planner's rules, one case each.

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;
use switchboard_connectors::{Instance, ServiceKey};

use super::*;
use crate::catalog::SourceSlice;
use crate::sync::ledger::LedgerEntry;

/// A world where `echo` endpoints were written into their source and `down` sources
/// cannot be trusted.
#[derive(Default)]
struct Fake {
    echo: Vec<(&'static str, u16)>,
    down: Vec<&'static str>,
}

impl World for Fake {
    fn is_echo(&self, _source: &str, _name: &str, host: &str, port: u16) -> bool {
        self.echo.iter().any(|(h, p)| *h == host && *p == port)
    }

    fn trusts_absence(&self, source: &str) -> Result<(), String> {
        if self.down.contains(&source) {
            Err(format!("source `{source}` is down"))
        } else {
            Ok(())
        }
    }

    fn sees(&self, target: &str) -> bool {
        !self.down.contains(&target)
    }
}

fn spec() -> SyncSpec {
    SyncSpec::from_json(json!({"id": "j", "to": "nacos", "from": ["etcd", "consul"]})).unwrap()
}

fn instance(host: &str, port: u16) -> Arc<Instance> {
    Arc::new(Instance::new("i", ServiceKey::named("pay"), host, port))
}

fn slice(source: &str, priority: i32, instances: Vec<Arc<Instance>>) -> SourceSlice {
    SourceSlice {
        source: Arc::from(source),
        priority,
        stale: false,
        held: false,
        instances: instances
            .into_iter()
            .map(|i| (ServiceKey::named("pay"), i))
            .collect(),
    }
}

fn report(sources: Vec<SourceSlice>, target: Vec<Arc<Instance>>) -> ServiceReports {
    ServiceReports {
        key: ServiceKey::named("pay"),
        sources,
        raw_of_target: target,
        served: Vec::new(),
    }
}

/// What the job plans with an empty ledger in a world with no echoes and no outages.
fn first_plan(reports: &[ServiceReports]) -> Plan {
    plan(
        &spec(),
        reports,
        &Ledger::new(),
        &Fake::default(),
        Utc::now(),
    )
}

fn ledger_of(plan: &Plan) -> Ledger {
    plan.writes
        .iter()
        .map(|write| {
            let entry = LedgerEntry {
                target: "nacos".into(),
                written: write.instance.clone(),
                origin: write.origin.clone(),
                hash: write.hash,
                written_at: Utc::now(),
            };
            (Spot::of(&write.instance), entry)
        })
        .collect()
}

#[test]
fn new_instances_are_written_once_with_origin_metadata() {
    let reports = [report(
        vec![slice("etcd", 0, vec![instance("10.0.0.1", 80)])],
        vec![],
    )];
    let first = first_plan(&reports);
    assert_eq!(first.writes.len(), 1);
    let written = &first.writes[0].instance;
    assert_eq!(written.metadata[ORIGIN_KEY], "etcd");
    assert_eq!(written.metadata[SYNC_KEY], "j");
    assert!(written.id.starts_with("pay-10.0.0.1-80-"), "{}", written.id);
    assert_eq!(first.writes[0].reason, WriteReason::New);
    let again = plan(
        &spec(),
        &reports,
        &ledger_of(&first),
        &Fake::default(),
        Utc::now(),
    );
    assert!(again.is_empty(), "nothing changed, nothing written");
}

#[test]
fn a_changed_instance_is_written_again() {
    let reports = [report(
        vec![slice("etcd", 0, vec![instance("10.0.0.1", 80)])],
        vec![],
    )];
    let first = first_plan(&reports);
    let mut changed = (*instance("10.0.0.1", 80)).clone();
    changed.weight = 7;
    let reports = [report(
        vec![slice("etcd", 0, vec![Arc::new(changed)])],
        vec![],
    )];
    let next = plan(
        &spec(),
        &reports,
        &ledger_of(&first),
        &Fake::default(),
        Utc::now(),
    );
    assert_eq!(next.writes.len(), 1);
    assert_eq!(next.writes[0].reason, WriteReason::Changed);
}

#[test]
fn the_highest_priority_source_wins_an_endpoint() {
    let reports = [report(
        vec![
            slice("etcd", 1, vec![instance("10.0.0.1", 80)]),
            slice("consul", 5, vec![instance("10.0.0.1", 80)]),
        ],
        vec![],
    )];
    let planned = first_plan(&reports);
    assert_eq!(planned.writes.len(), 1);
    assert_eq!(planned.writes[0].origin, "consul");
}

#[test]
fn echoes_and_sources_outside_from_are_not_copied() {
    let mut tagged = (*instance("10.0.0.3", 80)).clone();
    tagged.metadata.insert(SYNC_KEY.into(), "other".into());
    let reports = [report(
        vec![
            slice("etcd", 0, vec![instance("10.0.0.1", 80), Arc::new(tagged)]),
            slice("nacos", 0, vec![instance("10.0.0.2", 80)]),
            slice("zk", 0, vec![instance("10.0.0.4", 80)]),
        ],
        vec![],
    )];
    let world = Fake {
        echo: vec![("10.0.0.1", 80)],
        ..Fake::default()
    };
    let planned = plan(&spec(), &reports, &Ledger::new(), &world, Utc::now());
    assert!(planned.writes.is_empty(), "{:?}", planned.writes);
    assert_eq!(planned.echoes, 2);
}

#[test]
fn foreign_instances_in_the_target_are_left_alone_and_own_ones_adopted() {
    let mut own = (*instance("10.0.0.2", 80)).clone();
    own.metadata.insert(SYNC_KEY.into(), "j".into());
    let reports = [report(
        vec![slice(
            "etcd",
            0,
            vec![instance("10.0.0.1", 80), instance("10.0.0.2", 80)],
        )],
        vec![instance("10.0.0.1", 80), Arc::new(own)],
    )];
    let planned = first_plan(&reports);
    assert!(planned.writes.is_empty());
    assert_eq!(planned.foreign, 1);
    assert_eq!(planned.adopted.len(), 1);
}

#[test]
fn deletes_cover_only_the_ledger_and_wait_for_a_trusted_origin() {
    let reports = [report(
        vec![slice("etcd", 0, vec![instance("10.0.0.1", 80)])],
        vec![],
    )];
    let first = first_plan(&reports);
    let ledger = ledger_of(&first);
    let gone = [report(vec![], vec![instance("10.0.0.9", 80)])];
    let planned = plan(&spec(), &gone, &ledger, &Fake::default(), Utc::now());
    assert_eq!(planned.deletes.len(), 1, "only what the job wrote");
    assert_eq!(planned.deletes[0].instance.host, "10.0.0.1");

    let down = Fake {
        down: vec!["etcd"],
        ..Fake::default()
    };
    let held = plan(&spec(), &gone, &ledger, &down, Utc::now());
    assert!(held.deletes.is_empty());
    assert_eq!(held.held_deletes.len(), 1);
    assert!(held.held_deletes[0].held.as_ref().unwrap().contains("down"));

    let mut stale = slice("etcd", 0, vec![]);
    stale.stale = true;
    let stale_report = [report(vec![stale], vec![])];
    let held = plan(
        &spec(),
        &stale_report,
        &ledger,
        &Fake::default(),
        Utc::now(),
    );
    assert!(held.deletes.is_empty() && held.held_deletes.len() == 1);

    let mut keep = spec();
    keep.delete = false;
    let kept = plan(&keep, &gone, &ledger, &Fake::default(), Utc::now());
    assert!(kept.deletes.is_empty() && kept.held_deletes.is_empty());
}

#[test]
fn services_outside_the_globs_are_not_copied_and_earlier_copies_go() {
    let mut narrow = spec();
    narrow.services = vec!["orders-*".into()];
    let reports = [report(
        vec![slice("etcd", 0, vec![instance("10.0.0.1", 80)])],
        vec![],
    )];
    let first = first_plan(&reports);
    let planned = plan(
        &narrow,
        &reports,
        &ledger_of(&first),
        &Fake::default(),
        Utc::now(),
    );
    assert!(planned.writes.is_empty());
    assert_eq!(planned.deletes.len(), 1);
}

#[test]
fn a_copy_the_target_lost_is_written_again_after_a_grace() {
    let both = vec![instance("10.0.0.1", 80), instance("10.0.0.2", 80)];
    let written = [report(vec![slice("etcd", 0, both.clone())], vec![])];
    let first = first_plan(&written);
    let ledger = ledger_of(&first);
    // The target lists the service, but only the second copy.
    let there = written_copy(&both[1], &ServiceKey::named("pay"), "etcd", "j");
    let reports = [report(vec![slice("etcd", 0, both)], vec![Arc::new(there)])];
    let soon = plan(&spec(), &reports, &ledger, &Fake::default(), Utc::now());
    assert!(soon.writes.is_empty(), "the target may not show it yet");
    let later = Utc::now() + chrono::TimeDelta::seconds(60);
    let again = plan(&spec(), &reports, &ledger, &Fake::default(), later);
    assert_eq!(again.writes.len(), 1);
    assert_eq!(again.writes[0].instance.host, "10.0.0.1");
    assert_eq!(again.writes[0].reason, WriteReason::Missing);
    let down = Fake {
        down: vec!["nacos"],
        ..Fake::default()
    };
    let unsure = plan(&spec(), &reports, &ledger, &down, later);
    assert!(unsure.writes.is_empty(), "a down target proves nothing");
    let undiscovered = plan(&spec(), &written, &ledger, &Fake::default(), later);
    assert!(
        undiscovered.writes.is_empty(),
        "a service the target does not list yet proves nothing"
    );
}

#[test]
fn an_endpoint_someone_else_took_over_is_released() {
    let reports = [report(
        vec![slice("etcd", 0, vec![instance("10.0.0.1", 80)])],
        vec![],
    )];
    let first = first_plan(&reports);
    let ledger = ledger_of(&first);
    let mut changed = (*instance("10.0.0.1", 80)).clone();
    changed.weight = 3;
    let taken = instance("10.0.0.1", 80);
    let reports = [report(
        vec![slice("etcd", 0, vec![Arc::new(changed)])],
        vec![taken.clone()],
    )];
    let planned = plan(&spec(), &reports, &ledger, &Fake::default(), Utc::now());
    assert!(planned.writes.is_empty(), "never written over");
    assert_eq!(planned.released.len(), 1);
    let gone = [report(vec![], vec![taken])];
    let planned = plan(&spec(), &gone, &ledger, &Fake::default(), Utc::now());
    assert!(planned.deletes.is_empty(), "never deleted");
    assert_eq!(planned.released.len(), 1);
}

#[test]
fn everything_copies_only_what_clients_are_served() {
    let all = SyncSpec::from_json(json!({"id": "j", "to": "nacos"})).unwrap();
    let mut served = report(
        vec![
            slice("etcd", 5, vec![instance("10.0.0.1", 80)]),
            slice("consul", 1, vec![instance("10.0.0.2", 80)]),
        ],
        vec![],
    );
    // A failover rule serves only etcd's instance.
    served.served = vec![("10.0.0.1".to_owned(), 80)];
    let planned = plan(
        &all,
        &[served],
        &Ledger::new(),
        &Fake::default(),
        Utc::now(),
    );
    assert_eq!(planned.writes.len(), 1);
    assert_eq!(planned.writes[0].instance.host, "10.0.0.1");
}

#[test]
fn copies_of_the_same_name_in_other_namespaces_get_other_ids() {
    let a = written_copy(
        &instance("10.0.0.1", 80),
        &ServiceKey::new("a", "G", "pay"),
        "e",
        "j",
    );
    let b = written_copy(
        &instance("10.0.0.1", 80),
        &ServiceKey::new("b", "G", "pay"),
        "e",
        "j",
    );
    assert_ne!(a.id, b.id);
}
