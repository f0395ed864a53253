//! Durable state: feed states (snapshots, cursors, dedupe marks, counters) and the outbox of events
//! not yet acknowledged by the broker.
//!
//! [`Store::commit`] writes a new snapshot *and* the events derived from it in one atomic batch and
//! makes it durable before returning, so a crash leaves either the old snapshot and no events, or the
//! new snapshot and all its events. The publisher removes outbox entries only after the broker's ack.

pub mod buckets;
mod codec;
mod open;
pub mod outbox;
pub mod segments;

pub use codec::{decode_state, encode_state};
pub use open::DEFAULT_CACHE_BYTES;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
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
}

impl StoreError {
    /// May the operation succeed if tried again? An I/O error (a full disk, say) may clear; a
    /// corrupt entry, a directory that cannot be opened or a lost task will not by retrying.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Sled(sled::Error::Io(_)))
    }
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
    fn commit(&self, writes: Vec<Write>, events: Vec<Vec<u8>>) -> Result<(), StoreError>;
    /// Every state entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Add `by` to the counter `key` and return its new value (durable on return).
    fn increment(&self, key: &str, by: u64) -> Result<u64, StoreError>;
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

/// The sled implementation. Snapshots and outbox share one tree so that one `apply_batch` covers both.
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
    outbox_len: AtomicUsize,
    /// Serializes the read-modify-write of delivered-event bitmaps.
    acks: Mutex<()>,
}

impl SledStore {
    /// Open (or create) the store in `dir`, created owner-only (0700). Waits up to
    /// [`open::LOCK_WAIT`] for a previous holder of the directory's lock to let go.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        Self::open_with_cache(dir, open::DEFAULT_CACHE_BYTES)
    }

    /// [`SledStore::open`] with a page cache of `cache_bytes` (`state_cache_mb`).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<SledStore, StoreError> {
        let db = open::open_db(dir, open::LOCK_WAIT, cache_bytes)?;
        let tree = db.open_tree("state")?;
        let store = SledStore {
            db,
            tree,
            outbox_len: AtomicUsize::new(0),
            acks: Mutex::new(()),
        };
        store.migrate_legacy_outbox()?;
        let mut n = 0;
        for item in store.tree.scan_prefix([SEGMENT_PREFIX]) {
            let (k, v) = item?;
            let delivered = store
                .tree
                .get(id_key(ACK_PREFIX, key_id(&k)?))?
                .map_or(0, |b| segments::ones(&b));
            n += segments::count(&v).unwrap_or(0).saturating_sub(delivered);
        }
        store.outbox_len.store(n, Ordering::Relaxed);
        Ok(store)
    }

    /// Move one-entry-per-event outbox entries (earlier versions) into segments, in order.
    fn migrate_legacy_outbox(&self) -> Result<(), StoreError> {
        let mut keys = Vec::new();
        let mut events = Vec::new();
        for item in self.tree.scan_prefix([LEGACY_OUTBOX_PREFIX]) {
            let (k, v) = item?;
            keys.push(k);
            events.push(v.to_vec());
        }
        if keys.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for k in keys {
            batch.remove(k);
        }
        let n = events.len();
        self.append_segments(&mut batch, events)?;
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        tracing::info!(events = n, "outbox migrated to the segment layout");
        Ok(())
    }

    /// Add `events` to `batch` as segments, releasing each segment's events once it is encoded.
    fn append_segments(
        &self,
        batch: &mut sled::Batch,
        events: Vec<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let sizes: Vec<usize> = segments::chunks(&events).iter().map(|c| c.len()).collect();
        let mut events = events.into_iter();
        for size in sizes {
            let part: Vec<Vec<u8>> = events.by_ref().take(size).collect();
            // generate_id is monotonic across restarts (it may skip numbers after a crash).
            let id = self.db.generate_id()?;
            batch.insert(&id_key(SEGMENT_PREFIX, id)[..], segments::encode(&part));
        }
        Ok(())
    }
}

