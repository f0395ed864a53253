//! Dedupe marks: which content of each row identity a report feed has already published.
//!
//! A mark is a pair of 128-bit hashes, `(XXH3-128 of the row identity, XXH3-128 of the row's
//! content hash)`. The marks written by one commit are stored together, as one *group*, in one
//! state entry, instead of one entry per row (sled spends several microseconds per entry in a
//! batch, and a window commits tens of thousands of rows); every mark is also held in an
//! in-memory index ((identity, content) → group), loaded from the store when the feed is restored.
//!
//! An identity may have several contents marked: a changed row's earlier content, and rows that
//! share an identity (a `chat_1` chat handled by two agents is listed once per agent under one
//! `conn_id`). Keeping only an identity's latest content made every pull of such a window publish
//! both rows again, each replacing the other's mark.
//!
//! Layout: `marks/<source>/<report>/<seq>` (`seq`: 20 decimal digits, increasing in commit order;
//! a later group's copy of a mark replaces an earlier one's) →
//! `0x01` (version), `at` (i64, big-endian: UTC ms of the commit), `count` (u32, big-endian), then
//! `count` × (identity hash, content hash), each a u128, big-endian: 13 + 32 × count bytes.
//! A group expires as a whole once `at` is older than the report's `dedupe_ttl`.
//!
//! Marks of earlier versions, one JSON entry per row (`seen/<source>/<report>/<identity>` →
//! `{"hash": .., "at": ..}`), are moved into groups (one per `at`) when the feed is restored.
//!
//! Comparing hashes of the identity and content instead of the text: two different rows would
//! have to collide in both 128-bit hashes for a row to be taken for one already published.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use serde::Deserialize;

use crate::store::{Store, StoreError, Write};

/// The version byte of a group.
const VERSION: u8 = 1;
const HEADER: usize = 1 + 8 + 4;
const MARK: usize = 32;
/// Per-row marks of earlier versions moved into groups per commit of the migration.
const MIGRATE_PER_COMMIT: usize = 50_000;

/// A row's mark: `(identity hash, content hash)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mark {
    identity: u128,
    content: u128,
}

impl Mark {
    pub(super) fn of(identity: &str, content_hash: &str) -> Mark {
        Mark {
            identity: xxhash_rust::xxh3::xxh3_128(identity.as_bytes()),
            content: xxhash_rust::xxh3::xxh3_128(content_hash.as_bytes()),
        }
    }
    /// (identity hash, content hash): how the indexes know it.
    pub(super) fn pair(self) -> (u128, u128) {
        (self.identity, self.content)
    }
}

/// The index's keys are hashes already: use their low bits.
#[derive(Default)]
pub(super) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

/// (identity hash, content hash) → the group holding the mark (hashed by the content's low bits).
type Index = HashMap<(u128, u128), u64, BuildHasherDefault<Prehashed>>;
/// One chunk's marks: (identity hash, content hash).
pub(super) type ChunkIndex = HashSet<(u128, u128), BuildHasherDefault<Prehashed>>;

/// What a chunk's commit will change, applied once it is committed.
#[derive(Default)]
struct Staged {
    group: Option<(u64, i64, Vec<Mark>)>,
    expired: Vec<u64>,
}

/// The dedupe marks of one report of one source.
pub(super) struct Marks {
    prefix: String,
    legacy_prefix: String,
    index: Index,
    /// Group seq → its `at`.
    groups: BTreeMap<u64, i64>,
    next_seq: u64,
    staged: Option<Staged>,
}

/// A mark as earlier versions stored it.
#[derive(Deserialize)]
struct Legacy {
    hash: String,
    at: i64,
}

impl Marks {
    pub(super) fn new(source: &str, report: &str) -> Marks {
        Marks {
            prefix: format!("marks/{source}/{report}/"),
            legacy_prefix: format!("seen/{source}/{report}/"),
            index: Index::default(),
            groups: BTreeMap::new(),
            next_seq: 0,
            staged: None,
        }
    }

    fn key(&self, seq: u64) -> String {
        format!("{}{seq:020}", self.prefix)
    }

    /// An index of one chunk's own marks, for `rows` rows.
    pub(super) fn chunk_index(rows: usize) -> ChunkIndex {
        ChunkIndex::with_capacity_and_hasher(rows, Default::default())
    }

    /// Whether this content of this identity was published (and committed) before.
    pub(super) fn contains(&self, m: Mark) -> bool {
        self.index.contains_key(&m.pair())
    }

    /// Marks held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// (Re)load every committed mark from `store`, dropping anything staged; move marks of the
    /// earlier per-row layout into groups first.
    pub(super) fn load(&mut self, store: &dyn Store) -> Result<(), StoreError> {
        self.index.clear();
        self.groups.clear();
        self.staged = None;
        self.next_seq = 0;
        for (key, value) in store.scan_prefix(&self.prefix)? {
            let seq = key[self.prefix.len()..].parse::<u64>().ok();
            let Some(seq) = seq else {
                tracing::warn!(%key, "not a dedupe mark group key; ignored");
                continue;
            };
            self.next_seq = self.next_seq.max(seq.saturating_add(1));
            match decode(&value) {
                Ok((at, marks)) => {
                    self.groups.insert(seq, at);
                    self.insert(seq, &marks);
                }
                Err(reason) => {
                    // Its rows may be published again (duplicates, never a gap); it is deleted
                    // with the next sweep.
                    tracing::warn!(%key, %reason, "unreadable dedupe marks: their rows may be published again");
                    self.groups.insert(seq, i64::MIN);
                }
            }
        }
        self.migrate(store)
    }

