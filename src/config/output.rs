//! Where events go: the Kafka producer (`[kafka]`) and the Schema Registry (`[schema_registry]`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{invalid, yes, ConfigError};
use crate::secret::{Secret, SecretRef};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    /// none | gzip | snappy | lz4 | zstd
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Create missing topics at start-up.
    #[serde(default = "yes")]
    pub create_topics: bool,
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Replication factor for created topics ([`super::ReplicationFactor`]): `"auto"` (3, or
    /// fewer when the cluster has fewer brokers), -1 (the broker's default) or a number.
    #[serde(default)]
    pub replication_factor: super::ReplicationFactor,
    /// librdkafka `message.timeout.ms`: how long one record may be retried before it is reported failed
    /// (it then stays in the outbox and is re-sent).
    #[serde(default = "default_message_timeout", with = "humantime_serde")]
    pub message_timeout: Duration,
    /// librdkafka's `partitioner`: which partition a key goes to. The default, `murmur2_random`, is
    /// the Java client's (Kafka Streams, ksqlDB, Kafka Connect): a key lands on the partition they
    /// compute for it, so their joins with ccdc's topics are co-partitioned. librdkafka's own
    /// default (`consistent_random`, CRC32) is not.
    #[serde(default = "default_partitioner")]
    pub partitioner: String,
    /// Which headers every record carries ([`RecordHeaders`]): the CloudEvents Kafka binding's
    /// (default), ccdc's two `ccdc.*` headers, or none.
    #[serde(default)]
    pub record_headers: RecordHeaders,
    /// Any librdkafka property (security.protocol, ssl.*, sasl.mechanism, ...).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties whose values are secrets (e.g. `sasl.password`), by reference.
    #[serde(default)]
    pub secret_properties: BTreeMap<String, SecretRef>,
    /// Topic settings (`retention.ms`, `cleanup.policy`, ...) for every topic ccdc creates, over
    /// each stream's built-in ones (see `super::topic_settings`).
    #[serde(default)]
    pub topic_defaults: BTreeMap<String, String>,
    /// Topic settings per stream, by its `[topics]` key, over `topic_defaults`.
    #[serde(default)]
    pub topic_settings: BTreeMap<String, BTreeMap<String, String>>,
}

/// `kafka.record_headers`: the headers on every record. Every value they carry is in the payload too.
///
/// The old boolean values are still accepted: `true` (the `ccdc.*` headers, what it always meant)
/// reads as `minimal`, `false` as `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordHeaders {
    /// The CloudEvents Kafka protocol binding, binary mode: `ce_specversion`, `ce_id`,
    /// `ce_source`, `ce_type`, `ce_time`, `ce_subject` (when the event has one) and
    /// `content-type`, so CloudEvents-aware consumers route records without decoding them.
    #[default]
    CloudEvents,
    /// `ccdc.event_id` and `ccdc.event_type` (the headers of ccdc before CloudEvents).
    Minimal,
    /// Key and payload only (the cheapest: no header work in librdkafka or the broker).
    None,
}

impl RecordHeaders {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordHeaders::CloudEvents => "cloudevents",
            RecordHeaders::Minimal => "minimal",
            RecordHeaders::None => "none",
        }
    }
}