fn counter_value(v: Option<&[u8]>) -> u64 {
    v.and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

impl Store for SledStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(snapshot_key(key))?.map(|v| v.to_vec()))
    }

    fn commit(&self, writes: Vec<Write>, events: Vec<Vec<u8>>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for w in writes {
            match w {
                Write::Put(k, v) => batch.insert(snapshot_key(&k), v),
                Write::Delete(k) => batch.remove(snapshot_key(&k)),
            }
        }
        let n = events.len();
        self.append_segments(&mut batch, events)?;
        // Counted before the entries become visible: a publisher that sees and removes them
        // at once must find them counted, or the count would wrap below zero. Taken back only if
        // the batch was not applied (a failed flush after it leaves them in the outbox).
        self.outbox_len.fetch_add(n, Ordering::SeqCst);
        if let Err(e) = self.tree.apply_batch(batch) {
            self.outbox_len.fetch_sub(n, Ordering::SeqCst);
            return Err(e.into());
        }
        self.db.flush()?;
        Ok(())
    }

    fn outbox_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let (first_segment, first_index) = match after {
            Some(s) => {
                let (id, index) = segments::split(s);
                (id, index + 1)
            }
            None => (0, 0),
        };
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let start = id_key(SEGMENT_PREFIX, first_segment);
        let end = [SEGMENT_PREFIX + 1];
        for item in self.tree.range(&start[..]..&end[..]) {
            let (k, v) = item?;
            let id = key_id(&k)?;
            let delivered = self.tree.get(id_key(ACK_PREFIX, id))?;
            let segment = segments::decode(&v).map_err(|r| corrupt_segment(id, r))?;
            for event in segment.events() {
                let (index, payload) = event.map_err(|r| corrupt_segment(id, r))?;
                if id == first_segment && index < first_index
                    || delivered
                        .as_ref()
                        .is_some_and(|d| segments::is_set(d, index))
                {
                    continue;
                }
                out.push((segments::seq(id, index), payload.to_vec()));
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    fn outbox_remove(&self, seqs: &[u64]) -> Result<(), StoreError> {
        let _serialized = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_segment: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for s in seqs {
            let (id, index) = segments::split(*s);
            by_segment.entry(id).or_default().push(index);
        }
        let mut batch = sled::Batch::default();
        let mut removed = 0;
        for (id, indexes) in by_segment {
            // Already gone: removal is idempotent.
            let Some(segment) = self.tree.get(id_key(SEGMENT_PREFIX, id))? else {
                continue;
            };
            let n = segments::count(&segment).ok_or_else(|| StoreError::Corrupt {
                key: format!("outbox segment {id}"),
                reason: "no header".into(),
            })?;
            let ack_key = id_key(ACK_PREFIX, id);
            let mut delivered = self
                .tree
                .get(ack_key)?
                .map(|b| b.to_vec())
                .unwrap_or_default();
            for i in indexes {
                if i < n && segments::set(&mut delivered, i) {
                    removed += 1;
                }
            }
            if segments::ones(&delivered) >= n {
                batch.remove(&id_key(SEGMENT_PREFIX, id)[..]);
                batch.remove(&ack_key[..]);
            } else {
                batch.insert(&ack_key[..], delivered);
            }
        }
        self.tree.apply_batch(batch)?;
        // Never below zero, whatever happens (a count that wrapped paused every poller).
        let _ = self
            .outbox_len
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_sub(removed))
            });
        Ok(())
    }

    fn outbox_len(&self) -> usize {
        self.outbox_len.load(Ordering::SeqCst)
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(snapshot_key(prefix)) {
            let (k, v) = item?;
            out.push((String::from_utf8_lossy(&k[1..]).into_owned(), v.to_vec()));
        }
        Ok(out)
    }

    fn increment(&self, key: &str, by: u64) -> Result<u64, StoreError> {
        let new = self.tree.update_and_fetch(snapshot_key(key), |old| {
            Some((counter_value(old) + by).to_be_bytes().to_vec())
        })?;
        self.db.flush()?;
        Ok(counter_value(new.as_deref()))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// In-memory store with the same semantics, for tests.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    state: BTreeMap<String, Vec<u8>>,
    outbox: BTreeMap<u64, Vec<u8>>,
    next_seq: u64,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // A panic while holding the lock can only come from a test; keep going with the data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().state.get(key).cloned())
    }
    fn commit(&self, writes: Vec<Write>, events: Vec<Vec<u8>>) -> Result<(), StoreError> {
        let mut g = self.lock();
        for w in writes {
            match w {
                Write::Put(k, v) => g.state.insert(k, v),
                Write::Delete(k) => g.state.remove(&k),
            };
        }
        for ev in events {
            let seq = g.next_seq;
            g.next_seq += 1;
            g.outbox.insert(seq, ev);
        }
        Ok(())
    }
    fn outbox_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
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
        let g = self.lock();
        Ok(g.state
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    fn increment(&self, key: &str, by: u64) -> Result<u64, StoreError> {
        let mut g = self.lock();
        let new = counter_value(g.state.get(key).map(Vec::as_slice)) + by;
        g.state.insert(key.to_string(), new.to_be_bytes().to_vec());
        Ok(new)
    }
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
