//! Merge policies: which rule decides how a service's sources are combined.
//!
//! Rules come from `[[merge]]` in the config file, then from `PUT /api/v1/merge`; the
//! first whose glob matches a service's name decides, and `union` applies when none does.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::glob;

/// How the instances several sources report for one service are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Every endpoint of every source, one instance per `(host, port)`, fields from the
    /// highest-priority source reporting it.
    #[default]
    Union,
    /// Only the highest-priority source that has a healthy, active, fresh instance.
    Failover,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Union => "union",
            Policy::Failover => "failover",
        }
    }
}

/// One `[[merge]]` rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRule {
    /// Service-name globs (`*`, `?`): one string or a list.
    #[serde(deserialize_with = "switchboard_connectors::one_or_many")]
    #[schema(schema_with = crate::vocab::schemas::globs)]
    pub services: Vec<String>,
    pub policy: Policy,
}

impl MergeRule {
    /// Checks the globs; the error names the field below the rule.
    pub fn validate(&self) -> Result<(), (String, String)> {
        glob::check_globs(&self.services)
    }

    /// The first of this rule's globs matching `name`.
    fn matching(&self, name: &str) -> Option<&str> {
        self.services
            .iter()
            .find(|glob| glob::matches(glob, name))
            .map(String::as_str)
    }
}

/// Every rule in the order they are tried.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeRules(pub Vec<MergeRule>);

impl MergeRules {
    /// The policy for service `name`, and the glob that chose it (`None`: the default).
    pub fn policy_for(&self, name: &str) -> (Policy, Option<&str>) {
        self.0
            .iter()
            .find_map(|rule| rule.matching(name).map(|glob| (rule.policy, Some(glob))))
            .unwrap_or((Policy::Union, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_rule_decides_and_union_is_the_default() {
        let rules: Vec<MergeRule> = serde_json::from_str(
            r#"[{"services": "pay-*", "policy": "failover"},
                {"services": ["pay-legacy", "orders"], "policy": "union"}]"#,
        )
        .unwrap();
        let rules = MergeRules(rules);
        assert_eq!(
            rules.policy_for("pay-api"),
            (Policy::Failover, Some("pay-*"))
        );
        assert_eq!(rules.policy_for("pay-legacy").0, Policy::Failover);
        assert_eq!(rules.policy_for("orders"), (Policy::Union, Some("orders")));
        assert_eq!(rules.policy_for("users"), (Policy::Union, None));
    }

    #[test]
    fn bad_rules_name_the_field() {
        let bad: Result<MergeRule, _> =
            serde_json::from_str(r#"{"services": "a", "policy": "random"}"#);
        assert!(bad.unwrap_err().to_string().contains("random"));
        let rule = MergeRule {
            services: vec!["ok".into(), "no/slash".into()],
            policy: Policy::Union,
        };
        assert_eq!(rule.validate().unwrap_err().0, "services[1]");
    }
}
