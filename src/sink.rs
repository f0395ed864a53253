//! Where encoded records go: the [`EventSink`] trait with the Kafka implementation (in [`crate::kafka`]),
//! a stdout sink (JSON lines, the demo's embedded default) and an in-memory sink for tests. Also the
//! [`RecordEncoder`]s that turn an outbox [`Event`] into a record: Avro (Confluent framing) or JSON.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::avro::{AvroError, StreamEncoder};
use crate::event::{Event, Stream};

/// A record ready for the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct OutRecord {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// Delivery failed but may succeed later (broker down, timeout): keep the entry and retry.
    #[error("delivery failed (retryable): {0}")]
    Retryable(String),
    /// The producer is unusable (e.g. fatal idempotence error) or the record can never be delivered.
    #[error("delivery failed (fatal): {0}")]
    Fatal(String),
}

/// Resolves when the broker acknowledged (or finally refused) the record.
pub type Delivery = BoxFuture<'static, Result<(), SinkError>>;

pub enum SendError {
    /// The local queue is full: back-pressure, wait for deliveries and retry with the same record.
    QueueFull(OutRecord),
    Failed(SinkError),
}

pub trait EventSink: Send + Sync {
    /// Hand a record over; returns a future for its acknowledgement.
    fn send(&self, record: OutRecord) -> Result<Delivery, SendError>;
    /// Wait until everything handed over is delivered, at most `timeout`.
    fn flush(&self, timeout: Duration) -> Result<(), SinkError>;
    /// After a fatal delivery error: make the sink usable again (e.g. a new producer). Records not
    /// acknowledged stay in the outbox and are re-sent by the caller.
    fn recover(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Turns an outbox event into a record.
pub trait RecordEncoder: Send + Sync {
    fn encode(&self, event: &Event) -> Result<OutRecord, AvroError>;
}

fn headers(event: &Event) -> Vec<(&'static str, String)> {
    vec![
        ("ccdc.event_id", event.event_id().to_string()),
        ("ccdc.event_type", event.type_name().to_string()),
    ]
}

/// Topic of each stream (the configuration's `[topics]`).
pub type Topics = crate::config::TopicsConfig;

impl Topics {
    pub fn for_stream(&self, s: Stream) -> &str {
        match s {
            Stream::Interactions => &self.interactions,
            Stream::AgentStatus => &self.agent_status,
            Stream::Comm100Queue => &self.comm100_queue,
            Stream::Comm100Today => &self.comm100_today,
            Stream::Comm100RightNow => &self.comm100_right_now,
            Stream::WolkvoxChat1 => &self.wolkvox_chat_1,
            Stream::WolkvoxDiagram9 => &self.wolkvox_diagram_9,
            Stream::DeadLetter => &self.dead_letter,
            Stream::Heartbeat => &self.heartbeat,
        }
    }
}

/// Avro in the Confluent wire format; schema ids resolved from the registry beforehand.
pub struct AvroEncoder {
    topics: Topics,
    encoders: HashMap<Stream, StreamEncoder>,
}

impl AvroEncoder {
    pub fn new(topics: Topics, schema_ids: &[(Stream, u32)]) -> Result<Self, AvroError> {
        let encoders = schema_ids
            .iter()
            .map(|(s, id)| StreamEncoder::new(*s, *id).map(|e| (*s, e)))
            .collect::<Result<_, _>>()?;
        Ok(AvroEncoder { topics, encoders })
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
            headers: headers(event),
        })
    }
}

/// JSON (one object per event, the same field names as the Avro schema).
pub struct JsonEncoder {
    pub topics: Topics,
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
            headers: headers(event),
        })
    }
}

/// Prints each payload as one line on stdout; acknowledged once written.
pub struct StdoutSink;

impl EventSink for StdoutSink {
    fn send(&self, record: OutRecord) -> Result<Delivery, SendError> {
        let mut out = std::io::stdout().lock();
        let res = out
            .write_all(&record.payload)
            .and_then(|_| out.write_all(b"\n"))
            .and_then(|_| out.flush())
            .map_err(|e| SinkError::Retryable(format!("stdout: {e}")));
        Ok(futures::future::ready(res).boxed())
    }
    fn flush(&self, _timeout: Duration) -> Result<(), SinkError> {
        std::io::stdout()
            .flush()
            .map_err(|e| SinkError::Retryable(e.to_string()))
    }
}

/// Collects records in memory. `fail_next(n)` makes the next n deliveries fail (retryably);
/// `capacity` makes `send` report QueueFull while that many deliveries are pending.
#[derive(Default, Clone)]
pub struct MemorySink {
    inner: Arc<Mutex<MemSinkInner>>,
}

#[derive(Default)]
struct MemSinkInner {
    delivered: Vec<OutRecord>,
    fail_next: usize,
    queue_full_next: usize,
    sends: usize,
}

impl MemorySink {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemSinkInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn delivered(&self) -> Vec<OutRecord> {
        self.lock().delivered.clone()
    }
    pub fn fail_next(&self, n: usize) {
        self.lock().fail_next = n;
    }
    pub fn queue_full_next(&self, n: usize) {
        self.lock().queue_full_next = n;
    }
    pub fn sends(&self) -> usize {
        self.lock().sends
    }
}

impl EventSink for MemorySink {
    fn send(&self, record: OutRecord) -> Result<Delivery, SendError> {
        let mut g = self.lock();
        g.sends += 1;
        if g.queue_full_next > 0 {
            g.queue_full_next -= 1;
            return Err(SendError::QueueFull(record));
        }
        let res = if g.fail_next > 0 {
            g.fail_next -= 1;
            Err(SinkError::Retryable("injected failure".into()))
        } else {
            g.delivered.push(record);
            Ok(())
        };
        Ok(futures::future::ready(res).boxed())
    }
    fn flush(&self, _timeout: Duration) -> Result<(), SinkError> {
        Ok(())
    }
}
