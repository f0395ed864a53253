//! Records from outbox events: the [`RecordEncoder`] trait, Avro in the Confluent wire format
//! (schema ids resolved from the registry beforehand) and JSON (the demo's stdout output). Each
//! record goes to its stream's topic, keyed by [`Event::key`], stamped with the event's own time
//! ([`Event::event_time_ms`]), with the headers `kafka.record_headers` asks for ([`headers`]).

use std::collections::HashMap;

use crate::avro::{AvroError, ContextView, RecordContext, StreamEncoder};
use crate::config::{RecordHeaders, SourceConfig, TopicsConfig};
use crate::event::{Event, Stream};
use crate::sink::OutRecord;

/// Turns an outbox event into a record.
pub trait RecordEncoder: Send + Sync {
    fn encode(&self, event: &Event) -> Result<OutRecord, AvroError>;
    /// The topic `event` goes to.
    fn topic(&self, event: &Event) -> String;
}

/// `content-type` of Confluent-framed Avro values.
pub const AVRO_CONTENT_TYPE: &str = "application/avro";
/// `content-type` of the JSON encoder's values.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// The headers of an event's record: see [`RecordHeaders`]. `content_type` is the payload's media
/// type (CloudEvents `datacontenttype`).
pub fn headers(
    event: &Event,
    mode: RecordHeaders,
    content_type: &'static str,
) -> Vec<(&'static str, String)> {
    match mode {
        RecordHeaders::None => Vec::new(),
        RecordHeaders::Minimal => vec![
            ("ccdc.event_id", event.event_id().to_string()),
            ("ccdc.event_type", event.type_name().to_string()),
        ],
        RecordHeaders::CloudEvents => cloudevents(event, content_type),
    }
}

/// The CloudEvents Kafka protocol binding, binary mode: every attribute a `ce_` header, the data's
/// media type in `content-type`, the payload as is.
fn cloudevents(event: &Event, content_type: &'static str) -> Vec<(&'static str, String)> {
    let mut h = Vec::with_capacity(7);
    h.push(("ce_specversion", "1.0".to_string()));
    h.push(("ce_id", event.event_id().to_string()));
    h.push((
        "ce_source",
        cloudevents_source(event.vendor(), event.source()),
    ));
    h.push(("ce_type", event.cloudevents_type().to_string()));
    if let Some(time) = rfc3339_ms(event.event_time_ms()) {
        h.push(("ce_time", time));
    }
    if let Some(subject) = event.subject().filter(|s| !s.is_empty()) {
        h.push(("ce_subject", subject.to_string()));
    }
    h.push(("content-type", content_type.to_string()));
    h
}

/// CloudEvents `source`, an absolute URI naming the vendor and the configured source:
/// `ccdc://<vendor>/<source>`, e.g. `ccdc://wolkvox/ops-bogota`. Source names are
/// `[A-Za-z0-9._-]` (validated), which URIs take as is; any other byte is percent-encoded.
pub fn cloudevents_source(vendor: &str, source: &str) -> String {
    let mut uri = String::with_capacity(8 + vendor.len() + source.len());
    uri.push_str("ccdc://");
    percent_encode(&mut uri, vendor);
    uri.push('/');
    percent_encode(&mut uri, source);
    uri
}

