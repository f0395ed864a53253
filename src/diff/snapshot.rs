//! The interactions of one snapshot, held compactly: every text in one buffer, every interaction a
//! fixed-size entry pointing into it, the entries sorted by a stable hash of their key.
//!
//! A 60,000-interaction Wolkvox snapshot held as a `BTreeMap` of owned strings cost five
//! allocations per interaction to build and as many frees to drop, string comparisons at every
//! step of every tree walk, and ~25 MB. Here it is a few allocations and ~11 MB, and the walks
//! that settle, diff and store two snapshots compare fixed-width fields of the entries, not texts:
//!
//! - the order is [`key_hash`] (FNV-1a of the key, stable across processes and versions) with its
//!   low [`ORDER_BITS`] bits on top, then the key's bytes (`interaction_id`, `0xff`, `agent_id`:
//!   `0xff` never occurs in UTF-8, so the split is unambiguous). Each entry keeps the key's first
//!   [`INLINE`] bytes, so two keys are compared without reading the text unless both are longer.
//!   The store's buckets are the hash's low bits ([`crate::store::buckets`]): each bucket is one
//!   contiguous run of entries.
//! - each entry keeps an XXH3 hash of its subject, from name and date text: the same values, the
//!   same hash; a value whose hash changed is certainly new, and equal hashes are taken as equal
//!   values (a 2⁻⁶⁴ chance per comparison of keeping the previous text of an unchanged key; the
//!   interactions themselves, their keys, are always compared exactly).

use std::cmp::Ordering;

use super::{ActiveInteraction, InteractionKey};

mod build;
mod json;
mod spare;

pub use build::Builder;

/// Low bits of [`key_hash`] that lead the order (the store keeps `2^ORDER_BITS` buckets).
pub const ORDER_BITS: u32 = 12;

/// Bytes of a key kept in its entry.
pub const INLINE: usize = 24;

/// A stable hash (FNV-1a: the same in every process and version) of an interaction key.
pub fn key_hash(interaction_id: &str, agent_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key_bytes(interaction_id, agent_id) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The bytes of a key: the interaction id, `0xff`, the agent id.
fn key_bytes<'a>(interaction_id: &'a str, agent_id: &'a str) -> impl Iterator<Item = u8> + 'a {
    interaction_id.bytes().chain([0xff]).chain(agent_id.bytes())
}

/// Where one text lives in a snapshot's buffer ([`Span::NONE`]: an absent optional value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    at: u32,
    len: u32,
}

impl Span {
    pub const NONE: Span = Span {
        at: 0,
        len: u32::MAX,
    };

    /// Bytes of its text (0 when absent).
    pub fn text_len(self) -> usize {
        if self == Span::NONE {
            0
        } else {
            self.len as usize
        }
    }
}

/// What keeping one interaction costs besides its texts, at most: its entry while the list grows
/// (up to twice), its sort key, and its entry in the sorted list.
pub const ENTRY_BYTES: usize = 3 * std::mem::size_of::<Entry>() + 16;

/// The texts of a snapshot are limited to 4 GiB (its offsets are 32-bit); a response is bounded
/// far below that by `max_response_bytes`.
#[derive(Debug, thiserror::Error)]
#[error("the snapshot's texts exceed 4 GiB")]
pub struct TooLarge;

/// One interaction at one agent.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The key's hash, its low [`ORDER_BITS`] bits on top.
    order: u64,
    /// The key's first [`INLINE`] bytes, zero-padded, as big-endian words (compared as numbers,
    /// they compare as the bytes do).
    key: [u64; INLINE / 8],
    /// XXH3 of the value texts (subject, from name, date text) and which are present.
    values: u64,
    interaction: Span,
    agent: Span,
    subject: Span,
    from_name: Span,
    date_raw: Span,
    vendor_timestamp: Option<i64>,
    first_seen: Option<i64>,
    seen_after: Option<i64>,
}

impl Entry {
    fn key_len(&self) -> usize {
        self.interaction.text_len() + 1 + self.agent.text_len()
    }

