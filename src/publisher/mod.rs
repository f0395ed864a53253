//! Drains the outbox into the sink, in outbox order, with many records in flight. An entry is removed
//! only after the sink acknowledged it. On a failed delivery the publisher stops sending, lets the
//! in-flight records settle, waits (jittered back-off) and resends from the oldest unacknowledged
//! entry: a record may be repeated (same event id), never skipped.
//!
//! No single entry may stall the rest. A record the broker refuses for good (too large, invalid)
//! or that cannot be encoded goes to the dead-letter topic instead, under the same outbox entry,
//! with the reason and its original topic, key and event id; one that cannot go there either, or
//! an entry that cannot be read at all, is moved aside in the store (`aside/<seq>`), counted
//! (`ccdc_records_set_aside_total`) and reported on `/readyz`. Either way the others go on, in
//! order per key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use std::collections::HashSet;

use crate::encode::RecordEncoder;
use crate::event::Event;
use undeliverable::undeliverable;

mod undeliverable;
use crate::observability::Health;
use crate::retry::Backoff;
use crate::sink::{Ack, EventSink, SendError, SinkError};
use crate::store::outbox::{Outbox, Recent};
use crate::store::{Store, StoreError};

pub struct Publisher {
    pub store: Arc<dyn Store>,
    /// The events the process's pollers just committed ([`crate::poller::GroupCommit`]): taken
    /// instead of decoding their outbox bytes again (`None`: always decoded).
    pub recent: Option<Arc<Recent>>,
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

/// What became of an entry handed to the sink.
enum Handled {
    /// Its record (or its dead letter) is in flight.
    Sent,
    /// Moved aside: nothing in flight for it.
    SetAside,
    /// Not taken now (queue full, or a failure to retry).
    Later(SendError),
}

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
    /// Entries whose dead-letter record is in flight in place of their own.
    dead_lettering: HashSet<u64>,
    /// The store failed (it is being reopened): once nothing is in flight, resend from the oldest
    /// unacknowledged entry (an acknowledgement may not have been recorded).
    store_failed: bool,
}

impl Delivery {
    fn has_room(&self, max_in_flight: usize) -> bool {
        self.failed.is_none()
            && !self.store_failed
            && !self.queue_full
            && self.in_flight < max_in_flight
    }
}

/// Waits between attempts while the state store fails (it reopens itself within seconds of the
/// cause going away).
const STORE_RETRY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));