/// RFC 3986 unreserved characters as they are, every other byte as `%XX`.
fn percent_encode(out: &mut String, text: &str) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// `ms` (UTC) as RFC 3339 with milliseconds, e.g. `2026-11-21T15:15:00.000Z`; `None` outside the
/// years RFC 3339 can write (0000–9999). Written by hand: once per record, chrono's formatter was
/// most of the CloudEvents headers' cost in ccdc (BENCHMARKS.md, P2).
pub fn rfc3339_ms(ms: i64) -> Option<String> {
    let (secs, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let mut out = String::with_capacity(24);
    for (v, width, then) in [
        (year, 4, '-'),
        (month, 2, '-'),
        (day, 2, 'T'),
        (day_secs / 3600, 2, ':'),
        (day_secs % 3600 / 60, 2, ':'),
        (day_secs % 60, 2, '.'),
        (milli, 3, 'Z'),
    ] {
        // Each value is non-negative and fits its width (year 0–9999 above).
        let mut div = 10_i64.pow(width - 1);
        while div > 0 {
            out.push(char::from(b'0' + (v / div % 10) as u8));
            div /= 10;
        }
        out.push(then);
    }
    Some(out)
}

/// (year, month, day) of the proleptic Gregorian calendar for a count of days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`). `days` comes from an `i64` of milliseconds, so it is
/// within ±1.1 × 10¹¹ and nothing here can overflow.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The record timestamp of `event`: its event time, when it is one Kafka takes (after 1970; a
/// zero or negative one is left to the producer, which stamps the hand-over time).
fn record_timestamp(event: &Event) -> Option<i64> {
    Some(event.event_time_ms()).filter(|t| *t > 0)
}

/// Each configured source's [`RecordContext`], by source name; a source not configured (an old
/// outbox entry) gets the default (the ccdc version only).
#[derive(Debug, Clone, Default)]
pub struct SourceContexts(HashMap<String, RecordContext>);

impl SourceContexts {
    /// The time zone and account id of each source: Wolkvox its `time_zone` (its API has no
    /// account id), Comm100 its `time_zone` and `site_id`, Vonage its `account_key` (its times
    /// carry their offset: no zone).
    pub fn from_config(sources: &[SourceConfig]) -> Self {
        let of = |s: &SourceConfig| match s {
            SourceConfig::Wolkvox(c) => RecordContext::new(Some(c.time_zone.clone()), None),
            SourceConfig::Comm100(c) => {
                RecordContext::new(Some(c.time_zone.clone()), c.site_id.clone())
            }
            SourceConfig::Vonage(c) => RecordContext::new(None, Some(c.account_key.clone())),
        };
        SourceContexts(
            sources
                .iter()
                .map(|s| (s.name().to_string(), of(s)))
                .collect(),
        )
    }

    pub fn get(&self, source: &str) -> &RecordContext {
        static UNKNOWN: std::sync::OnceLock<RecordContext> = std::sync::OnceLock::new();
        self.0
            .get(source)
            .unwrap_or_else(|| UNKNOWN.get_or_init(RecordContext::default))
    }
}

/// Avro in the Confluent wire format; schema ids resolved from the registry beforehand.
pub struct AvroEncoder {
    topics: TopicsConfig,
    encoders: HashMap<Stream, StreamEncoder>,
    record_headers: RecordHeaders,
    contexts: SourceContexts,
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
            record_headers: RecordHeaders::default(),
            contexts: SourceContexts::default(),
        })
    }

    /// `kafka.record_headers` (CloudEvents by default).
    pub fn with_record_headers(mut self, mode: RecordHeaders) -> Self {
        self.record_headers = mode;
        self
    }

    /// The context each source's records carry.
    pub fn with_contexts(mut self, contexts: SourceContexts) -> Self {
        self.contexts = contexts;
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
            payload: enc.encode_event(event, self.contexts.get(event.source()))?,
            headers: headers(event, self.record_headers, AVRO_CONTENT_TYPE),
            timestamp_ms: record_timestamp(event),
        })
    }
    fn topic(&self, event: &Event) -> String {
        self.topics.for_stream(event.stream()).to_string()
    }
}

/// JSON (one object per event, the same field names as the Avro schema, context included).
pub struct JsonEncoder {
    topics: TopicsConfig,
    record_headers: RecordHeaders,
    contexts: SourceContexts,
}

impl JsonEncoder {
    pub fn new(topics: TopicsConfig) -> Self {
        JsonEncoder {
            topics,
            record_headers: RecordHeaders::default(),
            contexts: SourceContexts::default(),
        }
    }

    /// `kafka.record_headers` (CloudEvents by default).
    pub fn with_record_headers(mut self, mode: RecordHeaders) -> Self {
        self.record_headers = mode;
        self
    }

    /// The context each source's records carry.
    pub fn with_contexts(mut self, contexts: SourceContexts) -> Self {
        self.contexts = contexts;
        self
    }
}

