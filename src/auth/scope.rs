//! The namespaces a token reaches: names or globs (`*`, `?`). Tenants are namespaces.

use serde::{Deserialize, Serialize};

use crate::catalog::glob;

/// A token's namespaces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scope(Vec<String>);

impl Scope {
    /// Every namespace.
    pub fn everything() -> Scope {
        Scope(vec!["*".to_owned()])
    }

    /// Checks `patterns`: at least one, each a namespace name or glob. The error names
    /// the entry at fault (`namespaces[1]`).
    pub fn new(patterns: Vec<String>) -> Result<Scope, (String, String)> {
        if patterns.is_empty() {
            return Err((
                "namespaces".into(),
                "needs at least one namespace or glob (`*` for every namespace)".into(),
            ));
        }
        for (i, pattern) in patterns.iter().enumerate() {
            if !switchboard_connectors::is_glob(pattern) || pattern.len() > 253 {
                return Err((
                    format!("namespaces[{i}]"),
                    format!("`{pattern}` is not a namespace or glob ([A-Za-z0-9._-] with * and ?)"),
                ));
            }
        }
        Ok(Scope(patterns))
    }

    pub fn patterns(&self) -> &[String] {
        &self.0
    }

    /// Whether the token reaches `namespace`.
    pub fn allows(&self, namespace: &str) -> bool {
        glob::any_matches(&self.0, namespace)
    }

    /// Whether the token reaches every namespace (server-wide resources need this).
    pub fn is_everything(&self) -> bool {
        self.0.iter().any(|p| p.bytes().all(|b| b == b'*'))
    }

    /// Whether every namespace `other` reaches is one this scope reaches: each of its
    /// patterns is covered by one of ours ([`glob::covers`]).
    pub fn covers(&self, other: &Scope) -> bool {
        other
            .0
            .iter()
            .all(|theirs| self.0.iter().any(|ours| glob::covers(ours, theirs)))
    }
}

#[cfg(test)]
mod tests {
    use super::Scope;

    fn scope(patterns: &[&str]) -> Scope {
        Scope::new(patterns.iter().map(|p| p.to_string()).collect()).unwrap()
    }

    #[test]
    fn a_scope_allows_its_names_and_globs() {
        let s = scope(&["prod", "team-*"]);
        assert!(s.allows("prod"));
        assert!(s.allows("team-a"));
        assert!(!s.allows("production"));
        assert!(!s.allows("default"));
        assert!(!s.is_everything());
        assert!(Scope::everything().is_everything());
        assert!(Scope::everything().allows("anything"));
    }

    #[test]
    fn a_scope_covers_narrower_scopes_only() {
        let wide = scope(&["team-*"]);
        assert!(wide.covers(&scope(&["team-a"])));
        assert!(wide.covers(&scope(&["team-a-*", "team-?"])));
        assert!(!wide.covers(&scope(&["*"])));
        assert!(!wide.covers(&scope(&["team-a", "prod"])));
        assert!(!scope(&["team-a"]).covers(&scope(&["team-?"])));
        assert!(Scope::everything().covers(&wide));
        assert!(scope(&["team-?"]).covers(&scope(&["team-?"])));
        assert!(scope(&["*"]).covers(&scope(&["?", "**"])));
    }

    #[test]
    fn a_question_mark_never_covers_a_star() {
        for (ours, theirs) in [
            ("team-?", "team-*"),
            ("prod?", "prod*"),
            ("?", "*"),
            ("??", "**"),
            ("?*", "*"),
            ("a?c", "a*c"),
        ] {
            assert!(
                !scope(&[ours]).covers(&scope(&[theirs])),
                "{ours} covers {theirs}"
            );
        }
    }

    #[test]
    fn bad_patterns_are_named() {
        assert_eq!(Scope::new(vec![]).unwrap_err().0, "namespaces");
        let (field, _) = Scope::new(vec!["ok".into(), "a b".into()]).unwrap_err();
        assert_eq!(field, "namespaces[1]");
    }
}