    fn bucket(&self) -> u64 {
        self.order >> (64 - ORDER_BITS)
    }
}

/// One interaction of a snapshot, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interaction<'a> {
    pub interaction_id: &'a str,
    pub agent_id: &'a str,
    pub subject: Option<&'a str>,
    pub from_name: Option<&'a str>,
    pub vendor_timestamp: Option<i64>,
    pub vendor_timestamp_raw: Option<&'a str>,
    pub first_seen: Option<i64>,
    pub seen_after: Option<i64>,
}

impl Interaction<'_> {
    pub fn key(&self) -> InteractionKey {
        InteractionKey {
            interaction_id: self.interaction_id.to_string(),
            agent_id: self.agent_id.to_string(),
        }
    }

    pub fn to_active(&self) -> ActiveInteraction {
        ActiveInteraction {
            subject: self.subject.map(str::to_string),
            from_name: self.from_name.map(str::to_string),
            vendor_timestamp: self.vendor_timestamp,
            vendor_timestamp_raw: self.vendor_timestamp_raw.map(str::to_string),
            first_seen: self.first_seen,
            seen_after: self.seen_after,
        }
    }
}

/// How the store holds a snapshot, as the store records it (opaque here:
/// [`crate::store::buckets`] writes and reads it): noted when the snapshot is loaded or its writes
/// are made, so that the next writes can be a delta against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored(pub [u64; 4]);

/// The interactions of a snapshot, in [the module's order](self). Built by [`Builder`] or
/// collected from `(key, interaction)` pairs (of equal keys, the first is kept).
#[derive(Clone, Default)]
pub struct Interactions {
    text: String,
    entries: Vec<Entry>,
    stored: std::sync::OnceLock<Stored>,
}

impl Interactions {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every interaction, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Interaction<'_>> + '_ {
        self.entries.iter().map(|e| self.view(e))
    }