impl RecordEncoder for JsonEncoder {
    fn encode(&self, event: &Event) -> Result<OutRecord, AvroError> {
        let stream = event.stream();
        let view = ContextView {
            event,
            context: crate::avro::has_context(stream)?.then(|| self.contexts.get(event.source())),
        };
        let payload = serde_json::to_vec(&view).map_err(|e| AvroError::Encode {
            stream,
            event_id: event.event_id().into(),
            reason: e.to_string(),
        })?;
        Ok(OutRecord {
            topic: self.topics.for_stream(event.stream()).to_string(),
            key: event.key(),
            payload,
            headers: headers(event, self.record_headers, JSON_CONTENT_TYPE),
            timestamp_ms: record_timestamp(event),
        })
    }
    fn topic(&self, event: &Event) -> String {
        self.topics.for_stream(event.stream()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `STARTED` event observed at 2026-11-21T15:15:00.123Z.
    fn event() -> Event {
        let mut e = crate::event::started_for_tests("00000000-0000-5000-8000-000000000001", "c1");
        if let Event::Interaction(i) = &mut e {
            i.observed_at = 1_795_274_100_123;
        }
        e
    }

    fn avro(mode: RecordHeaders) -> OutRecord {
        AvroEncoder::new(TopicsConfig::default(), &[(Stream::Interactions, 7)])
            .unwrap()
            .with_record_headers(mode)
            .encode(&event())
            .unwrap()
    }

    #[test]
    fn cloudevents_headers_are_the_binary_mode_binding_of_the_event() {
        let r = avro(RecordHeaders::CloudEvents);
        assert_eq!(
            r.headers,
            vec![
                ("ce_specversion", "1.0".into()),
                ("ce_id", "00000000-0000-5000-8000-000000000001".into()),
                ("ce_source", "ccdc://wolkvox/s".into()),
                ("ce_type", "io.ccdc.interaction.started.v1".into()),
                ("ce_time", "2026-11-21T15:15:00.123Z".into()),
                ("ce_subject", "c1".into()),
                ("content-type", "application/avro".into()),
            ]
        );
        let json = JsonEncoder::new(TopicsConfig::default())
            .encode(&event())
            .unwrap();
        assert_eq!(json.header("content-type"), Some("application/json"));
        assert_eq!(json.header("ce_id"), r.header("ce_id"));
    }

    #[test]
    fn every_mode_stamps_the_event_time_and_changes_only_the_headers() {
        let (ce, min, none) = (
            avro(RecordHeaders::CloudEvents),
            avro(RecordHeaders::Minimal),
            avro(RecordHeaders::None),
        );
        assert_eq!(
            min.headers,
            vec![
                (
                    "ccdc.event_id",
                    "00000000-0000-5000-8000-000000000001".into()
                ),
                ("ccdc.event_type", "interaction-started".into()),
            ]
        );
        assert!(none.headers.is_empty());
        for r in [&ce, &min, &none] {
            assert_eq!(r.timestamp_ms, Some(1_795_274_100_123));
            assert_eq!(
                (&r.topic, &r.key, &r.payload),
                (&none.topic, &none.key, &none.payload)
            );
        }
    }

    #[test]
    fn a_time_kafka_cannot_take_is_left_to_the_producer_and_out_of_the_headers() {
        let mut e = event();
        if let Event::Interaction(i) = &mut e {
            i.observed_at = i64::MAX;
        }
        let r = JsonEncoder::new(TopicsConfig::default())
            .encode(&e)
            .unwrap();
        assert_eq!(r.timestamp_ms, Some(i64::MAX), "a real (if absurd) time");
        assert_eq!(r.header("ce_time"), None, "beyond RFC 3339's years");
        if let Event::Interaction(i) = &mut e {
            i.observed_at = -5;
        }
        let r = JsonEncoder::new(TopicsConfig::default())
            .encode(&e)
            .unwrap();
        assert_eq!(r.timestamp_ms, None);
        assert_eq!(r.header("ce_time"), Some("1969-12-31T23:59:59.995Z"));
    }

    #[test]
    fn event_times_are_written_as_chrono_writes_rfc_3339() {
        let chrono = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        };
        // Around the epoch, leap days and centuries, and a spread of times up to year 9999.
        let mut times = vec![
            0,
            -1,
            951_782_400_000,     // 2000-02-29
            4_107_542_399_999,   // 2100-02-28T23:59:59.999
            -62_167_219_200_000, // 0000-01-01
            253_402_300_799_999, // 9999-12-31T23:59:59.999
        ];
        times.extend((0..2_000).map(|i| -62_167_219_200_000 + i * 157_768_948_799));
        for ms in times {
            assert_eq!(rfc3339_ms(ms), chrono(ms), "{ms}");
        }
        assert_eq!(rfc3339_ms(253_402_300_800_000), None, "year 10000");
        assert_eq!(rfc3339_ms(-62_167_219_200_001), None, "year -1");
        assert_eq!(rfc3339_ms(i64::MIN), None);
    }

    #[test]
    fn the_source_uri_is_valid_whatever_the_names() {
        assert_eq!(
            cloudevents_source("comm100", "ops-a.b_1"),
            "ccdc://comm100/ops-a.b_1"
        );
        assert_eq!(cloudevents_source("x y", "a/é"), "ccdc://x%20y/a%2F%C3%A9");
    }
}
