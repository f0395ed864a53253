//! Drains the outbox into the sink, in outbox order, with many records in flight. An entry is removed
//! only after the sink acknowledged it. On a failed delivery the publisher stops sending, lets the
//! in-flight records settle, waits (jittered back-off) and resends from the oldest unacknowledged
//! entry: a record may be repeated (same event id), never skipped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::event::Event;
use crate::observability::Health;
use crate::sink::{Ack, EventSink, RecordEncoder, SendError, SinkError};
use crate::store::{Store, StoreError};

pub struct Publisher {
    pub store: Arc<dyn Store>,
    pub encoder: Arc<dyn RecordEncoder>,
    pub sink: Arc<dyn EventSink>,
    /// Signalled by pollers after each commit.
    pub notify: Arc<Notify>,
    pub max_in_flight: usize,
    /// Ceiling of the back-off after a failed delivery.
    pub max_backoff: Duration,
    /// Told whether the publisher runs (readiness).
    pub health: Option<Arc<Health>>,
}

/// How the publisher ended.
#[derive(Debug, PartialEq, Eq)]
pub struct PublisherReport {
    pub delivered: u64,
    pub left_in_outbox: usize,
}

const READ_BATCH: usize = 1000;

impl Publisher {
    /// Outbox depth and the age of its oldest entry.
    fn outbox_gauges(&self) -> Result<(), StoreError> {
        metrics::gauge!("ccdc_outbox_depth").set(self.store.outbox_len() as f64);
        let oldest = self
            .store
            .outbox_after(None, 1)?
            .first()
            .and_then(|(_, b)| serde_json::from_slice::<Event>(b).ok())
            .map(|e| e.time_ms());
        let age = oldest.map_or(0.0, |t| {
            (chrono::Utc::now().timestamp_millis() - t).max(0) as f64 / 1000.0
        });
        metrics::gauge!("ccdc_outbox_oldest_age_seconds").set(age);
        Ok(())
    }

