//! The query parameters of Consul's catalog and health reads, parsed as Consul parses
//! them (`agent/http.go`): Go durations for `wait`, presence flags for consistency modes,
//! repeatable `tag` and `node-meta`, and Consul's texts for what it refuses.

use std::time::Duration;

use super::error::ConsulError;
use super::filter::Filter;

/// Blocking-query wait when `index` comes without `wait` (Consul's `default_query_time`).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);
/// Most different `tag` parameters (an instance has at most 64 tags).
pub const MAX_TAGS: usize = 64;
/// The longest blocking-query wait (Consul's `max_query_time`).
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// Which consistency the client asked for (`X-Consul-Effective-Consistency`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Consistency {
    #[default]
    Leader,
    Stale,
    Consistent,
}

impl Consistency {
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Leader => "leader",
            Consistency::Stale => "stale",
            Consistency::Consistent => "consistent",
        }
    }
}

#[derive(Debug, Default)]
pub struct ConsulQuery {
    /// `index`; 0 (or absent) answers at once.
    pub index: u64,
    /// `wait`, when given (zero or negative means the default).
    pub wait: Option<Duration>,
    pub consistency: Consistency,
    /// `dc` or `datacenter`.
    pub datacenter: Option<String>,
    /// `ns` (Consul's namespace).
    pub namespace: Option<String>,
    /// Every `tag` must be on an instance.
    pub tags: Vec<String>,
    /// `node-meta=key:value` pairs, all of which must match.
    pub node_meta: Vec<(String, String)>,
    /// `passing`: only instances whose checks all pass.
    pub passing: bool,
    pub filter: Option<Filter>,
    /// `peer`: another cluster's services (none here).
    pub peer: Option<String>,
}

/// A filter Consul could not build an evaluator for, in its words.
fn filter_error(err: String) -> ConsulError {
    ConsulError::bad_request(format!(
        "Failed to create boolean expression evaluator: {err}"
    ))
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A Go duration (`10s`, `1m30s`, `120000ms`), parsed as Go's `time.ParseDuration`
/// does (so a bare number other than `0` is refused). Negative means "the default".
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let nanos = super::decode::parse_go_duration(text).ok()?;
    Some(Duration::from_nanos(nanos.max(0) as u64))
}

