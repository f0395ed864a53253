//! How large snapshots are laid out in the store, so that a cycle in which 1 % of the items changed
//! writes about 1 % of the state, and the first snapshot is a few large values.
//!
//! sled spends ~6 µs and several hundred bytes of memory per entry of a batch (one commit of
//! 4,096 values of 1.1 KB: 39 ms and +33 MB of RSS; of 64 values of 70 KB: 8 ms and +11 MB). So
//! an interactions snapshot is stored as a **base** of [`CHUNKS`] large values and a **log** of
//! deltas, one value per commit, holding what changed; when the log holds more than a quarter of
//! the snapshot (at least [`MIN_LOG`] operations), the next commit writes a new base instead and
//! deletes the old one with its log. Under state key `K` (format 3, binary, `BinWriter`):
//!
//! - `K` → the header: format byte `3`, `observed_at`, the entry count, the generation `g` of the
//!   base, the sequence number of the next delta, and the operations in the log; then, when the
//!   snapshot holds agents listed incompletely ([`InteractionSnapshot::held`]), their count and
//!   each agent id with its time;
//! - `K/c/<g>/<chunk>` → the base's interactions of one chunk (the top 6 of the hash bits that
//!   order a snapshot, [`crate::diff::snapshot`]): format byte `3`, then per interaction its id,
//!   agent id, a byte of flags saying which of subject, from name, date text, vendor time, first
//!   seen and seen after follow, and those (texts length-prefixed, times zigzag varints);
//! - `K/d/<g>/<seq>` → one delta: format byte `3`, then per change `1` and an interaction (added
//!   or changed) or `2`, its id and agent id (removed). `g` and `seq` are 16 hex digits.
//!
//! Header, base and log change in the same atomic commit as the outbox events derived from them,
//! so the header's counts are a consistency check on load. Which generation and log a snapshot
//! is stored with is noted on the snapshot itself ([`Interactions::stored`]) when it is loaded or
//! its writes are made; a snapshot without that note (never stored, or built by hand) gets a new
//! base. Earlier formats are read and replaced by a base at the next commit: format 1
//! (`buckets-v1`: a JSON header `{"format":"buckets-v1",…}` and 4,096 JSON buckets `K/b/<n>`
//! of `[key, interaction]` pairs, all deleted then) and a whole-value JSON state under `K`.

use std::collections::HashMap;

use serde::Deserialize;

use super::codec::{BinReader, BinWriter};
use super::{decode_state, Store, StoreError, Write};
use crate::diff::snapshot::{Builder, Stored, ORDER_BITS};
use crate::diff::{
    walk_at, ActiveInteraction, At, InteractionKey, InteractionSnapshot, Interactions,
};

/// The format byte of every value of this layout.
const FORMAT: u8 = 3;
const FORMAT_V1: &str = "buckets-v1";

/// Buckets of format 1. Its bucket of a key is the low 12 bits of the key's hash.
pub const BUCKETS_V1: usize = 4096;
/// Chunks of a base: the top 6 of the 12 bucket bits.
pub const CHUNKS: u64 = 64;
const _: () = assert!(BUCKETS_V1 == 1 << ORDER_BITS && (BUCKETS_V1 as u64) % CHUNKS == 0);
const BUCKETS_PER_CHUNK: u64 = BUCKETS_V1 as u64 / CHUNKS;

/// The log may hold this many operations whatever the snapshot's size.
pub const MIN_LOG: u64 = 1024;

mod entry;
#[cfg(test)]
mod tests;

use entry::{read_entry, read_op, write_entry, Op, PUT, REMOVE};

/// How a snapshot is stored, noted on it as [`Stored`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Format 1's buckets (to be replaced by a base, and deleted).
    V1,
    /// A base of generation `gen`, and `next` deltas holding `logged` operations.
    Log { gen: u64, next: u64, logged: u64 },
}

impl Layout {
    fn note(self) -> Stored {
        match self {
            Layout::V1 => Stored([1, 0, 0, 0]),
            Layout::Log { gen, next, logged } => Stored([FORMAT.into(), gen, next, logged]),
        }
    }

    fn of(s: &Interactions) -> Option<Layout> {
        match s.stored()?.0 {
            [1, ..] => Some(Layout::V1),
            [3, gen, next, logged] => Some(Layout::Log { gen, next, logged }),
            _ => None,
        }
    }
}

fn chunk_key(key: &str, gen: u64, chunk: u64) -> String {
    format!("{key}/c/{gen:016x}/{chunk:02}")
}

fn delta_key(key: &str, gen: u64, seq: u64) -> String {
    format!("{key}/d/{gen:016x}/{seq:016x}")
}

fn v1_bucket_key(key: &str, bucket: usize) -> String {
    format!("{key}/b/{bucket:04}")
}

