//! The other direction of `convert.rs`: the key and value the writer puts for an
//! [`Instance`], laid out so the same source's watch reads them back as that instance.
//!
//! The key is the prefix plus `key_template` filled with the service name, version and
//! id. The value is `host:port` for `format = "plain"`, else a JSON object with the
//! lowercase field names `convert.rs` reads first (`id`, `name`, `address`, `protocol`,
//! `version`, `weight`, `status`, `healthy`, `metadata`, `tags` and the times). A key
//! names only the service and the id, so the source's own namespace and group place
//! what it reads back, whatever the written instance's were.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::config::{EtcdConfig, ValueFormat};
use super::template::{KeyParts, Layout, Segment};
use crate::{ConnectorError, Instance, InstanceKey};

/// Renders instances for one source.
#[derive(Clone, Debug)]
pub(super) struct Encoder {
    layout: Layout,
}

impl Encoder {
    pub(super) fn new(config: &EtcdConfig) -> Result<Self, ConnectorError> {
        Ok(Encoder {
            layout: Layout::new(config)?,
        })
    }

    /// The key `instance` is written under. Fails when the template cannot hold it: it
    /// has no `{id}` (one key per service holds one instance), or needs a value the
    /// instance lacks.
    pub(super) fn key(&self, instance: &Instance) -> Result<String, ConnectorError> {
        self.writable()?;
        let service = &instance.service.name;
        self.render(service, instance.version.clone(), &instance.id)
            .map_err(|why| {
                ConnectorError::Config(format!(
                    "cannot write instance `{}` of `{service}` under `key_template` `{}`: {why}",
                    instance.id, self.layout.template_text
                ))
            })
    }

    /// The key of an instance known only by its [`InstanceKey`], when the template needs
    /// nothing else (no `{version}`).
    pub(super) fn key_of(&self, key: &InstanceKey) -> Option<String> {
        if self.layout.template.has(Segment::Version) || self.writable().is_err() {
            return None;
        }
        self.render(&key.service.name, None, &key.id).ok()
    }

    /// The prefix plus the template filled in.
    fn render(&self, service: &str, version: Option<String>, id: &str) -> Result<String, String> {
        let parts = KeyParts {
            service: Some(service.to_owned()),
            version,
            id: Some(id.to_owned()),
        };
        let rest = self.layout.template.render(&parts)?;
        Ok(format!("{}{rest}", self.layout.prefix))
    }

    fn writable(&self) -> Result<(), ConnectorError> {
        if self.layout.template.has(Segment::Id) {
            return Ok(());
        }
        Err(ConnectorError::Config(format!(
            "`key_template` `{}` has no `{{id}}`, so one key stands for a whole service and \
             cannot hold several instances; Switchboard does not write to such a source",
            self.layout.template_text
        )))
    }

    /// The value `instance` is written as.
    pub(super) fn value(&self, instance: &Instance) -> String {
        match self.layout.format {
            // `plain` has no room for a protocol: a scheme in front would break readers
            // that expect `host:port`.
            ValueFormat::Plain => instance.address(),
            ValueFormat::Json | ValueFormat::Auto => json_value(instance).to_string(),
        }
    }
}

fn json_value(instance: &Instance) -> Value {
    let mut value = json!({
        "id": instance.id,
        "name": instance.service.name,
        "address": instance.address(),
        "protocol": instance.protocol,
        "weight": instance.weight,
        "status": instance.status.as_str(),
        "healthy": instance.healthy,
        "metadata": instance.metadata,
        "tags": instance.tags,
    });
    let object = value.as_object_mut().expect("built as an object");
    if let Some(version) = &instance.version {
        object.insert("version".to_owned(), json!(version));
    }
    let times = [
        ("register_time", instance.register_time),
        ("start_time", instance.start_time),
        ("last_heartbeat", instance.last_heartbeat),
        ("offline_time", instance.offline_time),
    ];
    insert_times(object, times);
    value
}

