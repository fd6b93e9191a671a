//! Turns one etcd key and value into an [`Instance`]: the key template gives service,
//! version and id; the value is a JSON object (seed 000's lowercase fields, seed 001's
//! capitalised Go fields, seed 004's `addr`) or a plain `host:port` (seeds 003/004).
//! Pure functions only, so every layout is unit-tested here without an etcd.

use serde_json::{Map, Value};

use super::config::{EtcdConfig, ValueFormat};
use super::fields::{
    host_and_port, metadata, parse_address, status, tags, time, weight, Fields, DEFAULT_WEIGHT,
};
use super::template::{KeyParts, Layout};
use crate::{ConnectorError, Instance, ServiceKey, SourceCommon, Status};

/// Converts the key-values of one source.
#[derive(Clone, Debug)]
pub(crate) struct Converter {
    namespace: String,
    group: String,
    layout: Layout,
}

impl Converter {
    pub(crate) fn new(common: &SourceCommon, config: &EtcdConfig) -> Result<Self, ConnectorError> {
        Ok(Converter {
            namespace: common.placed_namespace().to_owned(),
            group: common.placed_group().to_owned(),
            layout: Layout::new(config)?,
        })
    }

    /// The instance a key holds, or why it holds none.
    pub(crate) fn convert(&self, key: &str, value: &[u8]) -> Result<Instance, String> {
        let text = std::str::from_utf8(value).map_err(|_| "value is not UTF-8".to_owned())?;
        let text = text.trim();
        if text.is_empty() {
            return Err("value is empty".to_owned());
        }
        let parts = key
            .strip_prefix(self.layout.prefix.as_str())
            .and_then(|rest| self.layout.template.matches(rest));
        match self.layout.format {
            ValueFormat::Json => match parse_object(text) {
                Ok(object) => self.read_json(parts, &object),
                Err(why) => Err(why),
            },
            ValueFormat::Plain => self.read_plain(parts, text),
            ValueFormat::Auto => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(object)) => self.read_json(parts, &object),
                // A JSON string holding `host:port`.
                Ok(Value::String(inner)) => self.read_plain(parts, inner.trim()),
                Err(err) if text.starts_with('{') => Err(format!("value is not valid JSON: {err}")),
                _ => self.read_plain(parts, text),
            },
        }
    }

    fn mismatch(&self) -> String {
        format!(
            "key does not match key_template `{}` below prefix `{}`",
            self.layout.template_text, self.layout.prefix
        )
    }

    fn service_key(&self, name: String) -> ServiceKey {
        ServiceKey::new(self.namespace.clone(), self.group.clone(), name)
    }

    fn read_plain(&self, parts: Option<KeyParts>, text: &str) -> Result<Instance, String> {
        let parts = parts.ok_or_else(|| self.mismatch())?;
        let service = parts.service.ok_or_else(|| self.mismatch())?;
        let address = parse_address(text)?;
        let id = parts.id.unwrap_or_else(|| address.canonical());
        let mut instance = Instance::new(id, self.service_key(service), address.host, address.port);
        if let Some(scheme) = address.scheme {
            instance.protocol = scheme;
        }
        instance.version = parts.version;
        Ok(instance)
    }

    fn read_json(
        &self,
        parts: Option<KeyParts>,
        object: &Map<String, Value>,
    ) -> Result<Instance, String> {
        let fields = Fields::new(object);
        let parts = parts.unwrap_or_default();
        let service = parts
            .service
            .or_else(|| fields.text(&["name", "service", "servicename"]))
            .ok_or_else(|| format!("{}, and the value has no `name`", self.mismatch()))?;
        let address = match fields.text(&["address", "addr", "endpoint"]) {
            Some(text) => parse_address(&text)?,
            None => host_and_port(&fields)?,
        };
        let id = fields
            .text(&["id", "instanceid"])
            .or(parts.id)
            .unwrap_or_else(|| address.canonical());

        let mut instance = Instance::new(id, self.service_key(service), address.host, address.port);
        if let Some(protocol) = fields.text(&["protocol", "scheme"]).or(address.scheme) {
            instance.protocol = protocol.to_ascii_lowercase();
        }
        instance.metadata = fields
            .get(&["metadata", "meta"])
            .map(metadata)
            .unwrap_or_default();
        instance.version = fields
            .text(&["version"])
            .or(parts.version)
            .or_else(|| instance.metadata.get("version").cloned());
        instance.weight = fields.get(&["weight"]).map_or(DEFAULT_WEIGHT, weight);
        instance.status = fields
            .get(&["status", "state"])
            .map_or(Status::Active, status);
        let flagged_unhealthy = matches!(fields.get(&["healthy"]), Some(Value::Bool(false)));
        instance.healthy = instance.status == Status::Active && !flagged_unhealthy;
        instance.tags = fields.get(&["tags"]).map(tags).unwrap_or_default();
        instance.register_time = fields.get(&["registertime"]).and_then(time);
        instance.start_time = fields.get(&["starttime"]).and_then(time);
        instance.last_heartbeat = fields
            .get(&["lastheartbeat", "lastrenewtime", "updatedat"])
            .and_then(time);
        instance.offline_time = fields.get(&["offlinetime"]).and_then(time);
        Ok(instance)
    }
}

