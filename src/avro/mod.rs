//! Avro schemas (compiled in from `schemas/`), serde-path encoding and the Confluent wire format:
//! `0x00`, the schema id as a 4-byte big-endian integer, then the Avro binary datum. Each datum
//! ends with its source's [`RecordContext`] ([`context`]).

pub mod context;
mod direct;

pub use context::{ContextView, RecordContext, CCDC_VERSION, CONTEXT_FIELDS};

use apache_avro::writer::datum::GenericDatumWriter;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use apache_avro::Schema;
use serde::Serialize;

use crate::event::report::ReportRow;
use crate::event::{Event, MetricsRecord, MetricsValues, ReportRecord, Stream};

/// The schema text of each stream, exactly as registered.
pub fn schema_text(stream: Stream) -> &'static str {
    match stream {
        Stream::Interactions => include_str!("../../schemas/interaction-event.avsc"),
        Stream::AgentStatus => include_str!("../../schemas/agent-status-event.avsc"),
        Stream::Comm100Queue => include_str!("../../schemas/comm100-queue.avsc"),
        Stream::Comm100Today => include_str!("../../schemas/comm100-today.avsc"),
        Stream::Comm100RightNow => include_str!("../../schemas/comm100-right-now.avsc"),
        Stream::WolkvoxChat1 => include_str!("../../schemas/wolkvox-chat_1.avsc"),
        Stream::WolkvoxDiagram9 => include_str!("../../schemas/wolkvox-diagram_9.avsc"),
        Stream::DeadLetter => include_str!("../../schemas/dead-letter.avsc"),
        Stream::Heartbeat => include_str!("../../schemas/heartbeat.avsc"),
        Stream::InteractionsReconciled => {
            include_str!("../../schemas/interaction-reconciled.avsc")
        }
        Stream::AgentState => include_str!("../../schemas/agent-state.avsc"),
    }
}

/// Every stream with a schema.
pub const STREAMS: &[Stream] = &[
    Stream::Interactions,
    Stream::AgentStatus,
    Stream::Comm100Queue,
    Stream::Comm100Today,
    Stream::Comm100RightNow,
    Stream::WolkvoxChat1,
    Stream::WolkvoxDiagram9,
    Stream::DeadLetter,
    Stream::Heartbeat,
    Stream::InteractionsReconciled,
    Stream::AgentState,
];

/// The Avro shape of a metrics record: the common header and the endpoint's values under `metrics`.
#[derive(Serialize)]
struct MetricsOut<'a, T: Serialize> {
    event_id: &'a str,
    source: &'a str,
    vendor: &'a str,
    observed_at: i64,
    department_id: Option<&'a str>,
    metrics: &'a T,
}

fn metrics_out<'a, T: Serialize>(m: &'a MetricsRecord, metrics: &'a T) -> MetricsOut<'a, T> {
    MetricsOut {
        event_id: &m.event_id,
        source: &m.source,
        vendor: &m.vendor,
        observed_at: m.observed_at,
        department_id: m.department_id.as_deref(),
        metrics,
    }
}

/// The Avro shape of a report row: the pull's header and the typed row under `row`.
#[derive(Serialize)]
struct ReportOut<'a, T: Serialize> {
    event_id: &'a str,
    source: &'a str,
    vendor: &'a str,
    identity: &'a str,
    row_hash: &'a str,
    window_start: i64,
    window_end: i64,
    window_start_raw: &'a str,
    window_end_raw: &'a str,
    pulled_at: i64,
    row: &'a T,
}

fn report_out<'a, T: Serialize>(r: &'a ReportRecord, row: &'a T) -> ReportOut<'a, T> {
    ReportOut {
        event_id: &r.event_id,
        source: &r.source,
        vendor: &r.vendor,
        identity: &r.identity,
        row_hash: &r.row_hash,
        window_start: r.window_start,
        window_end: r.window_end,
        window_start_raw: &r.window_start_raw,
        window_end_raw: &r.window_end_raw,
        pulled_at: r.pulled_at,
        row,
    }
}

/// The published shape of an event: the same for Avro (via the stream's schema) and for JSON.
pub struct WireView<'a>(pub &'a Event);

impl Serialize for WireView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Event::Interaction(e) => e.serialize(s),
            Event::AgentStatus(e) => e.serialize(s),
            Event::Metrics(m) => match &m.values {
                MetricsValues::Comm100Queue(v) => metrics_out(m, v).serialize(s),
                MetricsValues::Comm100Today(v) => metrics_out(m, v).serialize(s),
                MetricsValues::Comm100RightNow(v) => metrics_out(m, v).serialize(s),
            },
            Event::ReportRow(r) => match &r.row {
                ReportRow::Chat1(row) => report_out(r, row).serialize(s),
                ReportRow::Diagram9(row) => report_out(r, row).serialize(s),
            },
            Event::DeadLetter(d) => d.serialize(s),
            Event::Heartbeat(h) => h.serialize(s),
            Event::Reconciled(r) => r.serialize(s),
            Event::AgentState(a) => a.serialize(s),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    #[error("schema for {stream:?} does not parse: {reason}")]
    Schema { stream: Stream, reason: String },
    #[error("cannot encode event {event_id} with the {stream:?} schema: {reason}")]
    Encode {
        stream: Stream,
        event_id: String,
        reason: String,
    },
}