    fn insert(&mut self, seq: u64, marks: &[Mark]) {
        for m in marks {
            self.index.insert(m.pair(), seq);
        }
    }

    /// Move per-row marks of earlier versions into groups, one group per `at`, each commit
    /// deleting the entries it moved. Their marks are in the index whatever happens: after a
    /// failed commit the rest stay where they are, for the next restore to move.
    fn migrate(&mut self, store: &dyn Store) -> Result<(), StoreError> {
        let legacy = store.scan_prefix(&self.legacy_prefix)?;
        if legacy.is_empty() {
            return Ok(());
        }
        let mut failed = None;
        for part in legacy.chunks(MIGRATE_PER_COMMIT) {
            let mut by_at: BTreeMap<i64, Vec<Mark>> = BTreeMap::new();
            let mut writes = Vec::with_capacity(part.len() + 1);
            for (key, value) in part {
                let identity = &key[self.legacy_prefix.len()..];
                // An unreadable one is dropped, as the sweep of earlier versions dropped it.
                if let Ok(l) = serde_json::from_slice::<Legacy>(value) {
                    by_at
                        .entry(l.at)
                        .or_default()
                        .push(Mark::of(identity, &l.hash));
                }
                writes.push(Write::Delete(key.clone()));
            }
            let groups: Vec<(u64, i64, Vec<Mark>)> = by_at
                .into_iter()
                .enumerate()
                .map(|(i, (at, marks))| (self.next_seq + i as u64, at, marks))
                .collect();
            self.next_seq += groups.len() as u64;
            if failed.is_none() {
                writes.extend(
                    groups
                        .iter()
                        .map(|(seq, at, m)| Write::Put(self.key(*seq), encode(*at, m))),
                );
                failed = store.commit(writes, Vec::new()).err();
            }
            for (seq, at, marks) in groups {
                self.groups.insert(seq, at);
                self.insert(seq, &marks);
            }
        }
        match failed {
            None => tracing::info!(
                marks = legacy.len(),
                "dedupe marks moved to the grouped layout"
            ),
            Some(e) => {
                tracing::warn!(error = %e, "dedupe marks not all moved to the grouped layout yet (they are in use all the same); retried at the next restore")
            }
        }
        Ok(())
    }

    /// Stage a chunk's new marks (written at `now_ms`) and the expiry of groups older than
    /// `expire_before` (if given): the writes to commit with the chunk. Applied by
    /// [`Marks::committed`]; a new stage replaces one never committed.
    pub(super) fn stage(
        &mut self,
        marks: Vec<Mark>,
        now_ms: i64,
        expire_before: Option<i64>,
    ) -> Vec<Write> {
        let mut writes = Vec::new();
        let mut staged = Staged::default();
        if !marks.is_empty() {
            let seq = self.next_seq;
            writes.push(Write::Put(self.key(seq), encode(now_ms, &marks)));
            staged.group = Some((seq, now_ms, marks));
        }
        if let Some(cutoff) = expire_before {
            for (&seq, _) in self.groups.iter().filter(|(_, &at)| at < cutoff) {
                writes.push(Write::Delete(self.key(seq)));
                staged.expired.push(seq);
            }
        }
        self.staged = Some(staged);
        writes
    }

    /// The staged chunk was committed.
    pub(super) fn committed(&mut self) {
        let Some(s) = self.staged.take() else {
            return;
        };
        if !s.expired.is_empty() {
            for seq in &s.expired {
                self.groups.remove(seq);
            }
            let groups = &self.groups;
            // A mark a later group holds again stays with that group.
            self.index.retain(|_, seq| groups.contains_key(seq));
        }
        if let Some((seq, at, marks)) = s.group {
            self.groups.insert(seq, at);
            self.insert(seq, &marks);
            self.next_seq = seq + 1;
        }
    }

    /// The staged chunk was not committed: forget it.
    pub(super) fn discard(&mut self) {
        self.staged = None;
    }
}

fn encode(at: i64, marks: &[Mark]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + MARK * marks.len());
    out.push(VERSION);
    out.extend_from_slice(&at.to_be_bytes());
    out.extend_from_slice(&(marks.len() as u32).to_be_bytes());
    for m in marks {
        out.extend_from_slice(&m.identity.to_be_bytes());
        out.extend_from_slice(&m.content.to_be_bytes());
    }
    out
}

fn decode(bytes: &[u8]) -> Result<(i64, Vec<Mark>), String> {
    let (&version, rest) = bytes.split_first().ok_or("empty")?;
    if version != VERSION {
        return Err(format!("unknown version {version}"));
    }
    let at = rest.get(..8).ok_or("no time")?;
    let count = rest.get(8..12).ok_or("no count")?;
    let at = i64::from_be_bytes(at.try_into().map_err(|_| "time")?);
    let count = u32::from_be_bytes(count.try_into().map_err(|_| "count")?) as usize;
    let body = &rest[12..];
    if Some(body.len()) != count.checked_mul(MARK) {
        return Err(format!("{count} marks in {} bytes", body.len()));
    }
    let u128_at = |b: &[u8]| {
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        u128::from_be_bytes(a)
    };
    let marks = body
        .chunks_exact(MARK)
        .map(|m| Mark {
            identity: u128_at(&m[..16]),
            content: u128_at(&m[16..]),
        })
        .collect();
    Ok((at, marks))
}

#[cfg(test)]
mod tests;
