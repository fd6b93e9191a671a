//! Query-string parsing for discovery reads: placement, filters and blocking parameters.

use std::time::Duration;

use switchboard_connectors::{Status, DEFAULT_GROUP, DEFAULT_NAMESPACE};

use super::error::ApiError;
use crate::catalog::InstanceView;
use crate::duration;
use crate::vocab::{parse_status, validate_name};

/// `GET /api/v1/services/{name}/instances` parameters. Unknown parameters are ignored
/// (clients add cache busters), malformed known ones are 400s.
#[derive(Debug, Default)]
pub struct InstanceQuery {
    pub namespace: Option<String>,
    pub group: Option<String>,
    pub filter: Filter,
    /// Blocking query: answer once the service's index is greater than this.
    pub index: Option<u64>,
    pub wait: Option<Duration>,
}

/// Instance filters; every given one must match.
#[derive(Debug, Default)]
pub struct Filter {
    pub status: Option<Status>,
    pub healthy: Option<bool>,
    pub protocol: Option<String>,
    pub tags: Vec<String>,
    pub source: Option<String>,
    pub meta: Vec<(String, String)>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.healthy.is_none()
            && self.protocol.is_none()
            && self.tags.is_empty()
            && self.source.is_none()
            && self.meta.is_empty()
    }

    pub fn matches(&self, instance: &InstanceView) -> bool {
        self.status.is_none_or(|s| instance.status == s)
            && self.healthy.is_none_or(|h| instance.healthy == h)
            && self
                .protocol
                .as_ref()
                .is_none_or(|p| instance.protocol == *p)
            && self.tags.iter().all(|t| instance.tags.contains(t))
            && self.source.as_ref().is_none_or(|s| instance.reported_by(s))
            && self
                .meta
                .iter()
                .all(|(k, v)| instance.metadata.get(k) == Some(v))
    }
}

impl InstanceQuery {
    pub fn parse(query: Option<&str>) -> Result<InstanceQuery, ApiError> {
        let mut parsed = InstanceQuery::default();
        let Some(query) = query else {
            return Ok(parsed);
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "namespace" => {
                    validate_name(&value, "invalid_namespace", "namespace")?;
                    parsed.namespace = Some(value.into_owned());
                }
                "group" => {
                    validate_name(&value, "invalid_group", "group")?;
                    parsed.group = Some(value.into_owned());
                }
                "status" => parsed.filter.status = Some(parse_status(&value)?),
                "healthy" => parsed.filter.healthy = Some(parse_bool("healthy", &value)?),
                "protocol" => parsed.filter.protocol = Some(value.into_owned()),
                "tag" => parsed.filter.tags.push(value.into_owned()),
                "source" => parsed.filter.source = Some(value.into_owned()),
                "index" => {
                    let index = value.parse::<u64>().map_err(|_| {
                        ApiError::bad_request(
                            "invalid_index",
                            format!("index must be a non-negative integer, got `{value}`"),
                        )
                        .with_field("index")
                    })?;
                    parsed.index = Some(index);
                }
                "wait" => {
                    // Capped at the configured maximum anyway, so a longer wait is no error.
                    let wait = duration::parse_capped(&value).map_err(|err| {
                        ApiError::bad_request("invalid_wait", err).with_field("wait")
                    })?;
                    parsed.wait = Some(wait);
                }
                other => {
                    if let Some(meta_key) = other.strip_prefix("meta.") {
                        if meta_key.is_empty() {
                            return Err(ApiError::bad_request(
                                "invalid_query",
                                "meta filters are written meta.KEY=VALUE",
                            ));
                        }
                        parsed
                            .filter
                            .meta
                            .push((meta_key.to_owned(), value.into_owned()));
                    }
                }
            }
        }
        Ok(parsed)
    }

    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }

    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(DEFAULT_GROUP)
    }
}

fn parse_bool(field: &'static str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_request(
            "invalid_query",
            format!("{field} must be true or false, got `{value}`"),
        )
        .with_field(field)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_filters_and_blocking_parameters() {
        let q = InstanceQuery::parse(Some(
            "namespace=prod&status=active&healthy=true&tag=a&tag=b&meta.zone=us-1&index=7&wait=30s&cb=123",
        ))
        .unwrap();
        assert_eq!(q.namespace(), "prod");
        assert_eq!(q.group(), "DEFAULT");
        assert_eq!(q.filter.status, Some(Status::Active));
        assert_eq!(q.filter.healthy, Some(true));
        assert_eq!(q.filter.tags, vec!["a", "b"]);
        assert_eq!(q.filter.meta, vec![("zone".to_owned(), "us-1".to_owned())]);
        assert_eq!(q.index, Some(7));
        assert_eq!(q.wait, Some(Duration::from_secs(30)));
    }

    #[test]
    fn rejects_malformed_known_parameters() {
        let code = |q: &str| InstanceQuery::parse(Some(q)).unwrap_err().code;
        assert_eq!(code("index=abc"), "invalid_index");
        assert_eq!(code("index=-1"), "invalid_index");
        assert_eq!(code("wait=forever"), "invalid_wait");
        assert_eq!(code("status=up"), "invalid_status");
        assert_eq!(code("healthy=maybe"), "invalid_query");
        assert_eq!(code("namespace=a%20b"), "invalid_namespace");
        assert_eq!(code("meta.=x"), "invalid_query");
    }
}
