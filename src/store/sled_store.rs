//! The sled implementation of [`Store`]: snapshots and the outbox share one tree so that one
//! `apply_batch` covers both. The database lives in a [`Handle`], which closes and reopens it after
//! an I/O error (`super::handle`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::handle::{self, lock, Access, Handle, Timing};
use super::{
    corrupt_segment, counter_value, id_key, key_id, open, segments, snapshot_key, OutboxEntry,
    Store, StoreError, StoreHealth, Write, ACK_PREFIX, LEGACY_OUTBOX_PREFIX, SEGMENT_PREFIX,
};

/// An open sled database and its one tree.
pub(super) struct Open {
    pub db: sled::Db,
    pub tree: sled::Tree,
}

impl Open {
    /// Open (or create) the database in `dir`; migrate an outbox of an earlier layout; count the
    /// events waiting in the outbox.
    pub fn at(dir: &Path, cache_bytes: u64) -> Result<(Open, usize), StoreError> {
        let db = open::open_db(dir, open::LOCK_WAIT, cache_bytes)?;
        let tree = db.open_tree("state")?;
        let open = Open { db, tree };
        open.migrate_legacy_outbox()?;
        let mut n: usize = 0;
        for item in open.tree.scan_prefix([SEGMENT_PREFIX]) {
            let (k, v) = item?;
            let delivered = open
                .tree
                .get(id_key(ACK_PREFIX, key_id(&k)?))?
                .map_or(0, |b| segments::ones(&b));
            n = n.saturating_add(segments::count(&v).unwrap_or(0).saturating_sub(delivered));
        }
        Ok((open, n))
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
        for (segment, _) in encode_segments(events) {
            let id = self.db.generate_id()?;
            batch.insert(&id_key(SEGMENT_PREFIX, id)[..], segment);
        }
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        tracing::info!(events = n, "outbox migrated to the segment layout");
        Ok(())
    }
}

/// `events` as encoded segments with the number of events in each, releasing each segment's events
/// once it is encoded (a first snapshot commits tens of megabytes).
fn encode_segments(events: Vec<Vec<u8>>) -> Vec<(Vec<u8>, usize)> {
    let sizes: Vec<usize> = segments::chunks(&events).iter().map(|c| c.len()).collect();
    let mut events = events.into_iter();
    sizes
        .into_iter()
        .map(|size| {
            let part: Vec<Vec<u8>> = events.by_ref().take(size).collect();
            (segments::encode(&part), size)
        })
        .collect()
}

/// The sled store. See `super::handle` for what happens after an I/O error.
pub struct SledStore {
    handle: Arc<Handle>,
}

impl SledStore {
    /// Open (or create) the store in `dir`, created owner-only (0700). Waits up to
    /// `open::LOCK_WAIT` for a previous holder of the directory's lock to let go.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        Self::open_with_cache(dir, open::DEFAULT_CACHE_BYTES)
    }

    /// [`SledStore::open`] with a page cache of `cache_bytes` (`state_cache_mb`).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<SledStore, StoreError> {
        Self::open_timed(dir, cache_bytes, handle::TIMING)
    }

    pub(super) fn open_timed(
        dir: &Path,
        cache_bytes: u64,
        timing: Timing,
    ) -> Result<SledStore, StoreError> {
        let (open, outbox) = Open::at(dir, cache_bytes)?;
        Ok(SledStore {
            handle: Arc::new(Handle::new(dir, cache_bytes, open, outbox, timing)),
        })
    }

    #[cfg(test)]
    pub(super) fn handle(&self) -> &Arc<Handle> {
        &self.handle
    }

    /// Allocate one segment id per segment, registered as not yet durable (atomically with the
    /// allocation, so that readers never see a later segment without this one's bound).
    fn allocate(&self, open: &Open, n: usize) -> Result<Vec<u64>, StoreError> {
        let mut unflushed = lock(&self.handle.unflushed);
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            match open.db.generate_id() {
                Ok(id) => {
                    unflushed.insert(id);
                    ids.push(id);
                }
                Err(e) => {
                    unflushed.remove(&ids);
                    return Err(e.into());
                }
            }
        }
        Ok(ids)
    }

    /// Apply `batch` (holding `n` events in segments `ids`) and make it durable.
    fn apply(
        &self,
        open: &Open,
        batch: sled::Batch,
        ids: &[u64],
        n: usize,
    ) -> Result<(), StoreError> {
        let outbox_len = &self.handle.outbox_len;
        // Counted before the entries become visible: a publisher that sees and removes them at
        // once must find them counted, or the count would wrap below zero. Taken back only if the
        // batch was not applied; after an I/O error the reopen counts again from what is on disk.
        outbox_len.fetch_add(n, Ordering::SeqCst);
        if let Err(e) = open.tree.apply_batch(batch) {
            let _ = outbox_len.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                Some(c.saturating_sub(n))
            });
            lock(&self.handle.unflushed).remove(ids);
            return Err(e.into());
        }
        #[cfg(test)]
        self.handle.hook()?;
        let flushed = open.db.flush();
        // After an I/O error the store is reopened (and these ids forgotten); after any other
        // error the batch is applied and a later flush makes it durable.
        if !matches!(flushed, Err(sled::Error::Io(_))) {
            lock(&self.handle.unflushed).remove(ids);
        }
        flushed?;
        Ok(())
    }
}

