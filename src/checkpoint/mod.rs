//! Report cursors checkpointed in Kafka, the way Kafka Connect keeps source offsets: a replica that
//! takes over a report feed it has no (or an older) cursor for — after a re-sharding
//! ([`crate::shard`]) or a lost volume — resumes where the last owner's acknowledged events end,
//! instead of losing rows or re-reading from `start_from`.
//!
//! - **Written after the acknowledgement.** The [`Writer`] reads the cursors committed in the store
//!   (live `report/<source>/<report>/cursor` and backfill `backfill/…/cursor`), notes how far the
//!   outbox reaches at that moment, and writes them to the compacted checkpoint topic only once
//!   every outbox entry up to there has left the outbox (acknowledged by the broker, or set aside):
//!   a checkpoint never covers an event that is not in Kafka. A cursor moves only with a window's
//!   last chunk, in the same commit as that chunk's events ([`crate::reports`]).
//! - **Read at start-up.** [`Checkpoints::start`] reads the whole topic (every partition assigned
//!   from offset 0, no consumer group) and keeps the newest cursor per key (a tombstone forgets the
//!   key). Each report poller then waits for it ([`Checkpoints::resume`]) and, when the checkpoint is
//!   newer than its local cursor (or it has none), stores the checkpoint's cursor before polling.
//!   The look-back re-read (`cursor − lookback`) then publishes the rows of that window again, with
//!   their same event ids (the dedupe marks stay local): duplicates, never a gap.
//! - **Snapshots are not checkpointed**: a source taken over is polled afresh, its first poll
//!   publishing `initial` events ([`crate::shard::forget_taken_over`] drops stale local snapshots).
//!
//! Record: key `<source>/<feed>` (`feed` is the report, e.g. `chat_1`, or for a backfill
//! `chat_1/backfill/<from>-<to>`), value the JSON object [`Checkpoint`]
//! (`schemas/checkpoint.schema.json`).

mod kafka;
mod writer;

pub use kafka::KafkaLog;
pub use writer::Writer;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::poller::Poller;
use crate::reports::parse_cursor;
use crate::retry::{retry, Backoff};
use crate::shard::Replica;
use crate::store::{StoreError, Write};

/// The value format this build writes (`version`).
pub const VERSION: u32 = 1;

/// One checkpoint: the value of a record of the checkpoint topic (JSON, same field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The value format, 1.
    pub version: u32,
    /// The configured source name, e.g. `wolkvox-main`.
    pub source: String,
    /// The report (`chat_1`), or a backfill's report and range (`chat_1/backfill/20261001000000-20261101000000`).
    pub feed: String,
    /// The cursor, in the source's local time, `YYYY-MM-DD HH:MM:SS`: every row before it was pulled
    /// and its events acknowledged by the broker.
    pub cursor: String,
    /// When it was written (UTC ms).
    pub written_at: i64,
    /// The replica that wrote it (`INDEX/COUNT`, `0/1` when unsharded).
    pub replica: String,
}

impl Checkpoint {
    /// The record key: `<source>/<feed>`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.source, self.feed)
    }

    /// The store key of the cursor this checkpoints.
    pub fn state_key(&self) -> String {
        state_key_of(&self.source, &self.feed)
    }

    /// The cursor as a time (checked when the record is read).
    pub fn cursor_time(&self) -> Result<NaiveDateTime, StoreError> {
        parse_cursor(&self.key(), self.cursor.as_bytes())
    }

    pub fn encode(&self) -> Vec<u8> {
        // Plain strings and numbers: serializing into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A record read back: its value must be a checkpoint of its own key with a valid cursor.
    pub fn decode(key: &str, value: &[u8]) -> Result<Checkpoint, String> {
        let cp: Checkpoint = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        if cp.key() != key {
            return Err(format!("the value is for `{}`", cp.key()));
        }
        cp.cursor_time().map_err(|e| e.to_string())?;
        Ok(cp)
    }
}

/// `(source, feed)` of a cursor's store key ([`crate::reports::cursor_key`]); `None` for any other
/// key.
pub fn feed_of(state_key: &str) -> Option<(String, String)> {
    let rest = state_key.strip_suffix("/cursor")?;
    if let Some(r) = rest.strip_prefix("report/") {
        let (source, report) = r.split_once('/')?;
        return (!report.contains('/')).then(|| (source.to_string(), report.to_string()));
    }
    let r = rest.strip_prefix("backfill/")?;
    let mut parts = r.splitn(3, '/');
    let (source, report, range) = (parts.next()?, parts.next()?, parts.next()?);
    (!range.contains('/')).then(|| (source.to_string(), format!("{report}/backfill/{range}")))
}

