//! How a source's own service names become the names clients see: include/exclude globs
//! first (on the source's name), then an exact rename, else a prefix. This is what lets
//! `orders` in Consul and `orders-svc` in Nacos be one service.

use std::borrow::Cow;
use std::collections::BTreeMap;

use switchboard_connectors::ServiceKey;

use super::glob;

/// A source's name mapping. The default maps every name to itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameMap {
    /// Globs a name must match to be served; empty means every name.
    pub include: Vec<String>,
    /// Globs whose names are never served; they win over `include`.
    pub exclude: Vec<String>,
    /// Exact source name -> served name; a renamed service gets no prefix.
    pub rename: BTreeMap<String, String>,
    /// Put in front of every served name that is not renamed.
    pub prefix: Option<String>,
}

/// What a source's service becomes in the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mapped {
    /// Served under this key (the source's own key when nothing applies).
    Served(ServiceKey),
    /// Left out by the source's `include`/`exclude`.
    Excluded,
}

impl NameMap {
    /// Whether `name` passes the include and exclude globs.
    pub fn admits(&self, name: &str) -> bool {
        (self.include.is_empty() || glob::any_matches(&self.include, name))
            && !glob::any_matches(&self.exclude, name)
    }

    /// The served name of a name the source reports, if it is served. Borrowed unless a
    /// prefix builds a new one, so mapping every instance of an unmapped source costs no
    /// allocation.
    pub fn served_name<'a>(&'a self, name: &'a str) -> Option<Cow<'a, str>> {
        if !self.admits(name) {
            return None;
        }
        Some(match (self.rename.get(name), &self.prefix) {
            (Some(renamed), _) => Cow::Borrowed(renamed.as_str()),
            (None, Some(prefix)) => Cow::Owned(format!("{prefix}{name}")),
            (None, None) => Cow::Borrowed(name),
        })
    }

    /// Where a service of the source is served.
    pub fn map(&self, key: &ServiceKey) -> Mapped {
        match self.served_name(&key.name) {
            Some(name) if name == key.name => Mapped::Served(key.clone()),
            Some(name) => Mapped::Served(ServiceKey {
                name: name.into_owned(),
                ..key.clone()
            }),
            None => Mapped::Excluded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(map: &NameMap, name: &str) -> Option<String> {
        match map.map(&ServiceKey::named(name)) {
            Mapped::Served(key) => Some(key.name),
            Mapped::Excluded => None,
        }
    }

    #[test]
    fn the_default_maps_every_name_to_itself() {
        assert_eq!(
            mapped(&NameMap::default(), "orders").as_deref(),
            Some("orders")
        );
    }

    #[test]
    fn filters_then_rename_else_prefix() {
        let map = NameMap {
            include: vec!["ord*".into(), "pay*".into()],
            exclude: vec!["*-internal".into()],
            rename: BTreeMap::from([("orders".to_owned(), "orders-svc".to_owned())]),
            prefix: Some("consul-".into()),
        };
        assert_eq!(mapped(&map, "orders").as_deref(), Some("orders-svc"));
        assert_eq!(mapped(&map, "payments").as_deref(), Some("consul-payments"));
        assert_eq!(mapped(&map, "orders-internal"), None, "exclude wins");
        assert_eq!(mapped(&map, "users"), None, "not included");
    }
}