/// The writes that move the stored state from `stored` (`None`: nothing stored in this layout yet)
/// to `current`: a delta, or a new base. Notes on `current` how it will be stored.
pub fn interaction_writes(
    key: &str,
    stored: Option<&InteractionSnapshot>,
    current: &InteractionSnapshot,
) -> Vec<Write> {
    let now = &current.interactions;
    let prior = stored.and_then(|s| Layout::of(&s.interactions));
    let budget = (now.len() as u64 / 4).max(MIN_LOG);
    let (writes, layout) = match (prior, stored) {
        (Some(Layout::Log { gen, next, logged }), Some(before)) => {
            let (delta, ops) = delta(&before.interactions, now);
            if logged.saturating_add(ops) <= budget {
                let mut w = Vec::with_capacity(2);
                let next = if ops > 0 {
                    w.push(Write::Put(delta_key(key, gen, next), delta));
                    next + 1
                } else {
                    next
                };
                (
                    w,
                    Layout::Log {
                        gen,
                        next,
                        logged: logged + ops,
                    },
                )
            } else {
                rebase(key, current, prior)
            }
        }
        _ => rebase(key, current, prior),
    };
    let mut writes = writes;
    writes.push(Write::Put(key.to_string(), header(current, layout)));
    now.set_stored(layout.note());
    writes
}

/// The changes from `before` to `now` as one delta value, and how many.
fn delta(before: &Interactions, now: &Interactions) -> (Vec<u8>, u64) {
    let mut w = BinWriter::new(FORMAT, 64);
    let mut ops = 0;
    for step in walk_at(before, now) {
        let (op, it) = match step {
            At::Left(i) => (REMOVE, before.at(i)),
            At::Right(j) => (PUT, now.at(j)),
            At::Both(i, j) if !before.same_values(i, now, j) => (PUT, now.at(j)),
            At::Both(..) => continue,
        };
        let Some(it) = it else { continue };
        w.byte(op);
        if op == PUT {
            write_entry(&mut w, &it);
        } else {
            w.str(it.interaction_id);
            w.str(it.agent_id);
        }
        ops += 1;
    }
    (w.finish(), ops)
}

/// A new base of `current` (a new generation), deleting what `prior` held.
fn rebase(key: &str, current: &InteractionSnapshot, prior: Option<Layout>) -> (Vec<Write>, Layout) {
    let now = &current.interactions;
    let old = match prior {
        Some(Layout::Log { gen, .. }) => gen,
        _ => 0,
    };
    let gen = u64::try_from(current.observed_at)
        .unwrap_or(0)
        .max(old.saturating_add(1));
    let mut writes = Vec::with_capacity(CHUNKS as usize);
    for chunk in 0..CHUNKS {
        let range = now.bucket_range(chunk * BUCKETS_PER_CHUNK..(chunk + 1) * BUCKETS_PER_CHUNK);
        if range.is_empty() {
            continue;
        }
        let mut w = BinWriter::new(FORMAT, range.len() * 64);
        for it in range.filter_map(|i| now.at(i)) {
            write_entry(&mut w, &it);
        }
        writes.push(Write::Put(chunk_key(key, gen, chunk), w.finish()));
    }
    match prior {
        Some(Layout::Log { gen, next, .. }) => {
            writes.extend((0..CHUNKS).map(|c| Write::Delete(chunk_key(key, gen, c))));
            writes.extend((0..next).map(|s| Write::Delete(delta_key(key, gen, s))));
        }
        Some(Layout::V1) => {
            writes.extend((0..BUCKETS_V1).map(|b| Write::Delete(v1_bucket_key(key, b))));
        }
        None => {}
    }
    let layout = Layout::Log {
        gen,
        next: 0,
        logged: 0,
    };
    (writes, layout)
}

fn header(current: &InteractionSnapshot, layout: Layout) -> Vec<u8> {
    let mut w = BinWriter::new(FORMAT, 32);
    w.i64(current.observed_at);
    w.u64(current.interactions.len() as u64);
    if let Layout::Log { gen, next, logged } = layout {
        w.u64(gen);
        w.u64(next);
        w.u64(logged);
    }
    // Agents listed incompletely, after what earlier versions wrote (they are read without).
    if !current.held.is_empty() {
        w.u64(current.held.len() as u64);
        for (agent, at) in &current.held {
            w.str(agent);
            w.i64(*at);
        }
    }
    w.finish()
}

/// The JSON header of format 1.
#[derive(Deserialize)]
struct HeaderV1 {
    format: String,
    observed_at: i64,
    entries: usize,
}

