//! The checkpoint writer: cursors go to Kafka only once the events committed with (and before) them
//! have left the outbox.
//!
//! The outbox hands out strictly increasing sequence numbers in commit order, and a cursor is
//! committed atomically with its window's last events. So: read the cursors, *then* note the last
//! sequence number in the outbox (`tail`); every event committed with those cursors is at or
//! before `tail`, or already acknowledged. Once the oldest entry left in the outbox is after `tail`
//! (or the outbox is empty), all of them are acknowledged and the cursors can be written.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use tokio_util::sync::CancellationToken;

use super::{feed_of, Checkpoint, CheckpointError, CheckpointLog, Checkpoints, VERSION};
use crate::reports::parse_cursor;
use crate::retry::Backoff;
use crate::shard::Replica;
use crate::store::{Store, StoreError};

/// Outbox entries read per step while finding its tail.
const TAIL_STEP: usize = 1000;

/// Cursors read from the store, waiting for the outbox to pass `tail`.
struct Waiting {
    tail: Option<u64>,
    batch: Vec<(NaiveDateTime, Checkpoint)>,
}

pub struct Writer {
    store: Arc<dyn Store>,
    log: Arc<dyn CheckpointLog>,
    replica: Replica,
    /// The sources this replica polls: only their cursors are checkpointed (a state directory may
    /// hold the stale cursor of a source another replica owns now).
    sources: HashSet<String>,
    /// What the topic holds per cursor key (read at start-up, then what was written).
    published: HashMap<String, NaiveDateTime>,
    /// The last outbox sequence number seen.
    tail: Option<u64>,
    waiting: Option<Waiting>,
}

impl Writer {
    pub fn new(
        store: Arc<dyn Store>,
        log: Arc<dyn CheckpointLog>,
        replica: Replica,
        sources: Vec<String>,
    ) -> Self {
        Writer {
            store,
            log,
            replica,
            sources: sources.into_iter().collect(),
            published: HashMap::new(),
            tail: None,
            waiting: None,
        }
    }

    /// What the topic held at start-up: only newer cursors are written.
    pub fn seed<'a>(&mut self, checkpoints: impl IntoIterator<Item = &'a Checkpoint>) {
        for cp in checkpoints {
            if let Ok(t) = cp.cursor_time() {
                self.published.insert(cp.state_key(), t);
            }
        }
    }

    /// The stored cursors of this replica's sources that are newer than the topic's.
    fn candidates(&self, now_ms: i64) -> Result<Vec<(NaiveDateTime, Checkpoint)>, StoreError> {
        let mut out = Vec::new();
        for prefix in ["report/", "backfill/"] {
            for (key, value) in self.store.scan_prefix(prefix)? {
                let Some((source, feed)) = feed_of(&key) else {
                    continue;
                };
                if !self.sources.contains(&source) {
                    continue;
                }
                let cursor = parse_cursor(&key, &value)?;
                if self.published.get(&key).is_some_and(|p| *p >= cursor) {
                    continue;
                }
                out.push((
                    cursor,
                    Checkpoint {
                        version: VERSION,
                        source,
                        feed,
                        cursor: String::from_utf8_lossy(&value).into_owned(),
                        written_at: now_ms,
                        replica: self.replica.to_string(),
                    },
                ));
            }
        }
        Ok(out)
    }

    /// Move `tail` to the last entry now in the outbox.
    fn advance_tail(&mut self) -> Result<Option<u64>, StoreError> {
        loop {
            let entries = self.store.outbox_after(self.tail, TAIL_STEP)?;
            match entries.last() {
                Some((seq, _)) => self.tail = Some(*seq),
                None => return Ok(self.tail),
            }
        }
    }

    /// Has every entry up to `tail` left the outbox?
    fn passed(&self, tail: Option<u64>) -> Result<bool, StoreError> {
        let oldest = self.store.outbox_after(None, 1)?.first().map(|(s, _)| *s);
        Ok(match (oldest, tail) {
            (None, _) | (_, None) => true,
            (Some(oldest), Some(tail)) => oldest > tail,
        })
    }

    /// One step: note new cursors, or write the noted ones once their events are acknowledged.
    /// Returns how many checkpoints were written.
    pub async fn tick(&mut self, now_ms: i64) -> Result<usize, CheckpointError> {
        if self.waiting.is_none() {
            let batch = self.candidates(now_ms)?;
            if batch.is_empty() {
                return Ok(0);
            }
            // After reading the cursors: their events are all at or before this tail.
            let tail = self.advance_tail()?;
            self.waiting = Some(Waiting { tail, batch });
        }
        let Some(w) = &self.waiting else {
            return Ok(0);
        };
        if !self.passed(w.tail)? {
            return Ok(0);
        }
        let records: Vec<Checkpoint> = w.batch.iter().map(|(_, cp)| cp.clone()).collect();
        self.log.write(&records).await?;
        let n = records.len();
        if let Some(w) = self.waiting.take() {
            for (cursor, cp) in w.batch {
                tracing::debug!(source = %cp.source, feed = %cp.feed, cursor = %cp.cursor, "checkpoint written");
                self.published.insert(cp.state_key(), cursor);
            }
        }
        metrics::counter!("ccdc_checkpoints_written_total").increment(n as u64);
        Ok(n)
    }

    /// Write checkpoints every `interval` until `stop` (the pipeline cancels it once the outbox is
    /// drained at shutdown), then make a last attempt for the final cursors. Starts once the topic
    /// was read (`checkpoints`), so a cursor older than the topic's is never written.
    pub async fn run(
        mut self,
        checkpoints: Checkpoints,
        interval: Duration,
        stop: CancellationToken,
    ) {
        let Some(map) = checkpoints.loaded(&stop).await else {
            return;
        };
        self.seed(map.values());
        let mut backoff = Backoff::new(interval, Duration::from_secs(30));
        loop {
            let wait = match self.tick(chrono::Utc::now().timestamp_millis()).await {
                Ok(_) => {
                    backoff.reset();
                    interval
                }
                Err(e) => self.failed(&e, &mut backoff),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => break,
            }
        }
        // Note the final cursors, then write them (the outbox is drained by now, or what is left
        // in it holds them back).
        for _ in 0..2 {
            if let Err(e) = self.tick(chrono::Utc::now().timestamp_millis()).await {
                self.failed(&e, &mut backoff);
                break;
            }
        }
    }

    fn failed(&self, e: &CheckpointError, backoff: &mut Backoff) -> Duration {
        metrics::counter!("ccdc_checkpoint_errors_total", "op" => "write", "kind" => e.kind())
            .increment(1);
        let wait = backoff.fail();
        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "checkpoints not written yet (report cursors stay in the state directory meanwhile)");
        wait
    }
}