impl ConsulQuery {
    pub fn parse(query: Option<&str>) -> Result<ConsulQuery, ConsulError> {
        let mut parsed = ConsulQuery::default();
        let (mut seen_wait, mut seen_index) = (false, false);
        let (mut stale, mut consistent, mut cached) = (false, false, false);
        let mut datacenter = None;
        let mut dc = None;
        let mut filter = None;
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                // Consul reads the first value of each parameter.
                "wait" if !seen_wait => {
                    seen_wait = true;
                    let wait = parse_go_duration(&value)
                        .ok_or_else(|| ConsulError::bad_request("Invalid wait time"))?;
                    parsed.wait = Some(wait);
                }
                "index" if !seen_index => {
                    seen_index = true;
                    parsed.index = value
                        .parse()
                        .map_err(|_| ConsulError::bad_request("Invalid index"))?;
                }
                "stale" => stale = true,
                "consistent" => consistent = true,
                "cached" => cached = true,
                "max_stale" => {
                    parse_go_duration(&value).ok_or_else(|| {
                        ConsulError::bad_request(format!("Invalid max_stale value {value:?}"))
                    })?;
                }
                "dc" if dc.is_none() => dc = Some(value.into_owned()),
                "datacenter" if datacenter.is_none() => datacenter = Some(value.into_owned()),
                "ns" if parsed.namespace.is_none() => parsed.namespace = Some(value.into_owned()),
                "tag" => {
                    if !parsed.tags.iter().any(|tag| *tag == value) {
                        parsed.tags.push(value.into_owned());
                    }
                    if parsed.tags.len() > MAX_TAGS {
                        return Err(ConsulError::bad_request(format!(
                            "Too many tags: at most {MAX_TAGS} different tag parameters"
                        )));
                    }
                }
                "node-meta" => {
                    let (key, value) = value.split_once(':').unwrap_or((&value, ""));
                    parsed.node_meta.push((key.to_owned(), value.to_owned()));
                }
                "passing" => {
                    parsed.passing = value.is_empty()
                        || parse_bool(&value)
                            .ok_or_else(|| ConsulError::bad_request("Invalid value for ?passing"))?;
                }
                "filter" if filter.is_none() => filter = Some(value.into_owned()),
                "peer" => parsed.peer = Some(value.into_owned()).filter(|peer| !peer.is_empty()),
                "partition" if !value.is_empty() && value != "default" => {
                    return Err(ConsulError::bad_request(
                        "Invalid query parameter: \"partition\" - Partitions are a Consul Enterprise feature",
                    ))
                }
                _ => {}
            }
        }
        if stale && consistent {
            return Err(ConsulError::bad_request(
                "Cannot specify ?stale with ?consistent, conflicting semantics.",
            ));
        }
        if cached && consistent {
            return Err(ConsulError::bad_request(
                "Cannot specify ?cached with ?consistent, conflicting semantics.",
            ));
        }
        parsed.consistency = if consistent {
            Consistency::Consistent
        } else if stale {
            Consistency::Stale
        } else {
            Consistency::Leader
        };
        parsed.datacenter = datacenter.or(dc).filter(|dc| !dc.is_empty());
        parsed.filter = match filter.filter(|text| !text.trim().is_empty()) {
            Some(text) => Some(Filter::parse(&text).map_err(filter_error)?),
            None => None,
        };
        Ok(parsed)
    }

    /// Refuses a filter whose selectors the entries' `shape` (an example entry) lacks.
    pub fn check_filter(
        &self,
        shape: impl FnOnce() -> serde_json::Value,
    ) -> Result<(), ConsulError> {
        match &self.filter {
            Some(filter) => filter.check_selectors(&shape()).map_err(filter_error),
            None => Ok(()),
        }
    }

    /// How long a blocking query waits before answering unchanged: Consul's default and
    /// maximum, plus a random jitter of up to 1/16 so clients spread out.
    pub fn blocking_wait(&self) -> Duration {
        let wait = match self.wait {
            Some(wait) if !wait.is_zero() => wait.min(MAX_WAIT),
            _ => DEFAULT_WAIT,
        };
        let jitter = wait.as_secs_f64() / 16.0 * rand::random::<f64>();
        wait + Duration::from_secs_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<ConsulQuery, ConsulError> {
        ConsulQuery::parse(Some(query))
    }

    #[test]
    fn waits_are_go_durations() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(
            parse_go_duration("120000ms"),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("-5s"), Some(Duration::ZERO));
        for bad in ["10", "", "s", "5x", "abc"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
        let err = parse("index=1&wait=10").unwrap_err();
        assert_eq!(err.text, "Invalid wait time");
        assert_eq!(parse("index=-1").unwrap_err().text, "Invalid index");
    }

    #[test]
    fn waits_are_capped_and_jittered_by_at_most_a_sixteenth() {
        let query = parse("index=5&wait=1h").unwrap();
        for _ in 0..100 {
            let wait = query.blocking_wait();
            assert!(
                wait >= MAX_WAIT && wait < MAX_WAIT + MAX_WAIT / 16,
                "{wait:?}"
            );
        }
        let default = parse("index=5").unwrap().blocking_wait();
        assert!(default >= DEFAULT_WAIT && default < DEFAULT_WAIT + DEFAULT_WAIT / 16);
    }

    #[test]
    fn flags_and_repeats_parse_as_consul_does() {
        let query = parse("stale&tag=a&tag=b&node-meta=rack:r1&passing&dc=dc1").unwrap();
        assert_eq!(query.consistency, Consistency::Stale);
        assert_eq!(query.tags, ["a", "b"]);
        assert_eq!(query.node_meta, [("rack".to_owned(), "r1".to_owned())]);
        assert!(query.passing);
        assert_eq!(query.datacenter.as_deref(), Some("dc1"));
        assert!(!parse("passing=false").unwrap().passing);
        assert!(parse("passing=1").unwrap().passing);
        assert_eq!(
            parse("passing=maybe").unwrap_err().text,
            "Invalid value for ?passing"
        );
        assert!(parse("stale&consistent").is_err());
        assert_eq!(
            parse("consistent=").unwrap().consistency,
            Consistency::Consistent
        );
    }
}
