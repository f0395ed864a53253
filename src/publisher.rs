//! Drains the outbox into the sink, in outbox order, with many records in flight. An entry is removed
//! only after the sink acknowledged it. On a failed delivery the publisher stops sending, lets the
//! in-flight records settle, waits (jittered back-off) and resends from the oldest unacknowledged
//! entry: a record may be repeated (same event id), never skipped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::encode::RecordEncoder;
use crate::observability::Health;
use crate::retry::Backoff;
use crate::sink::{Ack, EventSink, SendError, SinkError};
use crate::store::outbox::Outbox;
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

/// The publisher's delivery state between two turns of its loop.
struct Delivery {
    outbox: Outbox,
    /// Records handed to the sink and not yet reported on its acks. An ack from an earlier
    /// publisher on the same sink only lowers this early (saturating): its Ok still removes a
    /// delivered entry, and a record is at worst sent again, never skipped.
    in_flight: usize,
    reported: Vec<Ack>,
    last_sent: Option<u64>,
    failed: Option<SinkError>,
    backoff: Backoff,
    delivered: u64,
    queue_full: bool,
}

impl Delivery {
    fn has_room(&self, max_in_flight: usize) -> bool {
        self.failed.is_none() && !self.queue_full && self.in_flight < max_in_flight
    }
}

impl Publisher {
    /// Outbox depth and the age of its oldest entry.
    fn outbox_gauges(&self, outbox: &Outbox) -> Result<(), StoreError> {
        metrics::gauge!("ccdc_outbox_depth").set(outbox.len() as f64);
        let age = outbox.oldest_time_ms()?.map_or(0.0, |t| {
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
        let mut d = Delivery {
            outbox: Outbox::new(self.store.clone()),
            in_flight: 0,
            reported: Vec::new(),
            last_sent: None,
            failed: None,
            backoff: Backoff::new(Duration::from_millis(200), self.max_backoff),
            delivered: 0,
            queue_full: false,
        };
        let mut last_gauges = Instant::now() - Duration::from_secs(60);
        if let Some(h) = &self.health {
            h.set_publishing(true);
        }
        while !abort.is_cancelled() {
            if last_gauges.elapsed() >= Duration::from_secs(1) {
                last_gauges = Instant::now();
                self.outbox_gauges(&d.outbox)?;
            }
            if d.has_room(self.max_in_flight) {
                self.fill(&mut d)?;
            }
            let go_on = if d.in_flight == 0 {
                self.idle(&mut d, &stop, &abort).await?
            } else {
                self.settle(&mut d, &abort).await?
            };
            if !go_on {
                break;
            }
        }
        if let Some(h) = &self.health {
            h.set_publishing(false);
        }
        self.outbox_gauges(&d.outbox)?;
        Ok(PublisherReport {
            delivered: d.delivered,
            left_in_outbox: d.outbox.len(),
        })
    }

    /// Hand the next outbox entries to the sink, up to the in-flight limit.
    fn fill(&self, d: &mut Delivery) -> Result<(), StoreError> {
        let room = (self.max_in_flight - d.in_flight).min(READ_BATCH);
        for (seq, event) in d.outbox.read_after(d.last_sent, room)? {
            let record = match event
                .map_err(|e| e.to_string())
                .and_then(|ev| self.encoder.encode(&ev).map_err(|e| e.to_string()))
            {
                Ok(r) => r,
                Err(reason) => {
                    // Cannot happen for entries this version wrote; never silently skip.
                    tracing::error!(seq, %reason, "outbox entry cannot be encoded; publishing paused");
                    metrics::counter!("ccdc_publish_errors_total", "kind" => "encode").increment(1);
                    d.failed = Some(SinkError::Fatal(reason));
                    return Ok(());
                }
            };
            match self.sink.send(seq, record) {
                Ok(()) => {
                    d.last_sent = Some(seq);
                    d.in_flight += 1;
                }
                Err(SendError::QueueFull(_)) => {
                    metrics::counter!("ccdc_producer_queue_full_total").increment(1);
                    d.queue_full = true;
                    return Ok(());
                }
                Err(SendError::Failed(e)) => {
                    d.failed = Some(e);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Nothing in flight: back off after a failure (then resend from the oldest unacknowledged
    /// entry), wait out a full queue, or wait for new events. `false`: stop the loop.
    async fn idle(
        &self,
        d: &mut Delivery,
        stop: &CancellationToken,
        abort: &CancellationToken,
    ) -> Result<bool, StoreError> {
        if let Some(e) = d.failed.take() {
            let wait = d.backoff.fail();
            tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "publishing failed; resending from the oldest unacknowledged event");
            let kind = if e.is_retryable() {
                "retryable"
            } else {
                "fatal"
            };
            metrics::counter!("ccdc_publish_errors_total", "kind" => kind).increment(1);
            if let Err(re) = self.sink.recover() {
                tracing::error!(error = %re, "the sink could not recover; retrying later");
            }
            d.last_sent = None;
            return Ok(tokio::select! {
                _ = tokio::time::sleep(wait) => true,
                _ = abort.cancelled() => false,
            });
        }
        if d.queue_full {
            d.queue_full = false;
            tokio::time::sleep(Duration::from_millis(10)).await;
            return Ok(true);
        }
        if d.outbox.is_empty() || d.last_sent.is_some() && !d.outbox.has_after(d.last_sent)? {
            if stop.is_cancelled() {
                return Ok(false);
            }
            tokio::select! {
                _ = self.notify.notified() => {}
                _ = stop.cancelled() => {}
                _ = abort.cancelled() => return Ok(false),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        Ok(true)
    }

    /// Wait for at least one acknowledgement (or for new work while there is room), then remove
    /// what was delivered from the outbox. `false`: stop the loop.
    async fn settle(
        &self,
        d: &mut Delivery,
        abort: &CancellationToken,
    ) -> Result<bool, StoreError> {
        let acks = self.sink.acks();
        acks.drain_into(&mut d.reported);
        if d.reported.is_empty() {
            let room = d.has_room(self.max_in_flight);
            tokio::select! {
                _ = acks.wait() => {}
                _ = self.notify.notified(), if room => {}
                _ = abort.cancelled() => return Ok(false),
            }
            acks.drain_into(&mut d.reported);
        }
        d.in_flight = d.in_flight.saturating_sub(d.reported.len());
        let mut acked = Vec::new();
        for Ack { id, result } in d.reported.drain(..) {
            match result {
                Ok(()) => acked.push(id),
                Err(e) => {
                    d.failed.get_or_insert(e);
                }
            }
        }
        if !acked.is_empty() {
            d.outbox.acknowledge(&acked)?;
            d.delivered += acked.len() as u64;
            metrics::counter!("ccdc_events_published_total").increment(acked.len() as u64);
            if d.failed.is_none() {
                d.backoff.reset();
            }
            d.queue_full = false;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TopicsConfig as Topics;
    use crate::encode::JsonEncoder;
    use crate::sink::MemorySink;
    use crate::store::MemoryStore;

    fn ev(i: usize) -> Vec<u8> {
        let e = crate::event::started_for_tests(&format!("id-{i}"), &format!("c{i}"));
        crate::store::outbox::encode(&e)
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
