//! Durable state: feed states (snapshots, cursors, dedupe marks, counters) and the outbox of events
//! not yet acknowledged by the broker.
//!
//! [`Store::commit`] writes a new snapshot *and* the events derived from it in one atomic batch and
//! makes it durable before returning, so a crash leaves either the old snapshot and no events, or the
//! new snapshot and all its events. The publisher removes outbox entries only after the broker's ack.
//!
//! After an I/O error (a full disk) the sled store closes itself and reopens the database in the
//! background ([`SledStore`]); meanwhile operations fail with a retryable error and
//! [`Store::health`] says why.

pub mod buckets;
mod codec;
mod handle;
mod open;
pub mod outbox;
pub mod segments;
mod sled_store;

pub use codec::{decode_state, encode_state};
pub use handle::{CLOSE_WAIT, REOPEN_BASE, REOPEN_CAP};
pub use open::DEFAULT_CACHE_BYTES;
pub use sled_store::SledStore;

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    #[error("state store at `{path}`: {reason}")]
    Open { path: String, reason: String },
    #[error("state store: corrupt entry {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// The blocking task that ran a store operation did not finish (it panicked or was cancelled).
    #[error("state store: the {what} task did not finish: {reason}")]
    Task { what: &'static str, reason: String },
    /// This operation met an I/O error (a full disk, say): the store is closed and reopened in
    /// the background ([`SledStore`]).
    #[error("state store: {0}; the store is closed and being reopened")]
    Io(String),
    /// The store is closed after an I/O error and not reopened yet.
    #[error("state store unavailable: {0}; being reopened")]
    Unavailable(String),
    /// The store cannot be reopened in this process (sled could not close after an I/O error).
    #[error("state store unusable in this process: {0}; restart ccdc")]
    Unusable(String),
}

impl StoreError {
    /// May the operation succeed if tried again? After an I/O error (a full disk, say) the store
    /// is reopened by itself; a corrupt entry, a directory that cannot be opened, a lost task or a
    /// store unusable in this process will not come right by retrying.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Sled(sled::Error::Io(_)) | StoreError::Io(_) | StoreError::Unavailable(_)
        )
    }
}

/// Whether the store can be used now: `/readyz` fails unless it is [`StoreHealth::Ok`], `/healthz`
/// fails when it is [`StoreHealth::Unusable`]. Each reason names the store and the cause.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreHealth {
    #[default]
    Ok,
    /// An I/O error closed the store; it is being reopened (e.g. once a full disk has space).
    Failing(String),
    /// It cannot be reopened in this process: a restart is needed.
    Unusable(String),
}

/// An outbox entry: its sequence number (strictly increasing in commit order) and its payload.
pub type OutboxEntry = (u64, Vec<u8>);

/// One state change of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put(String, Vec<u8>),
    Delete(String),
}

pub trait Store: Send + Sync + 'static {
    /// The stored value of state `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Atomically apply `writes` and append `events` to the outbox; durable on return. Takes both
    /// by value: a first snapshot commits tens of megabytes, released as they are copied in.
    fn commit(&self, writes: Vec<Write>, events: Vec<Vec<u8>>) -> Result<(), StoreError> {
        self.commit_numbered(writes, events).map(drop)
    }
    /// [`Store::commit`], answering the sequence number each event was given, in their order.
    fn commit_numbered(
        &self,
        writes: Vec<Write>,
        events: Vec<Vec<u8>>,
    ) -> Result<Vec<u64>, StoreError>;
    /// Every state entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Add `by` to the counter `key` and return its new value (durable on return).
    fn increment(&self, key: &str, by: u64) -> Result<u64, StoreError>;
    /// [`Store::increment`], durable only with the next [`Store::commit`] or [`Store::flush`] of
    /// anything (a crash before that forgets it): for counts that may fall a little short after a
    /// crash, such as vendor calls, without a disk flush each.
    fn increment_lazily(&self, key: &str, by: u64) -> Result<u64, StoreError> {
        self.increment(key, by)
    }
    /// Up to `limit` outbox entries with a sequence number greater than `after`, in order.
    fn outbox_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError>;
    /// Remove acknowledged entries (idempotent).
    fn outbox_remove(&self, seqs: &[u64]) -> Result<(), StoreError>;
    /// Entries currently in the outbox.
    fn outbox_len(&self) -> usize;
    /// Make everything durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// Whether the store can be used now (an in-memory store always can).
    fn health(&self) -> StoreHealth {
        StoreHealth::Ok
    }
}