    /// The interaction at position `i` in order.
    pub fn at(&self, i: usize) -> Option<Interaction<'_>> {
        self.entries.get(i).map(|e| self.view(e))
    }

    pub fn get(&self, interaction_id: &str, agent_id: &str) -> Option<Interaction<'_>> {
        let order = order_of(key_hash(interaction_id, agent_id));
        let from = self.entries.partition_point(|e| e.order < order);
        self.entries[from..]
            .iter()
            .take_while(|e| e.order == order)
            .find(|e| self.str(e.interaction) == interaction_id && self.str(e.agent) == agent_id)
            .map(|e| self.view(e))
    }

    pub fn contains_key(&self, key: &InteractionKey) -> bool {
        self.get(&key.interaction_id, &key.agent_id).is_some()
    }

    /// The positions of the interactions in `buckets` (the low [`ORDER_BITS`] bits of their
    /// key's hash): one contiguous run.
    pub fn bucket_range(&self, buckets: std::ops::Range<u64>) -> std::ops::Range<usize> {
        let from = self.entries.partition_point(|e| e.bucket() < buckets.start);
        let to = self.entries.partition_point(|e| e.bucket() < buckets.end);
        from..to.max(from)
    }

    /// How the store holds this snapshot, if it said ([`Stored`]).
    pub fn stored(&self) -> Option<Stored> {
        self.stored.get().copied()
    }

    /// Note how the store holds (or will hold, once committed) this snapshot; only the first
    /// note is kept (the same writes give the same note).
    pub fn set_stored(&self, how: Stored) {
        let _ = self.stored.set(how);
    }

    /// The bucket of the interaction at position `i`.
    pub fn bucket_at(&self, i: usize) -> Option<u64> {
        self.entries.get(i).map(Entry::bucket)
    }

    /// Whether position `i` here and `j` in `other` hold the same values and times (their keys
    /// are the caller's to compare; texts by their hash, see the module).
    pub fn same_values(&self, i: usize, other: &Interactions, j: usize) -> bool {
        match (self.entries.get(i), other.entries.get(j)) {
            (Some(a), Some(b)) => {
                (a.values, a.vendor_timestamp, a.first_seen, a.seen_after)
                    == (b.values, b.vendor_timestamp, b.first_seen, b.seen_after)
            }
            _ => false,
        }
    }

    /// Bytes of text kept (for sizing the next snapshot's buffer).
    pub fn text_bytes(&self) -> usize {
        self.text.len()
    }

    fn str(&self, s: Span) -> &str {
        str_of(&self.text, s)
    }

    fn opt(&self, s: Span) -> Option<&str> {
        (s != Span::NONE).then(|| self.str(s))
    }

    fn view(&self, e: &Entry) -> Interaction<'_> {
        Interaction {
            interaction_id: self.str(e.interaction),
            agent_id: self.str(e.agent),
            subject: self.opt(e.subject),
            from_name: self.opt(e.from_name),
            vendor_timestamp: e.vendor_timestamp,
            vendor_timestamp_raw: self.opt(e.date_raw),
            first_seen: e.first_seen,
            seen_after: e.seen_after,
        }
    }

    /// Entry `a` of `self` against entry `b` of `other`, in the order.
    fn cmp_entries(&self, a: &Entry, other: &Interactions, b: &Entry) -> Ordering {
        cmp_in(&self.text, a, &other.text, b)
    }

    /// Carry what `previous` knew into this fresh observation made at `now`: an interaction seen
    /// before keeps its `first_seen` / `seen_after` (and its vendor time, when its values are
    /// the same: its date is not read again); a new one was first seen `now`, after `before` of
    /// its agent (the last poll that listed that agent completely). `resolve` reads a vendor date
    /// text. Answers how many date texts could not be read.
    pub fn settle(
        &mut self,
        previous: Option<&Interactions>,
        now: i64,
        before: impl Fn(&str) -> Option<i64>,
        mut resolve: impl FnMut(&str) -> Option<i64>,
    ) -> usize {
        let empty = Interactions::default();
        let old = previous.unwrap_or(&empty);
        let (mut j, mut unread) = (0, 0);
        for i in 0..self.entries.len() {
            let e = self.entries[i];
            let mut was = None;
            while let Some(w) = old.entries.get(j) {
                match old.cmp_entries(w, self, &e) {
                    Ordering::Less => j += 1,
                    Ordering::Equal => {
                        was = Some(*w);
                        break;
                    }
                    Ordering::Greater => break,
                }
            }
            let raw = || self.opt(e.date_raw);
            let (first_seen, seen_after, ts) = match was {
                Some(w) if w.values == e.values || old.opt(w.date_raw) == raw() => {
                    (w.first_seen, w.seen_after, w.vendor_timestamp)
                }
                Some(w) => (w.first_seen, w.seen_after, raw().and_then(&mut resolve)),
                None => (
                    Some(now),
                    before(self.str(e.agent)),
                    raw().and_then(&mut resolve),
                ),
            };
            unread += usize::from(e.date_raw != Span::NONE && ts.is_none());
            let e = &mut self.entries[i];
            (e.first_seen, e.seen_after, e.vendor_timestamp) = (first_seen, seen_after, ts);
        }
        unread
    }

    /// Read every vendor date text with `resolve` (a snapshot parsed without a previous one).
    /// Answers how many could not be read.
    pub fn resolve_dates(&mut self, mut resolve: impl FnMut(&str) -> Option<i64>) -> usize {
        let mut unread = 0;
        for i in 0..self.entries.len() {
            let raw = self.opt(self.entries[i].date_raw);
            let ts = raw.and_then(&mut resolve);
            unread += usize::from(raw.is_some() && ts.is_none());
            self.entries[i].vendor_timestamp = ts;
        }
        unread
    }
}

/// The text of `s` in `text` (empty if out of range, which a snapshot's own spans never are).
fn str_of(text: &str, s: Span) -> &str {
    text.get(s.at as usize..(s.at as usize).saturating_add(s.len as usize))
        .unwrap_or_default()
}