fn parse_object(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err("value is JSON but not an object".to_owned()),
        Err(err) => Err(format!("value is not valid JSON: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::json;

    use super::*;

    fn common(namespace: Option<&str>, group: Option<&str>) -> SourceCommon {
        SourceCommon {
            id: "etcd-test".into(),
            priority: 0,
            namespace: namespace.map(Into::into),
            group: group.map(Into::into),
            max_stale: None,
            empty_confirm: std::time::Duration::from_secs(10),
            ..SourceCommon::new("etcd-test")
        }
    }

    fn converter(prefix: &str, template: &str, format: ValueFormat) -> Converter {
        let mut config = EtcdConfig::new(["http://127.0.0.1:2379"]);
        config.prefix = prefix.into();
        config.key_template = template.into();
        config.format = format;
        Converter::new(&common(None, None), &config).unwrap()
    }

    fn default_converter() -> Converter {
        converter("/services/", "{service}/{id}", ValueFormat::Auto)
    }

    fn at(year: i32, month: u32, day: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(year, month, day, h, 0, 0).unwrap()
    }

    #[test]
    fn seed_000_json_instance() {
        let value = json!({
            "id": "user-service-b2f7",
            "name": "user-service",
            "address": "127.0.0.1:8080",
            "protocol": "http",
            "register_time": "2023-10-27T10:00:00Z",
            "start_time": "2023-10-27T09:00:00+00:00",
            "metadata": { "version": "1.0.2", "region": "us-east-1" },
            "weight": 100,
            "status": "active"
        });
        let instance = default_converter()
            .convert(
                "/services/user-service/user-service-b2f7",
                value.to_string().as_bytes(),
            )
            .unwrap();
        assert_eq!(instance.id, "user-service-b2f7");
        assert_eq!(instance.service, ServiceKey::named("user-service"));
        assert_eq!((instance.host.as_str(), instance.port), ("127.0.0.1", 8080));
        assert_eq!(instance.protocol, "http");
        assert_eq!(
            instance.version.as_deref(),
            Some("1.0.2"),
            "falls back to metadata"
        );
        assert_eq!(instance.weight, 100);
        assert_eq!(instance.status, Status::Active);
        assert!(instance.healthy);
        assert_eq!(instance.metadata["region"], "us-east-1");
        assert_eq!(instance.register_time, Some(at(2023, 10, 27, 10)));
        assert_eq!(instance.start_time, Some(at(2023, 10, 27, 9)));
    }

    #[test]
    fn seed_001_capitalised_go_fields() {
        let c = converter(
            "/fyerrpc/services",
            "{service}/{version}/{id}",
            ValueFormat::Json,
        );
        let value = json!({
            "ID": "5f1c", "Service": "user-service", "Version": "1.0.0",
            "Address": "192.168.1.100:8000", "Status": 1, "Weight": 100,
            "Metadata": { "region": "cn-shanghai", "zone": "cn-shanghai-a" },
            "UpdatedAt": 1_700_000_000
        });
        let instance = c
            .convert(
                "/fyerrpc/services/user-service/1.0.0/5f1c",
                value.to_string().as_bytes(),
            )
            .unwrap();
        assert_eq!(instance.id, "5f1c");
        assert_eq!(instance.service.name, "user-service");
        assert_eq!(instance.version.as_deref(), Some("1.0.0"));
        assert_eq!(instance.status, Status::Active);
        assert_eq!(instance.metadata["zone"], "cn-shanghai-a");
        assert_eq!(instance.last_heartbeat.unwrap().timestamp(), 1_700_000_000);
        // fyer-rpc's own lowercase tags, disabled status.
        let lower = json!({"id": "x", "service": "s", "version": "2", "address": "10.0.0.1:1", "status": 0});
        let instance = c
            .convert("/fyerrpc/services/s/2/x", lower.to_string().as_bytes())
            .unwrap();
        assert_eq!(instance.status, Status::Inactive);
        assert!(!instance.healthy);
    }

    #[test]
    fn seed_003_plain_value_under_service_and_instance() {
        let instance = default_converter()
            .convert("/services/user-service/instance1", b"192.168.1.100:8080")
            .unwrap();
        assert_eq!(instance.id, "instance1");
        assert_eq!(instance.service.name, "user-service");
        assert_eq!(instance.address(), "192.168.1.100:8080");
        assert_eq!(instance.protocol, "http");
        assert_eq!(instance.weight, 100);
        assert!(instance.healthy);
    }

    #[test]
    fn seed_004_plain_value_under_service_only() {
        let plain = converter("/services/", "{service}", ValueFormat::Plain);
        let instance = plain
            .convert("/services/notification-server", b"0.0.0.0:8080")
            .unwrap();
        assert_eq!(instance.service.name, "notification-server");
        assert_eq!(instance.id, "0.0.0.0:8080", "id falls back to the address");
        // The seed's "health info" extension: `addr`, status `healthy`.
        let value = json!({"addr": "10.1.1.1:9000", "status": "healthy", "version": "1.0.0"});
        let instance = plain.convert(
            "/services/notification-server",
            value.to_string().as_bytes(),
        );
        assert!(instance.is_err(), "format plain never reads JSON");
        let auto = converter("/services/", "{service}", ValueFormat::Auto);
        let instance = auto
            .convert(
                "/services/notification-server",
                value.to_string().as_bytes(),
            )
            .unwrap();
        assert_eq!(instance.address(), "10.1.1.1:9000");
        assert_eq!(instance.status, Status::Active);
        assert_eq!(instance.version.as_deref(), Some("1.0.0"));
    }

    #[test]
    fn namespace_and_group_come_from_the_source() {
        let config = EtcdConfig::new(["http://127.0.0.1:2379"]);
        let converter = Converter::new(&common(Some("prod"), Some("blue")), &config).unwrap();
        let instance = converter.convert("/services/a/1", b"10.0.0.1:80").unwrap();
        assert_eq!(instance.service, ServiceKey::new("prod", "blue", "a"));
    }

    #[test]
    fn ipv6_and_schemes() {
        let c = default_converter();
        let v6 = c.convert("/services/a/1", b"[::1]:80").unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.address()),
            ("::1", 80, "[::1]:80".to_owned())
        );
        let grpc = c
            .convert("/services/a/1", b"grpc://10.0.0.1:9090/")
            .unwrap();
        assert_eq!((grpc.protocol.as_str(), grpc.port), ("grpc", 9090));
        let quoted = c.convert("/services/a/1", b"\"10.0.0.1:80\"").unwrap();
        assert_eq!(quoted.address(), "10.0.0.1:80");
        let fallback_id = converter("/services/", "{service}", ValueFormat::Auto)
            .convert("/services/a", b"[fe80::1]:8080")
            .unwrap();
        assert_eq!(fallback_id.id, "[fe80::1]:8080");
    }

    #[test]
    fn bad_values_say_why() {
        let c = default_converter();
        let cases: [(&str, &[u8], &str); 10] = [
            ("/services/a/1", b"", "empty"),
            ("/services/a/1", b"\xff\xfe", "not UTF-8"),
            ("/services/a/1", b"not an address", "not host:port"),
            ("/services/a/1", b"::1:80", "brackets"),
            ("/services/a/1", b":8080", "no valid host"),
            ("/services/a/1", b"10.0.0.1:0", "no valid port"),
            ("/services/a/1", b"10.0.0.1:http", "no valid port"),
            ("/services/a/1", b"{\"name\": ", "not valid JSON"),
            ("/services/a/1", b"{\"name\": \"a\"}", "no `address`"),
            (
                "/services/a/b/c",
                b"10.0.0.1:80",
                "does not match key_template `{service}/{id}`",
            ),
        ];
        for (key, value, expected) in cases {
            let err = c.convert(key, value).unwrap_err();
            assert!(err.contains(expected), "{key} {value:?}: {err}");
        }
        let json_only = converter("/services/", "{service}/{id}", ValueFormat::Json);
        assert!(json_only
            .convert("/services/a/1", b"10.0.0.1:80")
            .unwrap_err()
            .contains("JSON"));
        assert!(json_only
            .convert("/services/a/1", b"[1]")
            .unwrap_err()
            .contains("not an object"));
    }

    #[test]
    fn json_outside_the_template_uses_its_own_name() {
        let value = json!({"name": "orders", "address": "10.0.0.2:81"});
        let instance = default_converter()
            .convert("/services/orders", value.to_string().as_bytes())
            .unwrap();
        assert_eq!(instance.service.name, "orders");
        assert_eq!(instance.id, "10.0.0.2:81");
        let nameless = json!({"address": "10.0.0.2:81"});
        let err = default_converter()
            .convert("/services/orders", nameless.to_string().as_bytes())
            .unwrap_err();
        assert!(err.contains("has no `name`"), "{err}");
    }

    #[test]
    fn key_service_wins_over_json_name_and_json_id_over_key_id() {
        let value = json!({"id": "json-id", "name": "other", "address": "10.0.0.1:80"});
        let instance = default_converter()
            .convert("/services/from-key/key-id", value.to_string().as_bytes())
            .unwrap();
        assert_eq!(instance.service.name, "from-key");
        assert_eq!(instance.id, "json-id");
    }

    #[test]
    fn host_and_port_fields() {
        let value = json!({"name": "a", "host": "::1", "port": "8080", "id": 7});
        let instance = default_converter()
            .convert("/services/a/x", value.to_string().as_bytes())
            .unwrap();
        assert_eq!(
            (instance.address(), instance.id.as_str()),
            ("[::1]:8080".to_owned(), "7")
        );
        let bad = json!({"name": "a", "host": "h", "port": 70000});
        assert!(default_converter()
            .convert("/services/a/x", bad.to_string().as_bytes())
            .unwrap_err()
            .contains("no valid `port`"));
    }

    #[test]
    fn healthy_means_active_and_not_flagged_unhealthy() {
        let c = default_converter();
        let read = |value: Value| {
            let instance = c
                .convert("/services/a/1", value.to_string().as_bytes())
                .unwrap();
            (instance.status, instance.healthy)
        };
        assert_eq!(
            read(json!({"address": "10.0.0.1:80"})),
            (Status::Active, true)
        );
        assert_eq!(
            read(json!({"address": "10.0.0.1:80", "status": "Down"})),
            (Status::Offline, false)
        );
        assert_eq!(
            read(json!({"address": "10.0.0.1:80", "healthy": false})),
            (Status::Active, false)
        );
        let tagged = c
            .convert(
                "/services/a/1",
                json!({"address": "10.0.0.1:80", "protocol": "GRPC", "tags": ["x"]})
                    .to_string()
                    .as_bytes(),
            )
            .unwrap();
        assert_eq!(
            (tagged.protocol.as_str(), tagged.tags.as_slice()),
            ("grpc", &["x".to_owned()][..])
        );
    }
}
