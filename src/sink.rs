//! Where encoded records go: the [`EventSink`] trait, the acknowledgement queue every sink reports
//! on, a stdout sink (JSON lines, the demo's embedded default) and an in-memory sink for tests. The
//! Kafka sink is [`crate::kafka::KafkaSink`]; records are made by [`crate::encode`].

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A record ready for the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct OutRecord {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
    /// The record's Kafka timestamp (CreateTime, UTC ms): the event's own time
    /// ([`crate::event::Event::event_time_ms`]), however late the record is sent. `None`: the
    /// producer stamps it when it is handed over.
    pub timestamp_ms: Option<i64>,
}

impl OutRecord {
    /// The value of header `name`, if the record has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// Delivery failed but may succeed later (broker down, timeout): keep the entry and retry.
    #[error("delivery failed (retryable): {0}")]
    Retryable(String),
    /// The producer is unusable (e.g. a fatal idempotence error): replace it, then retry.
    #[error("delivery failed (fatal): {0}")]
    Fatal(String),
    /// This record can never be delivered (too large for the broker, invalid): the producer is
    /// fine. The publisher sends it to the dead-letter topic instead.
    #[error("record refused for good: {0}")]
    Rejected(String),
}

impl SinkError {
    /// Retryable errors resend the same records to the same producer; fatal ones replace the
    /// producer first ([`EventSink::recover`]); a rejected record is never sent again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Retryable(_))
    }
}

/// How one handed-over record ended: the id it was sent under, and the outcome.
#[derive(Debug, Clone)]
pub struct Ack {
    pub id: u64,
    pub result: Result<(), SinkError>,
}

/// The acknowledgements a sink reports, drained in batches by its consumer (the publisher). Per
/// record this is a push under an uncontended lock, not a future and a channel per record: at
/// hundreds of thousands of records per second those were a third of librdkafka's own cost.
#[derive(Default)]
pub struct Acks {
    queue: Mutex<Vec<Ack>>,
    ready: tokio::sync::Notify,
}

impl Acks {
    pub fn push(&self, ack: Ack) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ack);
        self.ready.notify_one();
    }

    /// Moves every acknowledgement reported so far into `into`.
    pub fn drain_into(&self, into: &mut Vec<Ack>) {
        into.append(&mut self.queue.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Resolves after a push since the previous wait (a push before the wait counts): drain then.
    pub async fn wait(&self) {
        self.ready.notified().await
    }
}

pub enum SendError {
    /// The local queue is full: back-pressure, wait for deliveries and retry with the same record.
    QueueFull(OutRecord),
    Failed(SinkError),
}

pub trait EventSink: Send + Sync {
    /// Hand a record over under `id`. Its outcome is reported exactly once on [`EventSink::acks`];
    /// a record refused here (an `Err`) is not reported there.
    fn send(&self, id: u64, record: OutRecord) -> Result<(), SendError>;
    /// Where this sink reports the outcome of every record it took.
    fn acks(&self) -> &Acks;
    /// Wait until everything handed over is delivered, at most `timeout`.
    fn flush(&self, timeout: Duration) -> Result<(), SinkError>;
    /// After a failed delivery round: make the sink usable again if it is stuck (e.g. a new
    /// producer after a fatal error). Records not acknowledged stay in the outbox and are re-sent
    /// by the caller.
    fn recover(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Prints each payload as one line on stdout; acknowledged once written.
#[derive(Default)]
pub struct StdoutSink {
    acks: Acks,
}

impl EventSink for StdoutSink {
    fn send(&self, id: u64, record: OutRecord) -> Result<(), SendError> {
        let mut out = std::io::stdout().lock();
        let result = out
            .write_all(&record.payload)
            .and_then(|_| out.write_all(b"\n"))
            .and_then(|_| out.flush())
            .map_err(|e| SinkError::Retryable(format!("stdout: {e}")));
        self.acks.push(Ack { id, result });
        Ok(())
    }
    fn acks(&self) -> &Acks {
        &self.acks
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
    acks: Arc<Acks>,
}

#[derive(Default)]
struct MemSinkInner {
    delivered: Vec<OutRecord>,
    fail_next: usize,
    queue_full_next: usize,
    sends: usize,
    /// Refuse records with a larger payload when they are handed over (as librdkafka checks
    /// `message.max.bytes`).
    max_payload: Option<usize>,
    /// Refuse every record to these topics when it is delivered (as a broker would).
    refused_topics: Vec<String>,
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
    /// Refuse (for good) records whose payload is over `n` bytes, at hand-over.
    pub fn reject_larger_than(&self, n: usize) {
        self.lock().max_payload = Some(n);
    }
    /// Refuse (for good) every record to `topic`, on delivery.
    pub fn refuse_topic(&self, topic: &str) {
        self.lock().refused_topics.push(topic.to_string());
    }
}

impl EventSink for MemorySink {
    fn send(&self, id: u64, record: OutRecord) -> Result<(), SendError> {
        let mut g = self.lock();
        g.sends += 1;
        if g.queue_full_next > 0 {
            g.queue_full_next -= 1;
            return Err(SendError::QueueFull(record));
        }
        if g.max_payload.is_some_and(|max| record.payload.len() > max) {
            return Err(SendError::Failed(SinkError::Rejected(format!(
                "message size too large ({} bytes)",
                record.payload.len()
            ))));
        }
        let result = if g.refused_topics.contains(&record.topic) {
            Err(SinkError::Rejected("refused by the broker".into()))
        } else if g.fail_next > 0 {
            g.fail_next -= 1;
            Err(SinkError::Retryable("injected failure".into()))
        } else {
            g.delivered.push(record);
            Ok(())
        };
        drop(g);
        self.acks.push(Ack { id, result });
        Ok(())
    }
    fn acks(&self) -> &Acks {
        &self.acks
    }
    fn flush(&self, _timeout: Duration) -> Result<(), SinkError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn acks_pushed_before_the_wait_are_not_missed_and_drain_in_order() {
        let acks = Acks::default();
        acks.push(Ack {
            id: 1,
            result: Ok(()),
        });
        acks.push(Ack {
            id: 2,
            result: Err(SinkError::Retryable("x".into())),
        });
        tokio::time::timeout(Duration::from_secs(5), acks.wait())
            .await
            .expect("a push before the wait wakes it");
        let mut got = Vec::new();
        acks.drain_into(&mut got);
        assert_eq!(got.iter().map(|a| a.id).collect::<Vec<_>>(), vec![1, 2]);
        assert!(got[1].result.is_err());
        acks.drain_into(&mut got);
        assert_eq!(got.len(), 2, "drained once");
    }

    #[test]
    fn memory_sink_reports_each_accepted_record_once_and_none_it_refused() {
        let sink = MemorySink::default();
        sink.queue_full_next(1);
        sink.fail_next(1);
        let rec = || OutRecord {
            topic: "t".into(),
            key: "k".into(),
            payload: vec![1],
            headers: vec![],
            timestamp_ms: None,
        };
        assert!(matches!(sink.send(1, rec()), Err(SendError::QueueFull(_))));
        sink.send(2, rec()).ok().unwrap();
        sink.send(3, rec()).ok().unwrap();
        let mut got = Vec::new();
        sink.acks().drain_into(&mut got);
        let ids: Vec<(u64, bool)> = got.iter().map(|a| (a.id, a.result.is_ok())).collect();
        assert_eq!(ids, vec![(2, false), (3, true)]);
    }
}