/// Entry `a` (texts in `ta`) against entry `b` (texts in `tb`), in the order.
#[inline]
fn cmp_in(ta: &str, a: &Entry, tb: &str, b: &Entry) -> Ordering {
    if a.order != b.order {
        return a.order.cmp(&b.order);
    }
    a.key.cmp(&b.key).then_with(|| {
        let (la, lb) = (a.key_len(), b.key_len());
        if la <= INLINE || lb <= INLINE {
            // One key is whole in its entry: with equal inline bytes it is a prefix of the other
            // (or the same key).
            la.cmp(&lb)
        } else {
            let ka = key_bytes(str_of(ta, a.interaction), str_of(ta, a.agent));
            ka.cmp(key_bytes(str_of(tb, b.interaction), str_of(tb, b.agent)))
        }
    })
}

/// The order key of a hash: its low [`ORDER_BITS`] bits on top.
fn order_of(hash: u64) -> u64 {
    hash.rotate_right(ORDER_BITS)
}

/// One step of a walk over two snapshots' interactions in order, by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// Only in the left one.
    Left(usize),
    /// Only in the right one.
    Right(usize),
    Both(usize, usize),
}

/// Walk two snapshots' interactions in order at once (linear; fixed-width fields compared, the
/// texts only for two long keys that agree in their first [`INLINE`] bytes).
pub fn walk_at<'a>(
    left: &'a Interactions,
    right: &'a Interactions,
) -> impl Iterator<Item = At> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        let step = match (left.entries.get(i), right.entries.get(j)) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => left.cmp_entries(a, right, b),
        };
        Some(match step {
            Ordering::Less => {
                i += 1;
                At::Left(i - 1)
            }
            Ordering::Greater => {
                j += 1;
                At::Right(j - 1)
            }
            Ordering::Equal => {
                (i, j) = (i + 1, j + 1);
                At::Both(i - 1, j - 1)
            }
        })
    })
}

/// One step of a walk over two snapshots' interactions in order.
pub enum Step<'a> {
    /// Only in the left one.
    Left(Interaction<'a>),
    /// Only in the right one.
    Right(Interaction<'a>),
    Both(Interaction<'a>, Interaction<'a>),
}

/// [`walk_at`] with the interactions themselves.
pub fn walk<'a>(
    left: &'a Interactions,
    right: &'a Interactions,
) -> impl Iterator<Item = Step<'a>> + 'a {
    walk_at(left, right).filter_map(|at| {
        Some(match at {
            At::Left(i) => Step::Left(left.at(i)?),
            At::Right(j) => Step::Right(right.at(j)?),
            At::Both(i, j) => Step::Both(left.at(i)?, right.at(j)?),
        })
    })
}

impl Interactions {
    /// From `(key, interaction)` pairs in any order; of equal keys the first is kept.
    pub fn try_from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a InteractionKey, &'a ActiveInteraction)>,
    ) -> Result<Self, TooLarge> {
        let mut b = Builder::default();
        for (k, v) in pairs {
            b.add(k, v)?;
        }
        Ok(b.finish().0)
    }
}

/// For tests and fixtures: [`Interactions::try_from_pairs`] of owned pairs. Panics when the texts
/// exceed 4 GiB ([`TooLarge`]); code that reads vendor or stored data uses the fallible forms.
impl FromIterator<(InteractionKey, ActiveInteraction)> for Interactions {
    fn from_iter<I: IntoIterator<Item = (InteractionKey, ActiveInteraction)>>(iter: I) -> Self {
        let pairs: Vec<(InteractionKey, ActiveInteraction)> = iter.into_iter().collect();
        match Interactions::try_from_pairs(pairs.iter().map(|(k, v)| (k, v))) {
            Ok(it) => it,
            Err(e) => panic!("collecting interactions: {e}"),
        }
    }
}

impl Drop for Interactions {
    fn drop(&mut self) {
        spare::SPARE.keep(&mut self.entries, &mut self.text);
    }
}

impl PartialEq for Interactions {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Interactions {}

impl std::fmt::Debug for Interactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
