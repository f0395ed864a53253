//! The record context: what every record carries about where it came from, beyond its event — the
//! source's time zone, the ccdc version that published it and the vendor account — as the last
//! three fields of each value schema (optional, default null, so adding them was a BACKWARD and
//! FORWARD compatible change).
//!
//! The context is the same for every record of a source, so it is not stored with the events in
//! the outbox: the encoder writes each event's own fields with the schema *without* the context
//! fields (its "core"), then appends the source's context, encoded once. In Avro's binary encoding
//! a record is its fields one after the other, so the result is exactly the full schema's datum.

use serde::Serialize;
use serde_json::Value;

use super::{AvroError, WireView};
use crate::event::{Event, Stream};

/// The context fields, in schema order, at the end of every value schema that has them.
pub const CONTEXT_FIELDS: [&str; 3] = ["source_time_zone", "ccdc_version", "account_id"];

/// The version of ccdc (`Cargo.toml`), in every record's `ccdc_version`.
pub const CCDC_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The context of one source's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordContext {
    /// The IANA zone the source's local times are read in (`time_zone`), e.g. `America/Bogota`.
    pub source_time_zone: Option<String>,
    /// The vendor's account identifier (Comm100 `site_id`, Vonage `account_key`).
    pub account_id: Option<String>,
    /// The three fields as Avro binary.
    avro: Vec<u8>,
}

impl Default for RecordContext {
    /// A source ccdc knows nothing about (e.g. an outbox entry of a source since removed from
    /// the configuration): the version only.
    fn default() -> Self {
        RecordContext::new(None, None)
    }
}

impl RecordContext {
    pub fn new(source_time_zone: Option<String>, account_id: Option<String>) -> Self {
        let mut avro = Vec::with_capacity(64);
        for v in [
            source_time_zone.as_deref(),
            Some(CCDC_VERSION),
            account_id.as_deref(),
        ] {
            opt_string(&mut avro, v);
        }
        RecordContext {
            source_time_zone,
            account_id,
            avro,
        }
    }

    /// The context fields as Avro binary, to append to a core datum.
    pub fn avro(&self) -> &[u8] {
        &self.avro
    }
}

/// `["null", "string"]` in Avro binary: the branch index, then the string (zig-zag length, bytes).
fn opt_string(out: &mut Vec<u8>, v: Option<&str>) {
    let Some(s) = v else {
        out.push(0);
        return;
    };
    out.push(2);
    let mut z = (s.len() as u64) << 1;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
    out.extend_from_slice(s.as_bytes());
}

/// `text` (a record schema) without its trailing context fields, and whether it had them. A schema
/// without them is left as it is (its records get no context).
pub(super) fn core_schema_text(stream: Stream, text: &str) -> Result<(String, bool), AvroError> {
    let bad = |reason: String| AvroError::Schema { stream, reason };
    let mut v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let fields = v
        .get_mut("fields")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| bad("a record schema has `fields`".into()))?;
    let names: Vec<Option<&str>> = fields
        .iter()
        .rev()
        .take(CONTEXT_FIELDS.len())
        .map(|f| f.get("name").and_then(Value::as_str))
        .collect();
    let has = names
        .iter()
        .rev()
        .copied()
        .eq(CONTEXT_FIELDS.iter().map(|n| Some(*n)));
    if !has {
        return Ok((text.to_string(), false));
    }
    fields.truncate(fields.len() - CONTEXT_FIELDS.len());
    Ok((v.to_string(), true))
}

/// The JSON encoder's shape of an event: its fields and, when its schema has them, the context's.
pub struct ContextView<'a> {
    pub event: &'a Event,
    pub context: Option<&'a RecordContext>,
}

impl Serialize for ContextView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct With<'a> {
            #[serde(flatten)]
            event: WireView<'a>,
            source_time_zone: Option<&'a str>,
            ccdc_version: &'a str,
            account_id: Option<&'a str>,
        }
        match self.context {
            None => WireView(self.event).serialize(s),
            Some(c) => With {
                event: WireView(self.event),
                source_time_zone: c.source_time_zone.as_deref(),
                ccdc_version: CCDC_VERSION,
                account_id: c.account_id.as_deref(),
            }
            .serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_of_a_schema_drops_exactly_the_trailing_context_fields() {
        let full = r#"{"type": "record", "name": "R", "fields": [
            {"name": "a", "type": "long"},
            {"name": "source_time_zone", "type": ["null", "string"], "default": null},
            {"name": "ccdc_version", "type": ["null", "string"], "default": null},
            {"name": "account_id", "type": ["null", "string"], "default": null}]}"#;
        let (core, has) = core_schema_text(Stream::Heartbeat, full).unwrap();
        assert!(has);
        let v: Value = serde_json::from_str(&core).unwrap();
        assert_eq!(v["fields"].as_array().unwrap().len(), 1);
        // Elsewhere than at the end, or only some of them: not a context.
        let other = r#"{"type": "record", "name": "R", "fields": [
            {"name": "ccdc_version", "type": "string"}, {"name": "a", "type": "long"}]}"#;
        assert_eq!(
            core_schema_text(Stream::Heartbeat, other).unwrap(),
            (other.to_string(), false)
        );
    }

    #[test]
    fn the_context_is_three_optional_strings_in_avro_binary() {
        let c = RecordContext::new(Some("America/Bogota".into()), None);
        let mut want = vec![2, 28];
        want.extend_from_slice(b"America/Bogota");
        want.push(2);
        want.push((CCDC_VERSION.len() * 2) as u8);
        want.extend_from_slice(CCDC_VERSION.as_bytes());
        want.push(0);
        assert_eq!(c.avro(), want.as_slice());
        // A 200-byte value needs a two-byte length.
        let long = RecordContext::new(None, Some("x".repeat(200)));
        assert_eq!(
            &long.avro()[long.avro().len() - 203..][..3],
            &[2, 0x90, 0x03]
        );
    }
}