    /// Run until `stop` is cancelled *and* the outbox is empty (drain), or until `abort` is cancelled.
    pub async fn run(
        self,
        stop: CancellationToken,
        abort: CancellationToken,
    ) -> Result<PublisherReport, StoreError> {
        // Records handed to the sink and not yet reported on its acks. An ack from an earlier
        // publisher on the same sink only lowers this early (saturating): its Ok still removes a
        // delivered entry, and a record is at worst sent again, never skipped.
        let mut in_flight: usize = 0;
        let mut reported: Vec<Ack> = Vec::new();
        let mut last_sent: Option<u64> = None;
        let mut failed: Option<SinkError> = None;
        let mut failures_in_a_row: u32 = 0;
        let mut delivered: u64 = 0;
        let mut queue_full = false;
        let mut last_gauges = Instant::now() - Duration::from_secs(60);
        if let Some(h) = &self.health {
            h.set_publishing(true);
        }
        loop {
            if abort.is_cancelled() {
                break;
            }
            if last_gauges.elapsed() >= Duration::from_secs(1) {
                last_gauges = Instant::now();
                self.outbox_gauges()?;
            }
            // Fill the pipeline.
            if failed.is_none() && !queue_full && in_flight < self.max_in_flight {
                let room = (self.max_in_flight - in_flight).min(READ_BATCH);
                let entries = self.store.outbox_after(last_sent, room)?;
                for (seq, bytes) in entries {
                    let record = match serde_json::from_slice::<Event>(&bytes)
                        .map_err(|e| e.to_string())
                        .and_then(|ev| self.encoder.encode(&ev).map_err(|e| e.to_string()))
                    {
                        Ok(r) => r,
                        Err(reason) => {
                            // Cannot happen for entries this version wrote; never silently skip.
                            tracing::error!(seq, %reason, "outbox entry cannot be encoded; publishing paused");
                            metrics::counter!("ccdc_publish_errors_total", "kind" => "encode")
                                .increment(1);
                            failed = Some(SinkError::Fatal(reason));
                            break;
                        }
                    };
                    match self.sink.send(seq, record) {
                        Ok(()) => {
                            last_sent = Some(seq);
                            in_flight += 1;
                        }
                        Err(SendError::QueueFull(_)) => {
                            metrics::counter!("ccdc_producer_queue_full_total").increment(1);
                            queue_full = true;
                            break;
                        }
                        Err(SendError::Failed(e)) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
            }

            if in_flight == 0 {
                if let Some(e) = failed.take() {
                    failures_in_a_row += 1;
                    let wait = crate::backoff::jittered(
                        failures_in_a_row,
                        Duration::from_millis(200),
                        self.max_backoff,
                    );
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "publishing failed; resending from the oldest unacknowledged event");
                    metrics::counter!("ccdc_publish_errors_total", "kind" => if matches!(e, SinkError::Fatal(_)) { "fatal" } else { "retryable" }).increment(1);
                    if let Err(re) = self.sink.recover() {
                        tracing::error!(error = %re, "the sink could not recover; retrying later");
                    }
                    last_sent = None;
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = abort.cancelled() => break,
                    }
                    continue;
                }
                if queue_full {
                    queue_full = false;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                if self.store.outbox_len() == 0
                    || last_sent.is_some() && self.store.outbox_after(last_sent, 1)?.is_empty()
                {
                    if stop.is_cancelled() {
                        break;
                    }
                    tokio::select! {
                        _ = self.notify.notified() => {}
                        _ = stop.cancelled() => {}
                        _ = abort.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                continue;
            }

            // Wait for at least one acknowledgement (or for new work while there is room).
            let acks = self.sink.acks();
            acks.drain_into(&mut reported);
            if reported.is_empty() {
                tokio::select! {
                    _ = acks.wait() => {}
                    _ = self.notify.notified(), if failed.is_none() && !queue_full && in_flight < self.max_in_flight => {}
                    _ = abort.cancelled() => break,
                }
                acks.drain_into(&mut reported);
            }
            in_flight = in_flight.saturating_sub(reported.len());
            let mut acked = Vec::new();
            for Ack { id, result } in reported.drain(..) {
                match result {
                    Ok(()) => acked.push(id),
                    Err(e) => {
                        if failed.is_none() {
                            failed = Some(e);
                        }
                    }
                }
            }
            if !acked.is_empty() {
                self.store.outbox_remove(&acked)?;
                delivered += acked.len() as u64;
                metrics::counter!("ccdc_events_published_total").increment(acked.len() as u64);
                if failed.is_none() {
                    failures_in_a_row = 0;
                }
                queue_full = false;
            }
        }
        if let Some(h) = &self.health {
            h.set_publishing(false);
        }
        self.outbox_gauges()?;
        Ok(PublisherReport {
            delivered,
            left_in_outbox: self.store.outbox_len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::{JsonEncoder, MemorySink, Topics};
    use crate::store::MemoryStore;

    fn ev(i: usize) -> Vec<u8> {
        let e = crate::event::started_for_tests(&format!("id-{i}"), &format!("c{i}"));
        serde_json::to_vec(&e).unwrap()
    }

    fn setup(n: usize) -> (Arc<MemoryStore>, MemorySink, Publisher) {
        let store = Arc::new(MemoryStore::default());
        store
            .commit(vec![], (0..n).map(ev).collect::<Vec<_>>())
            .unwrap();
        let sink = MemorySink::default();
        let p = Publisher {
            store: store.clone(),
            encoder: Arc::new(JsonEncoder {
                topics: Topics::default(),
            }),
            sink: Arc::new(sink.clone()),
            notify: Arc::new(Notify::new()),
            max_in_flight: 7,
            max_backoff: Duration::from_millis(20),
            health: None,
        };
        (store, sink, p)
    }

    fn ids(sink: &MemorySink) -> Vec<String> {
        sink.delivered()
            .iter()
            .map(|r| r.headers[0].1.clone())
            .collect()
    }

    async fn drain(p: Publisher) -> PublisherReport {
        let stop = CancellationToken::new();
        stop.cancel();
        tokio::time::timeout(
            Duration::from_secs(10),
            p.run(stop, CancellationToken::new()),
        )
        .await
        .unwrap()
        .unwrap()
    }

    #[tokio::test]
    async fn delivers_everything_in_order_and_empties_the_outbox() {
        let (store, sink, p) = setup(50);
        let report = drain(p).await;
        assert_eq!(
            report,
            PublisherReport {
                delivered: 50,
                left_in_outbox: 0
            }
        );
        assert_eq!(
            ids(&sink),
            (0..50).map(|i| format!("id-{i}")).collect::<Vec<_>>()
        );
        assert_eq!(store.outbox_len(), 0);
    }

    #[tokio::test]
    async fn failed_delivery_is_resent_and_nothing_is_lost() {
        let (store, sink, p) = setup(20);
        sink.fail_next(3);
        let report = drain(p).await;
        assert_eq!(report.left_in_outbox, 0);
        assert_eq!(store.outbox_len(), 0);
        let got = ids(&sink);
        // Every id arrives; the failed ones arrive (once) after the retry.
        let mut uniq = got.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), 20);
        assert_eq!(
            got.len(),
            20,
            "failed sends were not delivered, so no duplicates here"
        );
        // The first three failed: they come after the rest of the first batch.
        assert_eq!(got[0], "id-3");
    }

    #[tokio::test]
    async fn queue_full_is_back_pressure_not_loss() {
        let (_store, sink, p) = setup(30);
        sink.queue_full_next(5);
        let report = drain(p).await;
        assert_eq!(report.delivered, 30);
        assert_eq!(
            ids(&sink),
            (0..30).map(|i| format!("id-{i}")).collect::<Vec<_>>()
        );
        assert_eq!(
            sink.sends(),
            35,
            "each QueueFull was retried with the same record"
        );
    }

    #[tokio::test]
    async fn abort_leaves_undelivered_entries_in_the_outbox() {
        let (store, _sink, p) = setup(5);
        let abort = CancellationToken::new();
        abort.cancel();
        let r = p.run(CancellationToken::new(), abort).await.unwrap();
        assert_eq!(
            r,
            PublisherReport {
                delivered: 0,
                left_in_outbox: 5
            }
        );
        assert_eq!(store.outbox_len(), 5);
    }
}