fn insert_times<'a>(
    object: &mut Map<String, Value>,
    times: impl IntoIterator<Item = (&'a str, Option<DateTime<Utc>>)>,
) {
    for (name, time) in times {
        if let Some(time) = time {
            let text = time.to_rfc3339_opts(SecondsFormat::AutoSi, true);
            object.insert(name.to_owned(), Value::String(text));
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::super::convert::Converter;
    use super::*;
    use crate::{ServiceKey, SourceCommon, Status};

    fn config(template: &str, format: ValueFormat) -> EtcdConfig {
        let mut config = EtcdConfig::new(["http://127.0.0.1:2379"]);
        config.prefix = "/registry".into();
        config.key_template = template.into();
        config.format = format;
        config
    }

    /// Writes `instance` the way the writer does and reads it back the way the watch does.
    fn round_trip(config: &EtcdConfig, instance: &Instance) -> (String, Instance) {
        let encoder = Encoder::new(config).unwrap();
        let common = SourceCommon::new("etcd-test");
        let converter = Converter::new(&common, config).unwrap();
        let key = encoder.key(instance).unwrap();
        let value = encoder.value(instance);
        let read = converter.convert(&key, value.as_bytes()).unwrap();
        (key, read)
    }

    fn rich_instance() -> Instance {
        let mut instance = Instance::new("pay-1", ServiceKey::named("pay"), "::1", 8443);
        instance.protocol = "grpc".into();
        instance.version = Some("2.1.0".into());
        instance.weight = 250;
        instance.status = Status::Maintenance;
        instance.healthy = false;
        instance.metadata.insert("zone".into(), "a".into());
        instance.metadata.insert("version".into(), "2.1.0".into());
        instance.tags = vec!["blue".into(), "canary".into()];
        instance.register_time = Some(Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap());
        instance.last_heartbeat = Some(Utc.timestamp_millis_opt(1_714_567_890_123).unwrap());
        instance
    }

    #[test]
    fn json_values_read_back_as_the_same_instance() {
        let instance = rich_instance();
        for format in [ValueFormat::Json, ValueFormat::Auto] {
            for template in ["{service}/{id}", "{service}/{version}/{id}", "{id}"] {
                let (key, read) = round_trip(&config(template, format), &instance);
                assert!(
                    key.starts_with("/registry/") && key.ends_with("/pay-1"),
                    "{key}"
                );
                assert_eq!(read, instance, "{template} as {format:?}");
            }
        }
    }

    #[test]
    fn healthy_active_instances_and_plain_ipv4_hosts_read_back() {
        let mut instance = Instance::new("i-1", ServiceKey::named("orders"), "10.0.0.5", 80);
        instance.weight = 0;
        let (key, read) = round_trip(&config("{service}/{id}", ValueFormat::Json), &instance);
        assert_eq!(key, "/registry/orders/i-1");
        assert_eq!(read, instance);
    }

    #[test]
    fn plain_values_carry_the_address_and_the_key_the_rest() {
        let instance = rich_instance();
        let plain = config("{service}/{version}/{id}", ValueFormat::Plain);
        assert_eq!(Encoder::new(&plain).unwrap().value(&instance), "[::1]:8443");
        let (key, read) = round_trip(&plain, &instance);
        assert_eq!(key, "/registry/pay/2.1.0/pay-1");
        assert_eq!(
            (read.service.name.as_str(), read.id.as_str()),
            ("pay", "pay-1")
        );
        assert_eq!((read.host.as_str(), read.port), ("::1", 8443));
        assert_eq!(read.version.as_deref(), Some("2.1.0"));
        // What `host:port` cannot say comes back as the defaults.
        assert_eq!(
            (read.weight, read.status, read.healthy),
            (100, Status::Active, true)
        );
        assert_eq!(read.protocol, "http");
    }

    #[test]
    fn the_read_back_service_lands_in_the_source_namespace() {
        let mut instance = rich_instance();
        instance.service = ServiceKey::new("prod", "blue", "pay");
        let (_, read) = round_trip(&config("{service}/{id}", ValueFormat::Json), &instance);
        assert_eq!(read.service, ServiceKey::named("pay"));
    }

    #[test]
    fn keys_the_template_cannot_hold_are_refused() {
        let instance = Instance::new("i-1", ServiceKey::named("orders"), "10.0.0.5", 80);
        let versioned = Encoder::new(&config("{service}/{version}/{id}", ValueFormat::Json));
        let err = versioned.unwrap().key(&instance).unwrap_err();
        assert!(
            matches!(&err, ConnectorError::Config(m) if m.contains("`{version}` has no value")
                && m.contains("`i-1` of `orders`")),
            "{err}"
        );
        let per_service = Encoder::new(&config("{service}", ValueFormat::Plain)).unwrap();
        let err = per_service.key(&instance).unwrap_err();
        assert!(
            matches!(&err, ConnectorError::Config(m) if m.contains("has no `{id}`")),
            "{err}"
        );
        assert_eq!(per_service.key_of(&instance.key()), None);
        let slashed = Instance::new("a/b", ServiceKey::named("orders"), "10.0.0.5", 80);
        let plain = Encoder::new(&config("{service}/{id}", ValueFormat::Json)).unwrap();
        assert!(plain
            .key(&slashed)
            .unwrap_err()
            .to_string()
            .contains("holds a `/`"));
    }

    #[test]
    fn keys_of_instance_keys_need_no_version() {
        let key = Instance::new("i-1", ServiceKey::named("orders"), "h", 1).key();
        let plain = Encoder::new(&config("{service}/{id}", ValueFormat::Json)).unwrap();
        assert_eq!(plain.key_of(&key).as_deref(), Some("/registry/orders/i-1"));
        let versioned = Encoder::new(&config("{service}/{version}/{id}", ValueFormat::Json));
        assert_eq!(versioned.unwrap().key_of(&key), None);
    }
}