/// The snapshot stored under `key`, and whether it is stored in a layout this module writes
/// deltas against (`false`: a whole-value state of an earlier version, to be rewritten whole).
pub fn load_interactions(
    store: &dyn Store,
    key: &str,
) -> Result<Option<(InteractionSnapshot, bool)>, StoreError> {
    let Some(head) = store.get(key)? else {
        return Ok(None);
    };
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_string(),
        reason,
    };
    let mut held = std::collections::BTreeMap::new();
    let (observed_at, interactions) = if head.first() == Some(&FORMAT) {
        let mut r = BinReader::new(key, &head, FORMAT)?;
        let (observed_at, entries) = (r.i64()?, r.u64()?);
        let (gen, next, logged) = (r.u64()?, r.u64()?, r.u64()?);
        if !r.is_done() {
            for _ in 0..r.u64()? {
                held.insert(r.str()?.to_string(), r.i64()?);
            }
        }
        let interactions = load_log(store, key, gen, next, logged)?;
        if interactions.len() as u64 != entries {
            return Err(corrupt(format!(
                "the header counts {entries} entries, the store holds {}",
                interactions.len()
            )));
        }
        interactions.set_stored(Layout::Log { gen, next, logged }.note());
        (observed_at, interactions)
    } else {
        let h = match serde_json::from_slice::<HeaderV1>(&head) {
            Ok(h) if h.format == FORMAT_V1 => h,
            Ok(h) => return Err(corrupt(format!("unknown state format `{}`", h.format))),
            Err(_) => return Ok(Some((decode_state(key, &head)?, false))),
        };
        let interactions = load_v1(store, key)?;
        if interactions.len() != h.entries {
            return Err(corrupt(format!(
                "the header counts {} entries, the store holds {}",
                h.entries,
                interactions.len()
            )));
        }
        interactions.set_stored(Layout::V1.note());
        (h.observed_at, interactions)
    };
    let snapshot = InteractionSnapshot {
        held,
        observed_at,
        interactions,
    };
    Ok(Some((snapshot, true)))
}

pub(super) fn too_large(key: &str) -> impl Fn(crate::diff::snapshot::TooLarge) -> StoreError + '_ {
    move |e| StoreError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

/// The base of generation `gen` with its `next` deltas (`logged` operations) applied.
fn load_log(
    store: &dyn Store,
    key: &str,
    gen: u64,
    next: u64,
    logged: u64,
) -> Result<Interactions, StoreError> {
    let mut b = Builder::default();
    for (k, v) in store.scan_prefix(&format!("{key}/c/{gen:016x}/"))? {
        let mut r = BinReader::new(&k, &v, FORMAT)?;
        while !r.is_done() {
            read_entry(&mut r, &mut b, &k)?;
        }
    }
    let (base, repeated) = b.finish();
    let deltas = store.scan_prefix(&format!("{key}/d/{gen:016x}/"))?;
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_string(),
        reason,
    };
    if repeated > 0 {
        return Err(corrupt(format!(
            "{repeated} interactions repeated in the base"
        )));
    }
    if deltas.len() as u64 != next {
        return Err(corrupt(format!(
            "the header counts {next} deltas, the store holds {}",
            deltas.len()
        )));
    }
    if deltas.is_empty() {
        return Ok(base);
    }
    // Later changes of a key replace earlier ones; `None`: removed.
    let mut changes: HashMap<InteractionKey, Option<ActiveInteraction>> = HashMap::new();
    let mut ops = 0u64;
    for (k, v) in &deltas {
        let mut r = BinReader::new(k, v, FORMAT)?;
        while !r.is_done() {
            let (key, change) = match read_op(&mut r)? {
                Op::Put(key, it) => (key, Some(it)),
                Op::Remove(key) => (key, None),
            };
            changes.insert(key, change);
            ops += 1;
        }
    }
    if ops != logged {
        return Err(corrupt(format!(
            "the header counts {logged} logged changes, the store holds {ops}"
        )));
    }
    let mut b = Builder::default();
    let kept = base.iter().filter(|it| !changes.contains_key(&it.key()));
    for it in kept {
        b.add(&it.key(), &it.to_active()).map_err(too_large(key))?;
    }
    for (k, v) in &changes {
        if let Some(v) = v {
            b.add(k, v).map_err(too_large(key))?;
        }
    }
    Ok(b.finish().0)
}

/// Format 1: the JSON buckets `K/b/<n>`.
fn load_v1(store: &dyn Store, key: &str) -> Result<Interactions, StoreError> {
    let mut b = Builder::default();
    for (k, v) in store.scan_prefix(&format!("{key}/b/"))? {
        let items: Vec<(InteractionKey, ActiveInteraction)> = decode_state(&k, &v)?;
        for (ik, iv) in &items {
            b.add(ik, iv).map_err(too_large(&k))?;
        }
    }
    let (interactions, repeated) = b.finish();
    if repeated > 0 {
        return Err(StoreError::Corrupt {
            key: key.to_string(),
            reason: format!("{repeated} interactions repeated in its buckets"),
        });
    }
    Ok(interactions)
}
