//! Static checks of the consumer recipes in `examples/` that cannot run here (Flink, ksqlDB and
//! Kafka Connect are JVM services): each checker returns the problems it finds, an empty list when
//! the recipe matches ccdc — its default topic names (`TopicsConfig`) and its writer schemas
//! (`schemas/*.avsc`, as ccdc registers them). `tests/examples.rs` runs them on the files and on
//! broken copies (a misspelt column, a wrong type, a wrong converter) to show that they can fail.
#![allow(dead_code)]

pub mod connect;
pub mod flink;
pub mod ksql;
pub mod sql;

use ccdc::avro::{schema_text, STREAMS};
use ccdc::config::TopicsConfig;
use serde_json::Value;

/// The writer schema (parsed JSON) of the stream ccdc publishes to `topic` by default.
pub fn schema_of_topic(topic: &str) -> Result<Value, String> {
    let defaults = TopicsConfig::default();
    let stream = STREAMS
        .iter()
        .find(|s| defaults.for_stream(**s) == topic)
        .ok_or_else(|| format!("topic `{topic}` is none of ccdc's default topics"))?;
    let text = schema_text(*stream);
    serde_json::from_str(text).map_err(|e| format!("schema of {topic}: {e}"))
}

/// The fields of a record schema.
pub fn fields(record: &Value) -> &[Value] {
    record["fields"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A field's name.
pub fn name(field: &Value) -> &str {
    field["name"].as_str().unwrap_or("")
}

/// The schema without its `doc` strings (they play no part in decoding).
pub fn without_docs(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| *k != "doc")
                .map(|(k, x)| (k.clone(), without_docs(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_docs).collect()),
        x => x.clone(),
    }
}
