//! Merging the instances several sources report for one service.
//!
//! [`plan`] decides, for a policy, which reports are served: under `union` every
//! endpoint `(host, port)` once, its fields from the highest-priority source; under
//! `failover` only the first source (by priority) with a healthy, active, fresh instance.
//! Serving and `explain` both read the same plan, so what explain says is what clients get.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use switchboard_connectors::{Instance, Status};

use super::rules::Policy;
use super::snapshot::InstanceView;
use super::SourceMeta;

/// One source's report of an instance, as input to the merge.
#[derive(Clone, Copy)]
pub struct Reported<'a> {
    pub source: &'a Arc<str>,
    pub meta: &'a SourceMeta,
    pub instance: &'a Arc<Instance>,
}

/// What a policy decided for one service.
pub struct Plan<'a> {
    /// Under `failover`, the source served; `None` under `union`.
    pub selected: Option<&'a Arc<str>>,
    /// Served endpoints, sorted by `(host, port)`; each list best report first (the first
    /// is served, the rest are merged into it).
    pub endpoints: Vec<Vec<Reported<'a>>>,
    /// Reports of sources `failover` passed over.
    pub passed_over: Vec<Reported<'a>>,
}

/// Merges every report of one service into the list clients see, sorted by endpoint.
pub fn merge(policy: Policy, reports: Vec<Reported<'_>>) -> Vec<InstanceView> {
    plan(policy, reports)
        .endpoints
        .iter()
        .map(|reports| merge_endpoint(reports))
        .collect()
}

/// Decides which reports are served under `policy`.
pub fn plan(policy: Policy, reports: Vec<Reported<'_>>) -> Plan<'_> {
    match policy {
        Policy::Union => Plan {
            selected: None,
            endpoints: by_endpoint(reports),
            passed_over: Vec::new(),
        },
        Policy::Failover => {
            let selected = failover_choice(&reports);
            let (served, passed_over) = reports
                .into_iter()
                .partition(|r| Some(r.source) == selected);
            Plan {
                selected,
                endpoints: by_endpoint(served),
                passed_over,
            }
        }
    }
}

/// The source `failover` serves: the highest-priority one (then the lowest id) with a
/// healthy, active instance and a fresh view; failing that, the highest-priority one
/// with any instance, since a stale or unhealthy answer beats none.
fn failover_choice<'a>(reports: &[Reported<'a>]) -> Option<&'a Arc<str>> {
    let rank = |r: &&Reported<'a>| failover_rank(r);
    let usable = |r: &&Reported<'a>| {
        r.meta.stale_since.is_none() && r.instance.healthy && r.instance.status == Status::Active
    };
    reports
        .iter()
        .filter(usable)
        .min_by_key(rank)
        .or_else(|| reports.iter().min_by_key(rank))
        .map(|r| r.source)
}

/// The order `failover` tries sources in: higher priority first, then the lower id.
pub fn failover_rank<'a>(report: &Reported<'a>) -> (std::cmp::Reverse<i32>, &'a Arc<str>) {
    (std::cmp::Reverse(report.meta.priority), report.source)
}

