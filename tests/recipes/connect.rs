//! The Kafka Connect sink recipe: keys are plain strings (`StringConverter`), values Confluent
//! Avro resolved through the registry (`AvroConverter`), only ccdc's default topics, and a
//! time-based partitioner on the record timestamp (ccdc's event time) or on a timestamp field
//! every topic has.

use serde_json::Value;

use super::{fields, name, schema_of_topic};

const KEY_CONVERTER: &str = "org.apache.kafka.connect.storage.StringConverter";
const VALUE_CONVERTER: &str = "io.confluent.connect.avro.AvroConverter";
const TIME_PARTITIONERS: &[&str] = &[
    "io.confluent.connect.storage.partitioner.TimeBasedPartitioner",
    "io.confluent.connect.storage.partitioner.HourlyPartitioner",
    "io.confluent.connect.storage.partitioner.DailyPartitioner",
];

type Config = serde_json::Map<String, Value>;

fn get<'a>(config: &'a Config, key: &str) -> Option<&'a str> {
    config.get(key).and_then(Value::as_str)
}

/// Every problem of a connector configuration (`{"name": …, "config": {…}}`, as POSTed to Connect).
pub fn check(text: &str) -> Vec<String> {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return vec![format!("not JSON: {e}")],
    };
    let Some(config) = v["config"].as_object() else {
        return vec!["no `config` object".into()];
    };
    let mut p = check_converters(config);
    let mut schemas = Vec::new();
    for t in get(config, "topics")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
    {
        match schema_of_topic(t) {
            Ok(s) => schemas.push((t, s)),
            Err(e) => p.push(e),
        }
    }
    if schemas.is_empty() || config.contains_key("topics.regex") {
        p.push("list the topics in `topics` (topics.regex is not checked here)".into());
    }
    p.extend(check_partitioner(config, &schemas));
    p
}

/// String settings, string keys, registry Avro values.
fn check_converters(config: &Config) -> Vec<String> {
    let mut p = Vec::new();
    for (k, x) in config {
        if !x.is_string() {
            p.push(format!("`{k}`: Connect takes every setting as a string"));
        }
    }
    if get(config, "key.converter") != Some(KEY_CONVERTER) {
        p.push(format!(
            "key.converter must be {KEY_CONVERTER}: ccdc's keys are plain strings"
        ));
    }
    if get(config, "value.converter") != Some(VALUE_CONVERTER) {
        p.push(format!(
            "value.converter must be {VALUE_CONVERTER}: values are Confluent Avro"
        ));
    }
    let url = get(config, "value.converter.schema.registry.url").unwrap_or("");
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        p.push("value.converter.schema.registry.url is no registry URL".into());
    }
    p
}

/// A time-based partitioner partitions by event time: the record timestamp, or a field of every topic.
fn check_partitioner(config: &Config, schemas: &[(&str, Value)]) -> Vec<String> {
    let mut p = Vec::new();
    let class = get(config, "partitioner.class").unwrap_or("");
    if !TIME_PARTITIONERS.contains(&class) {
        return p;
    }
    for k in ["path.format", "partition.duration.ms", "locale", "timezone"] {
        if get(config, k).is_none() && class == TIME_PARTITIONERS[0] {
            p.push(format!("TimeBasedPartitioner needs `{k}`"));
        }
    }
    match get(config, "timestamp.extractor") {
        Some("Record") => {}
        Some("RecordField") => {
            let f = get(config, "timestamp.field").unwrap_or("");
            for (t, s) in schemas {
                if !fields(s).iter().any(|x| name(x) == f) {
                    p.push(format!("timestamp.field `{f}` is no field of {t}"));
                }
            }
        }
        other => p.push(format!(
            "timestamp.extractor {other:?} is not the event time (Record: the record timestamp)"
        )),
    }
    p
}