/// The store key of the cursor of `feed` of `source` (the inverse of [`feed_of`]).
pub fn state_key_of(source: &str, feed: &str) -> String {
    match feed.split_once("/backfill/") {
        Some((report, range)) => format!("backfill/{source}/{report}/{range}/cursor"),
        None => format!("report/{source}/{feed}/cursor"),
    }
}

/// Why the checkpoint topic could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The cluster did not answer, or a write was not acknowledged in time: retried.
    #[error("checkpoint topic `{topic}`: {reason}")]
    Unavailable { topic: String, reason: String },
    /// The client cannot be created or the cluster refuses us (authorization, configuration):
    /// retried too (report feeds wait meanwhile), and logged as an error.
    #[error("checkpoint topic `{topic}` (fatal until the configuration or the cluster changes): {reason}")]
    Refused { topic: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CheckpointError {
    pub fn is_retryable(&self) -> bool {
        match self {
            CheckpointError::Unavailable { .. } => true,
            CheckpointError::Refused { .. } => false,
            CheckpointError::Store(e) => e.is_retryable(),
        }
    }

    fn kind(&self) -> &'static str {
        if self.is_retryable() {
            "retryable"
        } else {
            "fatal"
        }
    }
}

/// A record of the checkpoint topic: its key, and its value (`None`: a tombstone).
pub type RawRecord = (String, Option<Vec<u8>>);

/// Where checkpoints live: the Kafka topic ([`KafkaLog`]) or memory ([`MemoryLog`], tests).
#[async_trait]
pub trait CheckpointLog: Send + Sync + 'static {
    fn topic(&self) -> &str;
    /// Every record of the topic, in offset order per partition.
    async fn read_all(&self) -> Result<Vec<RawRecord>, CheckpointError>;
    /// Write `batch`; `Ok` once the broker acknowledged every record.
    async fn write(&self, batch: &[Checkpoint]) -> Result<(), CheckpointError>;
}

/// The newest checkpoint of each key among `records` (by cursor; a tombstone forgets what came
/// before it). A record that is not a valid checkpoint is skipped with a warning.
pub fn newest(topic: &str, records: Vec<RawRecord>) -> BTreeMap<String, Checkpoint> {
    let mut out: BTreeMap<String, Checkpoint> = BTreeMap::new();
    for (key, value) in records {
        let Some(value) = value else {
            out.remove(&key);
            continue;
        };
        match Checkpoint::decode(&key, &value) {
            Ok(cp) => {
                let newer = out
                    .get(&key)
                    .is_none_or(|old| old.cursor_time().ok() < cp.cursor_time().ok());
                if newer {
                    out.insert(key, cp);
                }
            }
            Err(reason) => {
                metrics::counter!("ccdc_checkpoint_errors_total", "op" => "read", "kind" => "malformed").increment(1);
                tracing::warn!(topic, key = %key, %reason, "a record of the checkpoint topic is not a checkpoint: skipped");
            }
        }
    }
    out
}

type Loaded = Option<Arc<BTreeMap<String, Checkpoint>>>;

/// The checkpoints of this run: the topic read at start-up (shared by the report pollers that
/// resume from it and the [`Writer`]).
#[derive(Clone)]
pub struct Checkpoints {
    log: Arc<dyn CheckpointLog>,
    loaded: watch::Receiver<Loaded>,
    replica: Replica,
}

impl Checkpoints {
    /// Start reading the topic, retrying (jittered back-off up to 30 s) until it answers or `stop`.
    pub fn start(log: Arc<dyn CheckpointLog>, replica: Replica, stop: &CancellationToken) -> Self {
        let (tx, loaded) = watch::channel(None);
        let (reader, stop) = (log.clone(), stop.clone());
        tokio::spawn(async move {
            let topic = reader.topic().to_string();
            let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
            let read = retry(
                "cannot read the checkpoint topic yet; report feeds wait for it",
                backoff,
                &stop,
                |e: &CheckpointError| {
                    metrics::counter!("ccdc_checkpoint_errors_total", "op" => "read", "kind" => e.kind()).increment(1);
                    if !e.is_retryable() {
                        tracing::error!(error = %e, "the checkpoint topic cannot be read; report feeds wait for it");
                    }
                    true
                },
                || reader.read_all(),
            )
            .await;
            if let Ok(Some(records)) = read {
                let n = records.len();
                let map = newest(&topic, records);
                tracing::info!(topic = %topic, records = n, feeds = map.len(), "checkpoint topic read");
                let _ = tx.send(Some(Arc::new(map)));
            }
        });
        Checkpoints {
            log,
            loaded,
            replica,
        }
    }