const SNAPSHOT_PREFIX: u8 = b's';
/// One entry per event: the outbox layout of ccdc before segments; migrated at open.
const LEGACY_OUTBOX_PREFIX: u8 = b'o';
/// Outbox segments ([`segments`]) and their delivered-event bitmaps.
const SEGMENT_PREFIX: u8 = b'q';
const ACK_PREFIX: u8 = b'a';

fn id_key(prefix: u8, id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = prefix;
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

fn key_id(k: &[u8]) -> Result<u64, StoreError> {
    k.get(1..9)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt {
            key: format!("{k:?}"),
            reason: "outbox key is not 9 bytes".into(),
        })
}

fn corrupt_segment(id: u64, reason: segments::Malformed) -> StoreError {
    StoreError::Corrupt {
        key: format!("outbox segment {id}"),
        reason: reason.to_string(),
    }
}

fn snapshot_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(SNAPSHOT_PREFIX);
    k.extend_from_slice(key.as_bytes());
    k
}

fn counter_value(v: Option<&[u8]>) -> u64 {
    v.and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// In-memory store with the same semantics, for tests.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
    fail_next: std::sync::atomic::AtomicBool,
    health: Mutex<StoreHealth>,
}

#[derive(Default)]
struct MemoryInner {
    state: BTreeMap<String, Vec<u8>>,
    outbox: BTreeMap<u64, Vec<u8>>,
    next_seq: u64,
}

impl MemoryStore {
    /// Fault injection for tests: the next commit is applied, then reported failed with an I/O
    /// error (as a flush that failed although the batch reached the disk).
    pub fn fail_next_commit_after_applying(&self) {
        self.fail_next
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// For tests: what [`Store::health`] reports. While it is not [`StoreHealth::Ok`] every
    /// operation is refused as the sled store refuses them while it reopens (`Failing`:
    /// [`StoreError::Unavailable`]) or for good (`Unusable`).
    pub fn set_health(&self, health: StoreHealth) {
        *self.health.lock().unwrap_or_else(|p| p.into_inner()) = health;
    }

    fn refusal(&self) -> Result<(), StoreError> {
        match self.health() {
            StoreHealth::Ok => Ok(()),
            StoreHealth::Failing(r) => Err(StoreError::Unavailable(r)),
            StoreHealth::Unusable(r) => Err(StoreError::Unusable(r)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // A panic while holding the lock can only come from a test; keep going with the data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.refusal()?;
        Ok(self.lock().state.get(key).cloned())
    }
    fn commit_numbered(
        &self,
        writes: Vec<Write>,
        events: Vec<Vec<u8>>,
    ) -> Result<Vec<u64>, StoreError> {
        self.refusal()?;
        let mut g = self.lock();
        for w in writes {
            match w {
                Write::Put(k, v) => g.state.insert(k, v),
                Write::Delete(k) => g.state.remove(&k),
            };
        }
        let mut seqs = Vec::with_capacity(events.len());
        for ev in events {
            let seq = g.next_seq;
            g.next_seq += 1;
            g.outbox.insert(seq, ev);
            seqs.push(seq);
        }
        if self
            .fail_next
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(StoreError::Io(
                "write failed: No space left on device (os error 28) (injected)".into(),
            ));
        }
        Ok(seqs)
    }
    fn outbox_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        self.refusal()?;
        let g = self.lock();
        let it: Box<dyn Iterator<Item = (&u64, &Vec<u8>)>> = match after {
            Some(a) => Box::new(
                g.outbox
                    .range(a.saturating_add(1)..)
                    .filter(move |(k, _)| **k > a),
            ),
            None => Box::new(g.outbox.iter()),
        };
        Ok(it.take(limit).map(|(k, v)| (*k, v.clone())).collect())
    }
    fn outbox_remove(&self, seqs: &[u64]) -> Result<(), StoreError> {
        self.refusal()?;
        let mut g = self.lock();
        for s in seqs {
            g.outbox.remove(s);
        }
        Ok(())
    }
    fn outbox_len(&self) -> usize {
        self.lock().outbox.len()
    }
    fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.refusal()?;
        let g = self.lock();
        Ok(g.state
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    fn increment(&self, key: &str, by: u64) -> Result<u64, StoreError> {
        self.refusal()?;
        let mut g = self.lock();
        let new = counter_value(g.state.get(key).map(Vec::as_slice)).saturating_add(by);
        g.state.insert(key.to_string(), new.to_be_bytes().to_vec());
        Ok(new)
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.refusal()?;
        Ok(())
    }
    fn health(&self) -> StoreHealth {
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod handle_tests;
#[cfg(test)]
mod tests;