impl Publisher {
    /// The broker refused entry `id`'s record for good when it was delivered: send its dead letter
    /// (or, if that was its dead letter, set it aside).
    fn refused_on_delivery(
        &self,
        d: &mut Delivery,
        id: u64,
        reason: &str,
    ) -> Result<(), StoreError> {
        if d.dead_lettering.contains(&id) {
            return self.set_aside(d, id, &format!("its dead letter was refused too: {reason}"));
        }
        let Some((_, Ok(event))) = d.outbox.get(id)? else {
            return Ok(()); // already gone (acknowledged by an earlier round) or unreadable: next fill
        };
        match self.dead_letter(d, id, &event, reason)? {
            Handled::Sent => d.in_flight += 1,
            Handled::SetAside => {}
            Handled::Later(_) => {
                // Resent from the oldest unacknowledged entry; refused again, dead-lettered then.
                d.failed.get_or_insert(SinkError::Retryable(format!(
                    "dead letter of entry {id} not sent yet"
                )));
            }
        }
        Ok(())
    }

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
            outbox: Outbox::new(self.store.clone()).with_recent(self.recent.clone()),
            in_flight: 0,
            reported: Vec::new(),
            last_sent: None,
            failed: None,
            backoff: Backoff::new(Duration::from_millis(200), self.max_backoff),
            delivered: 0,
            queue_full: false,
            dead_lettering: HashSet::new(),
            store_failed: false,
        };
        if let Some(h) = &self.health {
            h.set_aside(d.outbox.set_aside_count()?);
        }
        let mut last_gauges = Instant::now() - Duration::from_secs(60);
        if let Some(h) = &self.health {
            h.set_publishing(true);
        }
        let mut store_backoff = Backoff::new(STORE_RETRY.0, STORE_RETRY.1);
        while !abort.is_cancelled() {
            match self.turn(&mut d, &stop, &abort, &mut last_gauges).await {
                Ok(true) => store_backoff.reset(),
                Ok(false) => break,
                // The store is closed after an I/O error and reopens itself: wait, do not stop.
                Err(e) if e.is_retryable() => {
                    let wait = store_backoff.fail();
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "state store failing: publishing waits; unacknowledged events are resent once it is back");
                    metrics::counter!("ccdc_publish_errors_total", "kind" => "store").increment(1);
                    d.store_failed = true;
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = abort.cancelled() => break,
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(h) = &self.health {
            h.set_publishing(false);
        }
        if let Err(e) = self.outbox_gauges(&d.outbox) {
            tracing::warn!(error = %e, "outbox gauges not updated at the end");
        }
        Ok(PublisherReport {
            delivered: d.delivered,
            left_in_outbox: d.outbox.len(),
        })
    }

    /// One turn of the loop: gauges, hand entries to the sink, then wait for acks or new work.
    /// `false`: stop.
    async fn turn(
        &self,
        d: &mut Delivery,
        stop: &CancellationToken,
        abort: &CancellationToken,
        last_gauges: &mut Instant,
    ) -> Result<bool, StoreError> {
        if last_gauges.elapsed() >= Duration::from_secs(1) {
            *last_gauges = Instant::now();
            self.outbox_gauges(&d.outbox)?;
        }
        if d.store_failed && d.in_flight == 0 {
            d.store_failed = false;
            d.last_sent = None;
        }
        if d.has_room(self.max_in_flight) {
            self.fill(d)?;
        }
        if d.in_flight == 0 {
            self.idle(d, stop, abort).await
        } else {
            self.settle(d, abort).await
        }
    }

    /// Hand the next outbox entries to the sink, up to the in-flight limit.
    fn fill(&self, d: &mut Delivery) -> Result<(), StoreError> {
        let room = (self.max_in_flight - d.in_flight).min(READ_BATCH);
        for (seq, event) in d.outbox.read_after(d.last_sent, room)? {
            let event = match event {
                Ok(e) => e,
                Err(unreadable) => {
                    // Written by another version, or damaged: keep its bytes for an operator.
                    self.set_aside(d, seq, &unreadable.to_string())?;
                    d.last_sent = Some(seq);
                    continue;
                }
            };
            let sent = match self.encoder.encode(&event) {
                Ok(record) => self.sink.send(seq, record),
                Err(e) => {
                    metrics::counter!("ccdc_publish_errors_total", "kind" => "encode").increment(1);
                    Err(SendError::Failed(SinkError::Rejected(e.to_string())))
                }
            };
            let sent = match sent {
                Ok(()) => Handled::Sent,
                Err(SendError::Failed(SinkError::Rejected(reason))) => {
                    self.dead_letter(d, seq, &event, &reason)?
                }
                Err(e) => Handled::Later(e),
            };
            match sent {
                Handled::Sent => {
                    d.last_sent = Some(seq);
                    d.in_flight += 1;
                }
                Handled::SetAside => d.last_sent = Some(seq),
                Handled::Later(SendError::QueueFull(_)) => {
                    metrics::counter!("ccdc_producer_queue_full_total").increment(1);
                    d.queue_full = true;
                    return Ok(());
                }
                Handled::Later(SendError::Failed(e)) => {
                    d.failed = Some(e);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Send the dead-letter record of entry `seq` (whose own record was refused for `reason`) in
    /// its place. Refused there too: the entry is set aside.
    fn dead_letter(
        &self,
        d: &mut Delivery,
        seq: u64,
        event: &Event,
        reason: &str,
    ) -> Result<Handled, StoreError> {
        let dead = undeliverable(event, &self.encoder.topic(event), reason);
        tracing::warn!(seq, event_id = event.event_id(), event_type = event.type_name(), %reason, "a record the broker refuses for good: sent to the dead-letter topic instead");
        let sent = match self.encoder.encode(&dead) {
            Ok(record) => self.sink.send(seq, record),
            Err(e) => Err(SendError::Failed(SinkError::Rejected(e.to_string()))),
        };
        Ok(match sent {
            Ok(()) => {
                d.dead_lettering.insert(seq);
                Handled::Sent
            }
            Err(SendError::Failed(SinkError::Rejected(again))) => {
                self.set_aside(d, seq, &format!("{reason}; its dead letter too: {again}"))?;
                Handled::SetAside
            }
            Err(e) => Handled::Later(e),
        })
    }

    /// Move entry `seq` aside (see [`Outbox::set_aside`]) and report it.
    fn set_aside(&self, d: &mut Delivery, seq: u64, reason: &str) -> Result<(), StoreError> {
        tracing::error!(seq, %reason, "an outbox entry can be neither delivered nor dead-lettered: kept aside in the state store (aside/), publishing goes on");
        metrics::counter!("ccdc_records_set_aside_total").increment(1);
        d.outbox.set_aside(seq, reason)?;
        d.dead_lettering.remove(&seq);
        if let Some(h) = &self.health {
            h.set_aside(d.outbox.set_aside_count()?);
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
        // Nothing to send: wait for new work. Also when the outbox counts entries that cannot be
        // read yet (a commit is being made durable): without a wait the loop would spin until it
        // is, or for ever if it never is.
        if d.outbox.is_empty() || !d.outbox.has_after(d.last_sent)? {
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
        let reported = std::mem::take(&mut d.reported);
        for Ack { id, result } in reported {
            match result {
                Ok(()) => {
                    if d.dead_lettering.remove(&id) {
                        metrics::counter!("ccdc_records_dead_lettered_total").increment(1);
                    }
                    acked.push(id)
                }
                Err(SinkError::Rejected(reason)) => self.refused_on_delivery(d, id, &reason)?,
                Err(e) => {
                    // Its dead letter (if this was one) was not delivered: on the resend the
                    // record itself goes again, and a refusal of it is dead-lettered again.
                    d.dead_lettering.remove(&id);
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
mod tests;