/// Parse a stream's schema.
pub fn parse_schema(stream: Stream) -> Result<Schema, AvroError> {
    Schema::parse_str(schema_text(stream)).map_err(|e| AvroError::Schema {
        stream,
        reason: e.to_string(),
    })
}

/// Prefix of the Confluent wire format.
pub fn wire_header(schema_id: u32) -> [u8; 5] {
    let mut h = [0u8; 5];
    h[1..].copy_from_slice(&schema_id.to_be_bytes());
    h
}

/// Each stream's core schema (without the trailing context fields) and whether the stream has
/// them, parsed once per process and kept for its lifetime, so encoders can hold a ready writer
/// (building one resolves the whole schema: far too slow to do per record).
fn static_schema(stream: Stream) -> Result<(&'static Schema, bool), AvroError> {
    type Cache = Mutex<HashMap<Stream, (&'static Schema, bool)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(s) = cache.get(&stream) {
        return Ok(*s);
    }
    let (core, has_context) = context::core_schema_text(stream, schema_text(stream))?;
    let schema = Schema::parse_str(&core).map_err(|e| AvroError::Schema {
        stream,
        reason: e.to_string(),
    })?;
    let entry = (&*Box::leak(Box::new(schema)), has_context);
    cache.insert(stream, entry);
    Ok(entry)
}

/// Whether `stream`'s records end with the [`RecordContext`] fields.
pub fn has_context(stream: Stream) -> Result<bool, AvroError> {
    static_schema(stream).map(|(_, has)| has)
}

/// One stream's schema and its registry id; encodes events into framed payloads.
pub struct StreamEncoder {
    stream: Stream,
    schema_id: u32,
    /// Writes the core schema: every field but the context's.
    writer: GenericDatumWriter<'static>,
    /// Report rows are written by [`direct`] (verified against `writer` at construction).
    direct: bool,
    /// The schema ends with the context fields: append them.
    context: bool,
}

impl StreamEncoder {
    pub fn new(stream: Stream, schema_id: u32) -> Result<Self, AvroError> {
        let (schema, context) = static_schema(stream)?;
        let writer = GenericDatumWriter::builder(schema)
            .human_readable(false)
            .build()
            .map_err(|e| AvroError::Schema {
                stream,
                reason: e.to_string(),
            })?;
        let mut enc = StreamEncoder {
            stream,
            schema_id,
            writer,
            direct: false,
            context,
        };
        enc.direct = match stream {
            Stream::WolkvoxChat1 | Stream::WolkvoxDiagram9 => enc.direct_agrees(),
            _ => false,
        };
        Ok(enc)
    }

    /// Whether the direct writer produces the serde path's exact bytes for the probe records.
    fn direct_agrees(&self) -> bool {
        let probes = direct::probes(self.stream == Stream::WolkvoxDiagram9);
        let agrees = probes.into_iter().all(|p| {
            let mut fast = Vec::new();
            direct::report(&mut fast, &p);
            let mut slow = Vec::new();
            let event = Event::ReportRow(Box::new(p));
            self.writer.write_ser(&mut slow, &WireView(&event)).is_ok() && slow == fast
        });
        if !agrees {
            tracing::warn!(stream = ?self.stream, "the direct Avro writer disagrees with the schema; using the generic serde path");
        }
        agrees
    }

    pub fn schema_id(&self) -> u32 {
        self.schema_id
    }