impl Store for SledStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.handle.run(Access::Read, |o| {
            Ok(o.tree.get(snapshot_key(key))?.map(|v| v.to_vec()))
        })
    }

    fn commit_numbered(
        &self,
        writes: Vec<Write>,
        events: Vec<Vec<u8>>,
    ) -> Result<Vec<u64>, StoreError> {
        self.handle.run(Access::Write, |o| {
            let mut batch = sled::Batch::default();
            for w in writes {
                match w {
                    Write::Put(k, v) => batch.insert(snapshot_key(&k), v),
                    Write::Delete(k) => batch.remove(snapshot_key(&k)),
                }
            }
            let n = events.len();
            let segments = encode_segments(events);
            let ids = self.allocate(o, segments.len())?;
            let mut seqs = Vec::with_capacity(n);
            for (id, (segment, count)) in ids.iter().zip(segments) {
                seqs.extend((0..count).map(|index| segments::seq(*id, index)));
                batch.insert(&id_key(SEGMENT_PREFIX, *id)[..], segment);
            }
            self.apply(o, batch, &ids, n).map(|()| seqs)
        })
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
        // Taken before reading: every segment below it is durable and already in the tree.
        let bound = lock(&self.handle.unflushed).bound();
        if limit == 0 || first_segment >= bound {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(limit.min(segments::SEGMENT_EVENTS));
        self.handle.run(Access::Read, |o| {
            let start = id_key(SEGMENT_PREFIX, first_segment);
            let end = id_key(SEGMENT_PREFIX, bound);
            for item in o.tree.range(&start[..]..&end[..]) {
                let (k, v) = item?;
                let id = key_id(&k)?;
                let delivered = o.tree.get(id_key(ACK_PREFIX, id))?;
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
        })
    }

    fn outbox_remove(&self, seqs: &[u64]) -> Result<(), StoreError> {
        let _serialized = lock(&self.handle.acks);
        let mut by_segment: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for s in seqs {
            let (id, index) = segments::split(*s);
            by_segment.entry(id).or_default().push(index);
        }
        self.handle.run(Access::Write, |o| {
            let mut batch = sled::Batch::default();
            let mut removed = 0;
            for (id, indexes) in by_segment {
                // Already gone: removal is idempotent.
                let Some(segment) = o.tree.get(id_key(SEGMENT_PREFIX, id))? else {
                    continue;
                };
                let n = segments::count(&segment).ok_or_else(|| StoreError::Corrupt {
                    key: format!("outbox segment {id}"),
                    reason: "no header".into(),
                })?;
                let ack_key = id_key(ACK_PREFIX, id);
                let mut delivered = o.tree.get(ack_key)?.map(|b| b.to_vec()).unwrap_or_default();
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
            o.tree.apply_batch(batch)?;
            // Never below zero, whatever happens (a count that wrapped paused every poller).
            let _ = self
                .handle
                .outbox_len
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    Some(n.saturating_sub(removed))
                });
            Ok(())
        })
    }

    fn outbox_len(&self) -> usize {
        self.handle.outbox_len.load(Ordering::SeqCst)
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.handle.run(Access::Read, |o| {
            let mut out = Vec::new();
            for item in o.tree.scan_prefix(snapshot_key(prefix)) {
                let (k, v) = item?;
                out.push((String::from_utf8_lossy(&k[1..]).into_owned(), v.to_vec()));
            }
            Ok(out)
        })
    }

    fn increment(&self, key: &str, by: u64) -> Result<u64, StoreError> {
        self.handle.run(Access::Write, |o| {
            let new = o.tree.update_and_fetch(snapshot_key(key), |old| {
                Some(counter_value(old).saturating_add(by).to_be_bytes().to_vec())
            })?;
            o.db.flush()?;
            Ok(counter_value(new.as_deref()))
        })
    }

    fn increment_lazily(&self, key: &str, by: u64) -> Result<u64, StoreError> {
        self.handle.run(Access::Write, |o| {
            let new = o.tree.update_and_fetch(snapshot_key(key), |old| {
                Some(counter_value(old).saturating_add(by).to_be_bytes().to_vec())
            })?;
            Ok(counter_value(new.as_deref()))
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.handle.run(Access::Write, |o| {
            o.db.flush()?;
            Ok(())
        })
    }

    fn health(&self) -> StoreHealth {
        self.handle.health()
    }
}
