//! Records from outbox events: the [`RecordEncoder`] trait, Avro in the Confluent wire format
//! (schema ids resolved from the registry beforehand) and JSON (the demo's stdout output). Each
//! record goes to its stream's topic, keyed by [`Event::key`], with the `ccdc.*` headers.

use std::collections::HashMap;

use crate::avro::{AvroError, StreamEncoder};
use crate::config::TopicsConfig;
use crate::event::{Event, Stream};
use crate::sink::OutRecord;

/// Turns an outbox event into a record.
pub trait RecordEncoder: Send + Sync {
    fn encode(&self, event: &Event) -> Result<OutRecord, AvroError>;
    /// The topic `event` goes to.
    fn topic(&self, event: &Event) -> String;
}

/// The `ccdc.*` headers of an event's record, when the configuration asks for them.
fn headers(event: &Event, on: bool) -> Vec<(&'static str, String)> {
    if !on {
        return Vec::new();
    }
    vec![
        ("ccdc.event_id", event.event_id().to_string()),
        ("ccdc.event_type", event.type_name().to_string()),
    ]
}

/// Avro in the Confluent wire format; schema ids resolved from the registry beforehand.
pub struct AvroEncoder {
    topics: TopicsConfig,
    encoders: HashMap<Stream, StreamEncoder>,
    record_headers: bool,
}

impl AvroEncoder {
    pub fn new(topics: TopicsConfig, schema_ids: &[(Stream, u32)]) -> Result<Self, AvroError> {
        let encoders = schema_ids
            .iter()
            .map(|(s, id)| StreamEncoder::new(*s, *id).map(|e| (*s, e)))
            .collect::<Result<_, _>>()?;
        Ok(AvroEncoder {
            topics,
            encoders,
            record_headers: true,
        })
    }

    /// `kafka.record_headers`: with `false`, records carry key and payload only.
    pub fn with_record_headers(mut self, on: bool) -> Self {
        self.record_headers = on;
        self
    }
}

impl RecordEncoder for AvroEncoder {
    fn encode(&self, event: &Event) -> Result<OutRecord, AvroError> {
        let stream = event.stream();
        let enc = self
            .encoders
            .get(&stream)
            .ok_or_else(|| AvroError::Encode {
                stream,
                event_id: event.event_id().into(),
                reason: "no schema id resolved for this stream".into(),
            })?;
        Ok(OutRecord {
            topic: self.topics.for_stream(stream).to_string(),
            key: event.key(),
            payload: enc.encode_event(event)?,
            headers: headers(event, self.record_headers),
        })
    }
    fn topic(&self, event: &Event) -> String {
        self.topics.for_stream(event.stream()).to_string()
    }
}

/// JSON (one object per event, the same field names as the Avro schema).
pub struct JsonEncoder {
    pub topics: TopicsConfig,
}

impl RecordEncoder for JsonEncoder {
    fn encode(&self, event: &Event) -> Result<OutRecord, AvroError> {
        let payload =
            serde_json::to_vec(&crate::avro::WireView(event)).map_err(|e| AvroError::Encode {
                stream: event.stream(),
                event_id: event.event_id().into(),
                reason: e.to_string(),
            })?;
        Ok(OutRecord {
            topic: self.topics.for_stream(event.stream()).to_string(),
            key: event.key(),
            payload,
            headers: headers(event, true),
        })
    }
    fn topic(&self, event: &Event) -> String {
        self.topics.for_stream(event.stream()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        crate::event::started_for_tests("00000000-0000-5000-8000-000000000001", "c1")
    }

    #[test]
    fn record_headers_off_leaves_key_and_payload_unchanged() {
        let on = AvroEncoder::new(TopicsConfig::default(), &[(Stream::Interactions, 7)]).unwrap();
        let off = AvroEncoder::new(TopicsConfig::default(), &[(Stream::Interactions, 7)])
            .unwrap()
            .with_record_headers(false);
        let (a, b) = (on.encode(&event()).unwrap(), off.encode(&event()).unwrap());
        assert_eq!(
            a.headers,
            vec![
                (
                    "ccdc.event_id",
                    "00000000-0000-5000-8000-000000000001".into()
                ),
                ("ccdc.event_type", "interaction-started".into()),
            ]
        );
        assert!(b.headers.is_empty());
        assert_eq!((a.topic, a.key, a.payload), (b.topic, b.key, b.payload));
    }
}
