//! `explain`: for one service, what every source reports, the policy applied, and for
//! each reported instance whether clients get it and, if not, why.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use switchboard_connectors::{Instance, ServiceKey, Status};
use utoipa::ToSchema;

use super::merge::{self, Reported};
use super::names::Mapped;
use super::partition::Partition;
use super::rules::{MergeRules, Policy};

/// `GET /api/v1/services/{name}/explain`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Explanation {
    pub service: String,
    pub namespace: String,
    pub group: String,
    pub policy: Policy,
    /// The `[[merge]]` glob that chose the policy; null when it is the default.
    pub rule: Option<String>,
    /// Instances clients get.
    pub served: usize,
    pub sources: Vec<SourceReport>,
    /// Every instance any source reports for the service, by source then id.
    pub instances: Vec<InstanceVerdict>,
}

/// What one source reports for the service.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceReport {
    pub id: String,
    /// The source's state (`ready`, `down`, ...), as its status shows it.
    pub state: String,
    pub priority: i32,
    /// Instances it reports for the service (under this name).
    pub reported: usize,
    pub healthy: usize,
    pub stale: bool,
    pub stale_since: Option<DateTime<Utc>>,
    /// True when clients get at least one of its instances.
    pub selected: bool,
}

/// Why an instance is not served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The source's `include`/`exclude` leave the service out.
    Excluded,
    /// The source serves the service under another name.
    Renamed,
    /// `failover` serves a source of higher priority.
    LowerPriority,
    /// `failover` passed over this source although it comes first: none of its instances
    /// is healthy and active, or its view is stale.
    Unavailable,
    /// A preferred report of the same endpoint is served instead.
    Merged,
    /// The source has been down longer than its `max_stale`.
    StaleDropped,
}

/// The report a merged instance was folded into.
#[derive(Debug, Serialize, ToSchema)]
pub struct MergedInto {
    pub source: String,
    pub id: String,
}

/// One source's instance and whether clients get it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceVerdict {
    pub source: String,
    pub id: String,
    pub address: String,
    pub healthy: bool,
    pub status: Status,
    pub served: bool,
    /// Null when served.
    pub reason: Option<Reason>,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<MergedInto>,
}

impl InstanceVerdict {
    fn new(source: &str, instance: &Instance, reason: Option<Reason>, detail: String) -> Self {
        InstanceVerdict {
            source: source.to_owned(),
            id: instance.id.clone(),
            address: instance.address(),
            healthy: instance.healthy,
            status: instance.status,
            served: reason.is_none(),
            reason,
            detail,
            merged_into: None,
        }
    }
}

/// Explains `key` over the partitions, naming each source's state with `state_of`;
/// `None` when no source reports it.
pub(super) fn explain(
    partitions: &std::collections::HashMap<Arc<str>, Partition>,
    rules: &MergeRules,
    key: &ServiceKey,
    state_of: &dyn Fn(&str) -> String,
) -> Option<Explanation> {
    let (policy, rule) = rules.policy_for(&key.name);
    let mut reports: Vec<Reported<'_>> = Vec::new();
    let mut verdicts: Vec<InstanceVerdict> = Vec::new();
    let mut sources: BTreeMap<&str, SourceReport> = BTreeMap::new();
    for (source, partition) in partitions {
        let meta = &partition.meta;
        let report = || SourceReport {
            id: source.to_string(),
            state: state_of(source),
            priority: meta.priority,
            reported: 0,
            healthy: 0,
            stale: meta.stale_since.is_some(),
            stale_since: meta.stale_since,
            selected: false,
        };
        for (_, instances) in partition.served_as(key) {
            for by_id in instances {
                let instance = &by_id.0;
                let counts = sources.entry(source).or_insert_with(report);
                counts.reported += 1;
                counts.healthy += usize::from(instance.healthy);
                if meta.expired {
                    verdicts.push(InstanceVerdict::new(
                        source,
                        instance,
                        Some(Reason::StaleDropped),
                        format!("source `{source}` has been down longer than its max_stale"),
                    ));
                } else {
                    reports.push(Reported {
                        source,
                        meta,
                        instance,
                    });
                }
            }
        }
        // The source's own service of this name, when it is left out or served elsewhere.
        let Some(instances) = partition.services.get(key) else {
            continue;
        };
        let (reason, detail) = match meta.names.map(key) {
            Mapped::Served(served) if served == *key => continue,
            Mapped::Served(served) => (
                Reason::Renamed,
                format!("source `{source}` serves it as `{}`", served.name),
            ),
            Mapped::Excluded => (
                Reason::Excluded,
                format!(
                    "source `{source}`'s include/exclude leave `{}` out",
                    key.name
                ),
            ),
        };
        for by_id in instances {
            verdicts.push(InstanceVerdict::new(
                source,
                &by_id.0,
                Some(reason),
                detail.clone(),
            ));
        }
    }
    if verdicts.is_empty() && reports.is_empty() {
        return None;
    }
    let plan = merge::plan(policy, reports);
    let mut served = 0;
    for endpoint in &plan.endpoints {
        let winner = &endpoint[0];
        served += 1;
        if let Some(counts) = sources.get_mut(&**winner.source) {
            counts.selected = true;
        }
        let detail = match plan.selected {
            Some(_) => format!("failover serves source `{}`", winner.source),
            None => "served".to_owned(),
        };
        verdicts.push(InstanceVerdict::new(
            winner.source,
            winner.instance,
            None,
            detail,
        ));
        for merged in &endpoint[1..] {
            let mut verdict = InstanceVerdict::new(
                merged.source,
                merged.instance,
                Some(Reason::Merged),
                format!(
                    "same endpoint as `{}` from source `{}`, which is preferred",
                    winner.instance.id, winner.source
                ),
            );
            verdict.merged_into = Some(MergedInto {
                source: winner.source.to_string(),
                id: winner.instance.id.clone(),
            });
            verdicts.push(verdict);
        }
    }
    let selected = plan.selected.map(|s| s.to_string()).unwrap_or_default();
    let selected_rank = plan
        .endpoints
        .first()
        .map(|endpoint| merge::failover_rank(&endpoint[0]));
    for passed in &plan.passed_over {
        let passed_first = selected_rank.is_some_and(|s| merge::failover_rank(passed) < s);
        let (reason, detail) = if passed_first {
            (
                Reason::Unavailable,
                format!(
                    "source `{}` has no healthy, active instance with a fresh view; failover serves source `{selected}`",
                    passed.source
                ),
            )
        } else {
            (
                Reason::LowerPriority,
                format!("failover serves source `{selected}`, which comes first"),
            )
        };
        verdicts.push(InstanceVerdict::new(
            passed.source,
            passed.instance,
            Some(reason),
            detail,
        ));
    }
    verdicts.sort_by(|a, b| (&a.source, &a.id).cmp(&(&b.source, &b.id)));
    Some(Explanation {
        service: key.name.clone(),
        namespace: key.namespace.clone(),
        group: key.group.clone(),
        policy,
        rule: rule.map(str::to_owned),
        served,
        sources: sources.into_values().collect(),
        instances: verdicts,
    })
}