    /// Encode `value` (whose serde shape matches the core schema) into a Confluent-framed payload,
    /// without the context fields.
    pub fn encode<T: Serialize>(&self, event_id: &str, value: &T) -> Result<Vec<u8>, AvroError> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(&wire_header(self.schema_id));
        self.writer
            .write_ser(&mut out, value)
            .map_err(|e| AvroError::Encode {
                stream: self.stream,
                event_id: event_id.into(),
                reason: e.to_string(),
            })?;
        Ok(out)
    }

    /// `event`'s record from its source's `context`: the Confluent framing, then the full
    /// schema's datum.
    pub fn encode_event(
        &self,
        event: &Event,
        context: &RecordContext,
    ) -> Result<Vec<u8>, AvroError> {
        let mut out = if let (true, Event::ReportRow(r)) = (self.direct, event) {
            let mut out = Vec::with_capacity(640);
            out.extend_from_slice(&wire_header(self.schema_id));
            direct::report(&mut out, r);
            out
        } else {
            self.encode(event.event_id(), &WireView(event))?
        };
        if self.context {
            out.extend_from_slice(context.avro());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{InteractionEvent, InteractionEventType};

    fn sample() -> InteractionEvent {
        InteractionEvent {
            event_id: "2b1f5c3e-0000-5000-8000-000000000001".into(),
            event_type: InteractionEventType::Ended,
            source: "ops".into(),
            vendor: "wolkvox".into(),
            agent_id: "1001".into(),
            interaction_id: "c1".into(),
            initial: false,
            transfer: true,
            transfer_agent_id: Some("1002".into()),
            observed_at: 1_795_274_100_000,
            previous_observed_at: Some(1_795_274_000_000),
            vendor_timestamp: None,
            vendor_timestamp_raw: Some("2026-11-21 10:15:00".into()),
            subject: Some("Hola".into()),
            from_name: None,
            latest_only: false,
            started_at: None,
            started_at_raw: Some("2026-11-21 10:15:00".into()),
            first_observed_at: Some(1_795_273_900_000),
            ended_after: Some(1_795_274_000_000),
            ended_before: Some(1_795_274_100_000),
            duration_ms: Some(150_000),
            duration_min_ms: Some(100_000),
            duration_max_ms: None,
            derivation: crate::event::Derivation::SnapshotDiff,
        }
    }

    #[test]
    fn the_direct_report_writer_matches_the_serde_path_byte_for_byte() {
        for (stream, diagram) in [
            (Stream::WolkvoxChat1, false),
            (Stream::WolkvoxDiagram9, true),
        ] {
            let enc = StreamEncoder::new(stream, 9).unwrap();
            assert!(enc.direct, "{stream:?}: the self-check passed");
            let mut generic = StreamEncoder::new(stream, 9).unwrap();
            generic.direct = false;
            let ctx = RecordContext::new(Some("America/Bogota".into()), None);
            // Six mixes of empty and set fields (none, all, alternating, in fours, one irregular):
            // field i comes from the full or the empty probe depending on bit i of the mask.
            let [full, empty] = <[ReportRecord; 2]>::try_from(direct::probes(diagram)).unwrap();
            let (fj, ej) = (
                serde_json::to_value(&full.row).unwrap(),
                serde_json::to_value(&empty.row).unwrap(),
            );
            let keys: Vec<String> = fj.as_object().unwrap().keys().cloned().collect();
            for mask in [0u64, u64::MAX, 0x5555_5555, 0xaaaa_aaaa, 0x0f0f_0f0f, 12345] {
                let mut row = ej.clone();
                for (i, k) in keys.iter().enumerate() {
                    if mask >> (i % 64) & 1 == 1 {
                        row[k] = fj[k].clone();
                    }
                }
                let mut rec = full.clone();
                rec.row = serde_json::from_value(row).unwrap();
                let event = Event::ReportRow(Box::new(rec));
                let fast = enc.encode_event(&event, &ctx).unwrap();
                let slow = generic.encode_event(&event, &ctx).unwrap();
                assert_eq!(fast, slow, "{stream:?} mask {mask:x}");
            }
        }
    }

    #[test]
    fn every_schema_parses() {
        for s in STREAMS {
            parse_schema(*s).unwrap();
        }
    }

    #[test]
    fn wire_format_is_magic_byte_then_big_endian_id() {
        let enc = StreamEncoder::new(Stream::Interactions, 0x0102_0304).unwrap();
        let bytes = enc
            .encode_event(&Event::Interaction(sample()), &RecordContext::default())
            .unwrap();
        assert_eq!(&bytes[..5], &[0x00, 0x01, 0x02, 0x03, 0x04]);
        // The datum starts with the event_id string: zig-zag length 36 → 72, then the text.
        assert_eq!(bytes[5], 72);
        assert_eq!(&bytes[6..42], sample().event_id.as_bytes());
        // Then the enum index of ENDED (1 → zig-zag 2).
        assert_eq!(bytes[42], 2);
    }

    #[test]
    #[allow(deprecated)] // from_avro_datum is the simplest independent reader for a round trip.
    fn datum_decodes_back_with_the_generic_reader() {
        let enc = StreamEncoder::new(Stream::Interactions, 7).unwrap();
        let ctx = RecordContext::new(Some("America/Bogota".into()), Some("site-9".into()));
        let bytes = enc
            .encode_event(&Event::Interaction(sample()), &ctx)
            .unwrap();
        let schema = parse_schema(Stream::Interactions).unwrap();
        let mut rest = &bytes[5..];
        let value = apache_avro::from_avro_datum(&schema, &mut rest, None).unwrap();
        assert!(rest.is_empty(), "the datum is the whole payload");
        let back: InteractionEvent = apache_avro::from_value(&value).unwrap();
        assert_eq!(back, sample());
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Context {
            source_time_zone: Option<String>,
            ccdc_version: Option<String>,
            account_id: Option<String>,
        }
        let ctx: Context = apache_avro::from_value(&value).unwrap();
        assert_eq!(
            ctx,
            Context {
                source_time_zone: Some("America/Bogota".into()),
                ccdc_version: Some(CCDC_VERSION.into()),
                account_id: Some("site-9".into()),
            }
        );
    }

    #[test]
    fn every_schema_ends_with_the_context_fields() {
        for s in STREAMS {
            assert!(has_context(*s).unwrap(), "{s:?}");
        }
    }
}