    /// The checkpoints read at start-up, once read; `None` if `stop` came first.
    pub async fn loaded(&self, stop: &CancellationToken) -> Loaded {
        let mut rx = self.loaded.clone();
        tokio::select! {
            r = rx.wait_for(Option::is_some) => r.ok().and_then(|v| v.clone()),
            _ = stop.cancelled() => None,
        }
    }

    /// Before `poller` (a report feed) polls: wait for the topic, and if its checkpoint is newer
    /// than the stored cursor (or there is none), store the checkpoint's cursor and reload the feed.
    /// Other feeds return at once. `false`: `stop` came first.
    pub async fn resume(
        &self,
        poller: &mut Poller,
        stop: &CancellationToken,
    ) -> Result<bool, StoreError> {
        let key = poller.feed.state_key();
        let Some((source, feed)) = feed_of(&key) else {
            return Ok(true);
        };
        // Exported at 0 from the feed's start, so that a resume's increment shows in increase().
        let resumes =
            metrics::counter!("ccdc_checkpoint_resumes_total", "source" => source.clone());
        resumes.increment(0);
        let Some(map) = self.loaded(stop).await else {
            return Ok(false);
        };
        let Some(cp) = map.get(&format!("{source}/{feed}")) else {
            return Ok(true);
        };
        let local = match poller.store.get(&key)? {
            Some(b) => Some(parse_cursor(&key, &b)?),
            None => None,
        };
        let remote = cp.cursor_time()?;
        if local.is_some_and(|l| l >= remote) {
            return Ok(true);
        }
        poller.store.commit(
            vec![Write::Put(key.clone(), cp.cursor.clone().into_bytes())],
            Vec::new(),
        )?;
        poller.load()?;
        resumes.increment(1);
        tracing::info!(source = %source, feed = %feed, cursor = %cp.cursor, local = ?local.map(|l| l.to_string()), written_by = %cp.replica, "report feed resumes from the Kafka checkpoint (its look-back window is read again; repeated rows keep their event ids)");
        Ok(true)
    }

    /// [`Checkpoints::resume`], then run `poller` until `stop`. A store failure while resuming
    /// ends the task with an error (the run loop reports a poller that ended).
    pub async fn run_poller(self, mut poller: Poller, stop: CancellationToken) {
        match self.resume(&mut poller, &stop).await {
            Ok(true) => poller.run(stop).await,
            Ok(false) => {}
            Err(e) => {
                tracing::error!(source = %poller.feed.source(), endpoint = %poller.feed.endpoint(), error = %e, "cannot resume the report feed from its checkpoint: it is not polled")
            }
        }
    }

    /// The writer of this run's checkpoints, for the cursors of `sources`.
    pub fn writer(&self, store: Arc<dyn crate::store::Store>, sources: Vec<String>) -> Writer {
        Writer::new(store, self.log.clone(), self.replica, sources)
    }
}

/// The checkpoint topic the configuration asks for: with `output = "kafka"` and
/// `checkpoints.enabled` (the default).
pub fn log_from_config(
    config: &crate::config::Config,
) -> Result<Option<Arc<dyn CheckpointLog>>, CheckpointError> {
    let cp = &config.checkpoints;
    match (&config.output, &config.kafka) {
        (crate::config::OutputKind::Kafka, Some(kafka)) if cp.enabled => {
            Ok(Some(Arc::new(KafkaLog::new(kafka, &cp.topic)?)))
        }
        _ => Ok(None),
    }
}

/// Checkpoints in memory (tests): every record written, in order.
#[derive(Default)]
pub struct MemoryLog {
    pub records: Mutex<Vec<RawRecord>>,
    /// Fail this many calls (reads or writes) before answering.
    pub fail_next: std::sync::atomic::AtomicU32,
}

impl MemoryLog {
    fn failing(&self) -> Result<(), CheckpointError> {
        use std::sync::atomic::Ordering::SeqCst;
        let failing = self
            .fail_next
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(CheckpointError::Unavailable {
                topic: "memory".into(),
                reason: "failing on purpose".into(),
            });
        }
        Ok(())
    }

    /// The checkpoints written so far, newest per key.
    pub fn newest(&self) -> BTreeMap<String, Checkpoint> {
        newest("memory", self.lock().clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RawRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl CheckpointLog for MemoryLog {
    fn topic(&self) -> &str {
        "memory"
    }
    async fn read_all(&self) -> Result<Vec<RawRecord>, CheckpointError> {
        self.failing()?;
        Ok(self.lock().clone())
    }
    async fn write(&self, batch: &[Checkpoint]) -> Result<(), CheckpointError> {
        self.failing()?;
        let mut records = self.lock();
        records.extend(batch.iter().map(|cp| (cp.key(), Some(cp.encode()))));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