impl<'de> Deserialize<'de> for RecordHeaders {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RecordHeaders;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("one of \"cloudevents\", \"minimal\", \"none\" (or the old true/false)")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RecordHeaders, E> {
                let now = if v { "minimal" } else { "none" };
                tracing::warn!("configuration key `kafka.record_headers` = {v}: the old boolean, read as \"{now}\"; the default is now \"cloudevents\" (CloudEvents headers)");
                Ok(if v {
                    RecordHeaders::Minimal
                } else {
                    RecordHeaders::None
                })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RecordHeaders, E> {
                match v {
                    "cloudevents" => Ok(RecordHeaders::CloudEvents),
                    "minimal" => Ok(RecordHeaders::Minimal),
                    "none" => Ok(RecordHeaders::None),
                    // An environment override arrives as text.
                    "true" => self.visit_bool(true),
                    "false" => self.visit_bool(false),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<SecretRef>,
    /// Register the schemas at start-up (otherwise they must already be registered).
    #[serde(default = "yes")]
    pub auto_register: bool,
    #[serde(default = "default_registry_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Extra trusted root certificate (PEM) for an https registry behind a private CA.
    pub ca_file: Option<PathBuf>,
    /// With `username`/`password`, a plain `http://` url is refused unless this is set (the
    /// credentials would travel in clear). Without credentials plain http is allowed.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

fn default_compression() -> String {
    "zstd".into()
}
fn default_partitioner() -> String {
    "murmur2_random".into()
}
fn default_partitions() -> i32 {
    6
}
fn default_message_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_registry_timeout() -> Duration {
    Duration::from_secs(10)
}

impl KafkaConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(invalid("kafka.bootstrap_servers", "must not be empty"));
        }
        if !matches!(
            self.compression.as_str(),
            "none" | "gzip" | "snappy" | "lz4" | "zstd"
        ) {
            return Err(invalid(
                "kafka.compression",
                "one of none, gzip, snappy, lz4, zstd",
            ));
        }
        const PARTITIONERS: &[&str] = &[
            "murmur2_random",
            "murmur2",
            "consistent_random",
            "consistent",
            "fnv1a_random",
            "fnv1a",
            "random",
        ];
        if !PARTITIONERS.contains(&self.partitioner.as_str()) {
            return Err(invalid(
                "kafka.partitioner",
                format!("one of {}", PARTITIONERS.join(", ")),
            ));
        }
        if self.partitions < 1 {
            return Err(invalid("kafka.partitions", "must be at least 1"));
        }
        super::topic_settings::validate(self)?;
        if self.message_timeout.is_zero() {
            return Err(invalid(
                "kafka.message_timeout",
                "must be greater than zero",
            ));
        }
        super::kafka_props::validate(&self.properties, &self.secret_properties)?;
        for (key, why) in super::kafka_props::tls_downgrades(&self.properties) {
            tracing::warn!(
                "configuration key `kafka.properties.{key}` = {:?}: TLS downgrade, {why}; only for a test cluster",
                self.properties[&key]
            );
        }
        for (key, r) in &self.secret_properties {
            r.resolve()
                .map_err(|e| invalid(format!("kafka.secret_properties.{key}"), e.to_string()))?;
        }
        Ok(())
    }

    /// Secret librdkafka properties, resolved.
    pub fn resolved_secret_properties(&self) -> Result<Vec<(String, Secret)>, ConfigError> {
        self.secret_properties
            .iter()
            .map(|(k, r)| {
                r.resolve()
                    .map(|s| (k.clone(), s))
                    .map_err(|e| invalid(format!("kafka.secret_properties.{k}"), e.to_string()))
            })
            .collect()
    }
}

impl RegistryConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| invalid("schema_registry.url", format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(
                "schema_registry.url",
                "scheme must be http or https",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "schema_registry.url",
                "credentials in the URL are refused: use username/password (by reference)",
            ));
        }
        if self.password.is_some() != self.username.is_some() {
            return Err(invalid(
                "schema_registry.password",
                "username and password go together",
            ));
        }
        if url.scheme() == "http" && self.username.is_some() && !self.allow_insecure_http {
            return Err(invalid(
                "schema_registry.url",
                "plain http with username/password would send the credentials in clear: use https, or set schema_registry.allow_insecure_http = true (a local registry only)",
            ));
        }
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                invalid(
                    "schema_registry.ca_file",
                    format!("cannot read `{}`: {}", ca.display(), e.kind()),
                )
            })?;
            match reqwest::Certificate::from_pem_bundle(&pem) {
                Ok(certs) if !certs.is_empty() => {}
                Ok(_) => {
                    return Err(invalid(
                        "schema_registry.ca_file",
                        "holds no PEM certificate",
                    ))
                }
                Err(e) => {
                    return Err(invalid(
                        "schema_registry.ca_file",
                        format!("not a PEM certificate: {e}"),
                    ))
                }
            }
        }
        if let Some(p) = &self.password {
            p.resolve()
                .map_err(|e| invalid("schema_registry.password", e.to_string()))?;
        }
        Ok(())
    }

    pub fn resolved_password(&self) -> Result<Option<Secret>, ConfigError> {
        self.password
            .as_ref()
            .map(|p| {
                p.resolve()
                    .map_err(|e| invalid("schema_registry.password", e.to_string()))
            })
            .transpose()
    }
}