fn by_endpoint(reports: Vec<Reported<'_>>) -> Vec<Vec<Reported<'_>>> {
    let mut by_endpoint: BTreeMap<(&str, u16), Vec<Reported<'_>>> = BTreeMap::new();
    for report in reports {
        by_endpoint
            .entry((report.instance.host.as_str(), report.instance.port))
            .or_default()
            .push(report);
    }
    by_endpoint
        .into_values()
        .map(|mut reports| {
            reports.sort_by(preference);
            reports
        })
        .collect()
}

/// Orders reports best first: higher source priority, then a fresh source, then (inside
/// one source reporting an endpoint twice) the healthier, newer registration.
fn preference(a: &Reported<'_>, b: &Reported<'_>) -> Ordering {
    b.meta
        .priority
        .cmp(&a.meta.priority)
        .then_with(|| {
            a.meta
                .stale_since
                .is_some()
                .cmp(&b.meta.stale_since.is_some())
        })
        .then_with(|| b.instance.healthy.cmp(&a.instance.healthy))
        .then_with(|| {
            (a.instance.status != Status::Active).cmp(&(b.instance.status != Status::Active))
        })
        .then_with(|| b.instance.register_time.cmp(&a.instance.register_time))
        .then_with(|| a.source.cmp(b.source))
        .then_with(|| a.instance.id.cmp(&b.instance.id))
}

/// Under `union`, the instance served at one endpoint, from every report of that
/// endpoint (`None` when no source reports it).
pub fn merge_one(mut reports: Vec<Reported<'_>>) -> Option<InstanceView> {
    if reports.is_empty() {
        return None;
    }
    reports.sort_by(preference);
    Some(merge_endpoint(&reports))
}

fn merge_endpoint(reports: &[Reported<'_>]) -> InstanceView {
    let winner = &reports[0];
    let mut sources: Vec<Arc<str>> = Vec::with_capacity(reports.len());
    for report in reports {
        if !sources.iter().any(|s| s == report.source) {
            sources.push(report.source.clone());
        }
    }
    // An endpoint is stale only when no fresh source vouches for it.
    let stale = reports.iter().all(|r| r.meta.stale_since.is_some());
    let stale_since = if stale {
        reports.iter().filter_map(|r| r.meta.stale_since).min()
    } else {
        None
    };
    InstanceView {
        // Shared with the partition: a view costs a pointer, not a copy.
        instance: winner.instance.clone(),
        sources,
        stale,
        stale_since,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use switchboard_connectors::ServiceKey;

    use super::*;

    fn instance(id: &str, host: &str, port: u16) -> Instance {
        Instance::new(id, ServiceKey::named("svc"), host, port)
    }

    fn names(view: &InstanceView) -> Vec<&str> {
        view.sources.iter().map(|s| &**s).collect()
    }

    #[test]
    fn same_endpoint_from_two_sources_is_one_instance() {
        let low = SourceMeta {
            priority: 1,
            stale_since: None,
            ..SourceMeta::default()
        };
        let high = SourceMeta {
            priority: 9,
            stale_since: None,
            ..SourceMeta::default()
        };
        let mut a = instance("a-id", "10.0.0.1", 80);
        a.weight = 5;
        let mut b = instance("b-id", "10.0.0.1", 80);
        b.weight = 50;
        let c = instance("c-id", "10.0.0.2", 80);
        let merged = merge(
            Policy::Union,
            vec![
                Reported {
                    source: &Arc::from("low"),
                    meta: &low,
                    instance: &Arc::new(a.clone()),
                },
                Reported {
                    source: &Arc::from("high"),
                    meta: &high,
                    instance: &Arc::new(b.clone()),
                },
                Reported {
                    source: &Arc::from("low"),
                    meta: &low,
                    instance: &Arc::new(c.clone()),
                },
            ],
        );
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].id, "b-id");
        assert_eq!(merged[0].weight, 50);
        assert_eq!(names(&merged[0]), vec!["high", "low"]);
        assert_eq!(names(&merged[1]), vec!["low"]);
    }

    #[test]
    fn stale_only_when_every_reporting_source_is_stale() {
        let since = Utc::now();
        let stale = SourceMeta {
            priority: 5,
            stale_since: Some(since),
            ..SourceMeta::default()
        };
        let fresh = SourceMeta {
            priority: 1,
            stale_since: None,
            ..SourceMeta::default()
        };
        let a = instance("a", "10.0.0.1", 80);
        let b = instance("b", "10.0.0.1", 80);
        let c = instance("c", "10.0.0.3", 80);
        let merged = merge(
            Policy::Union,
            vec![
                Reported {
                    source: &Arc::from("down"),
                    meta: &stale,
                    instance: &Arc::new(a.clone()),
                },
                Reported {
                    source: &Arc::from("up"),
                    meta: &fresh,
                    instance: &Arc::new(b.clone()),
                },
                Reported {
                    source: &Arc::from("down"),
                    meta: &stale,
                    instance: &Arc::new(c.clone()),
                },
            ],
        );
        assert!(!merged[0].stale);
        assert!(merged[1].stale);
        assert_eq!(merged[1].stale_since, Some(since));
    }

    #[test]
    fn within_one_source_the_active_registration_wins() {
        let meta = SourceMeta::default();
        let mut old = instance("old", "10.0.0.1", 80);
        old.status = Status::Offline;
        old.healthy = false;
        let new = instance("new", "10.0.0.1", 80);
        let merged = merge(
            Policy::Union,
            vec![
                Reported {
                    source: &Arc::from("native"),
                    meta: &meta,
                    instance: &Arc::new(old.clone()),
                },
                Reported {
                    source: &Arc::from("native"),
                    meta: &meta,
                    instance: &Arc::new(new.clone()),
                },
            ],
        );
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].id, "new");
        assert_eq!(names(&merged[0]), vec!["native"]);
    }

    fn meta(priority: i32, stale: bool) -> SourceMeta {
        SourceMeta {
            priority,
            stale_since: stale.then(Utc::now),
            ..SourceMeta::default()
        }
    }

    fn failover_sources(reports: &[(&str, &SourceMeta, Instance)]) -> Vec<String> {
        let names: Vec<Arc<str>> = reports.iter().map(|(s, _, _)| Arc::from(*s)).collect();
        let instances: Vec<Arc<Instance>> = reports
            .iter()
            .map(|(_, _, i)| Arc::new(i.clone()))
            .collect();
        let reported = reports
            .iter()
            .enumerate()
            .map(|(n, (_, meta, _))| Reported {
                source: &names[n],
                meta,
                instance: &instances[n],
            })
            .collect();
        let mut served: Vec<String> = merge(Policy::Failover, reported)
            .iter()
            .map(|view| format!("{}:{}", view.sources[0], view.id))
            .collect();
        served.sort();
        served
    }

    #[test]
    fn failover_serves_the_first_source_with_a_healthy_fresh_instance() {
        let (high, low) = (meta(10, false), meta(5, false));
        let mut sick = instance("h1", "10.0.0.1", 80);
        sick.healthy = false;
        let reports = [
            ("high", &high, instance("h1", "10.0.0.1", 80)),
            ("low", &low, instance("l1", "10.0.0.2", 80)),
        ];
        assert_eq!(failover_sources(&reports), vec!["high:h1"]);

        let reports = [
            ("high", &high, sick.clone()),
            ("low", &low, instance("l1", "10.0.0.2", 80)),
        ];
        assert_eq!(failover_sources(&reports), vec!["low:l1"], "all unhealthy");

        let stale_high = meta(10, true);
        let reports = [
            ("high", &stale_high, instance("h1", "10.0.0.1", 80)),
            ("low", &low, instance("l1", "10.0.0.2", 80)),
        ];
        assert_eq!(failover_sources(&reports), vec!["low:l1"], "stale");

        let stale_low = meta(5, true);
        let reports = [
            ("high", &stale_high, sick),
            ("low", &stale_low, instance("l1", "10.0.0.2", 80)),
        ];
        assert_eq!(
            failover_sources(&reports),
            vec!["high:h1"],
            "none usable: the highest priority is served rather than nothing"
        );
    }
}
