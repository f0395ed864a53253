//! The pure diff: `(previous snapshot, current snapshot) → events`. No IO, no clock.
//!
//! Snapshots are keyed by `(interaction_id, agent_id)`. A pair that appears → `STARTED`, a pair that
//! disappears → `ENDED`. When, in one window, an interaction disappears from some agent(s) and appears
//! at other(s), both sides are marked `transfer` and name the counterpart agent. Events are ordered by
//! interaction id, `ENDED` before `STARTED` within one interaction, so a consumer reading one key sees
//! the old agent's end before the new agent's start.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::id::{self, window};
use crate::event::reconciled::Sighting;
use crate::event::{Derivation, Event, InteractionEvent, InteractionEventType, SourceMeta};

pub mod agent_state;
pub mod agents;
pub mod latest;
pub mod snapshot;
pub mod timing;

pub use snapshot::{walk, walk_at, At, Interaction, Interactions, Step};

use timing::{span, Bounds};

/// One active interaction as last seen, owned (the snapshot keeps its interactions compactly,
/// [`Interactions`]; this is how one is built or stored apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ActiveInteraction {
    pub subject: Option<String>,
    pub from_name: Option<String>,
    /// The vendor's start (UTC ms) and its text.
    pub vendor_timestamp: Option<i64>,
    pub vendor_timestamp_raw: Option<String>,
    /// The first poll that saw it at this agent ([`InteractionSnapshot::settle`]); `None` for
    /// entries stored before ccdc kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<i64>,
    /// The poll before that one (`None`: it was there at the source's first poll).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_after: Option<i64>,
}

/// When an interaction can have started: the vendor's start if known, else between the poll
/// before the first one that saw it and that one.
fn start_bounds(it: &Interaction) -> Bounds {
    timing::start_bounds(it.vendor_timestamp, it.first_seen, it.seen_after)
}

/// Key of a snapshot entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InteractionKey {
    pub interaction_id: String,
    pub agent_id: String,
}

/// A complete, successfully fetched view of a source's active interactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct InteractionSnapshot {
    /// When the poll was made (UTC ms).
    pub observed_at: i64,
    pub interactions: Interactions,
    /// Agents this poll listed incompletely (Wolkvox: an interaction without `conn_id`), each with
    /// the time of the last poll that listed it completely (UTC ms). Such an agent keeps the
    /// interactions it had, so what this poll says of it dates from then: an interaction of it
    /// that ends is bounded as ended after that poll, and one that appears as started after it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub held: BTreeMap<String, i64>,
}

impl InteractionSnapshot {
    /// Carry what earlier polls learnt into this fresh observation: an entry seen before keeps its
    /// `first_seen` / `seen_after` (and its vendor time when its date text is unchanged); a new one
    /// was first seen now, after `previous`'s poll. `resolve` reads a vendor date text. Answers
    /// how many date texts could not be read.
    pub fn settle(
        &mut self,
        previous: Option<&InteractionSnapshot>,
        resolve: impl FnMut(&str) -> Option<i64>,
    ) -> usize {
        let now = self.observed_at;
        self.interactions.settle(
            previous.map(|p| &p.interactions),
            now,
            |agent| previous.map(|p| p.listed_before(agent)),
            resolve,
        )
    }

    /// The last poll that listed `agent` completely, as of this snapshot: this one, or for a held
    /// agent the time [`InteractionSnapshot::held`] keeps.
    pub fn listed_before(&self, agent: &str) -> i64 {
        self.held.get(agent).copied().unwrap_or(self.observed_at)
    }

    /// The held agents of a snapshot observed after `self` that lists `incomplete` incompletely:
    /// each keeps the time it was last listed completely (this poll, or earlier if it was held
    /// here too).
    pub fn hold(&self, incomplete: &[String]) -> BTreeMap<String, i64> {
        incomplete
            .iter()
            .map(|a| (a.clone(), self.listed_before(a)))
            .collect()
    }
}

/// What polling saw of the interactions that started or ended from `previous` to `current`, for
/// the reconciliation with reports (one [`Sighting`] per interaction and agent; an ended one
/// carries its end bounds). Unchanged interactions need no new sighting.
pub fn sightings(
    previous: Option<&InteractionSnapshot>,
    current: &InteractionSnapshot,
) -> Vec<(InteractionKey, Sighting)> {
    let empty = Interactions::default();
    let before = previous.map_or(&empty, |p| &p.interactions);
    let sighting = |v: &Interaction| Sighting {
        agent_id: v.agent_id.to_string(),
        started_at: v.vendor_timestamp,
        first_seen: v.first_seen.unwrap_or(current.observed_at),
        seen_after: v.seen_after,
        ..Sighting::default()
    };
    walk(before, &current.interactions)
        .filter_map(|m| match m {
            Step::Right(v) => Some((v.key(), sighting(&v))),
            Step::Left(v) => {
                let mut s = sighting(&v);
                s.ended_after = previous.map(|p| p.listed_before(v.agent_id));
                s.ended_before = Some(current.observed_at);
                Some((v.key(), s))
            }
            Step::Both(..) => None,
        })
        .collect()
}

/// One step of a merged walk over two sorted maps.
pub enum Merged<'a, K, V> {
    /// Only in the left map.
    Left(&'a K, &'a V),
    /// Only in the right map.
    Right(&'a K, &'a V),
    Both(&'a K, &'a V, &'a V),
}

/// Walk two maps in key order at once: linear, where looking every key up in the other map costs a
/// tree search per key (the diff of two 60,000-entry snapshots runs this every poll).
pub fn merge<'a, K: Ord, V>(
    left: &'a BTreeMap<K, V>,
    right: &'a BTreeMap<K, V>,
) -> impl Iterator<Item = Merged<'a, K, V>> {
    let (mut l, mut r) = (left.iter().peekable(), right.iter().peekable());
    std::iter::from_fn(move || match (l.peek(), r.peek()) {
        (None, None) => None,
        (Some(_), None) => l.next().map(|(k, v)| Merged::Left(k, v)),
        (None, Some(_)) => r.next().map(|(k, v)| Merged::Right(k, v)),
        (Some((lk, _)), Some((rk, _))) => match lk.cmp(rk) {
            std::cmp::Ordering::Less => l.next().map(|(k, v)| Merged::Left(k, v)),
            std::cmp::Ordering::Greater => r.next().map(|(k, v)| Merged::Right(k, v)),
            std::cmp::Ordering::Equal => {
                let (k, lv) = l.next()?;
                let (_, rv) = r.next()?;
                Some(Merged::Both(k, lv, rv))
            }
        },
    })
}

/// [`diff_interactions`] as outbox events.
pub fn diff_interactions_events(
    meta: &SourceMeta,
    previous: Option<&InteractionSnapshot>,
    current: &InteractionSnapshot,
) -> Vec<Event> {
    diff_into(meta, previous, current, Event::Interaction)
}

/// Derive the events that lead from `previous` to `current`. `previous = None` means this is the
/// first snapshot of the source: every interaction yields an `initial` `STARTED` event.
pub fn diff_interactions(
    meta: &SourceMeta,
    previous: Option<&InteractionSnapshot>,
    current: &InteractionSnapshot,
) -> Vec<InteractionEvent> {
    diff_into(meta, previous, current, |e| e)
}

/// The events of [`diff_interactions`], each wrapped by `wrap` as it is made (a first poll makes
/// 60,000: they are built once, in their final order and list).
fn diff_into<T>(
    meta: &SourceMeta,
    previous: Option<&InteractionSnapshot>,
    current: &InteractionSnapshot,
    wrap: impl Fn(InteractionEvent) -> T,
) -> Vec<T> {
    let empty = Interactions::default();
    let prev = previous.map_or(&empty, |p| &p.interactions);
    let window = Window::new(meta, previous.map(|p| p.observed_at), current.observed_at);
    let (mut ended, mut started) = (vec![], vec![]);
    for m in walk_at(prev, &current.interactions) {
        match m {
            At::Left(i) => ended.extend(prev.at(i)),
            At::Right(j) => started.extend(current.interactions.at(j)),
            At::Both(..) => {}
        }
    }
    // The order: by interaction, ENDED before STARTED, then by agent. A transfer's counterpart
    // is the first agent (in id order) on the other side with the same interaction.
    let by_key = |a: &Interaction, b: &Interaction| {
        (a.interaction_id, a.agent_id).cmp(&(b.interaction_id, b.agent_id))
    };
    ended.sort_unstable_by(by_key);
    started.sort_unstable_by(by_key);
    let mut events = Vec::with_capacity(ended.len() + started.len());
    let (mut i, mut j) = (0, 0);
    loop {
        let id = match (ended.get(i), started.get(j)) {
            (Some(e), Some(s)) => e.interaction_id.min(s.interaction_id),
            (Some(e), None) => e.interaction_id,
            (None, Some(s)) => s.interaction_id,
            (None, None) => break,
        };
        let (from, to) = (i, j);
        while ended.get(i).is_some_and(|e| e.interaction_id == id) {
            i += 1;
        }
        while started.get(j).is_some_and(|s| s.interaction_id == id) {
            j += 1;
        }
        let (ends, starts) = (&ended[from..i], &started[to..j]);
        let counterpart = |side: &[Interaction]| side.first().map(|v| v.agent_id.to_string());
        for v in ends {
            let mut e = window.snapshot_event(InteractionEventType::Ended, v, counterpart(starts));
            // After the last poll that listed its agent completely: the previous one, unless
            // that agent was held there.
            let after = previous.map(|p| p.listed_before(v.agent_id));
            Window::close(
                &mut e,
                start_bounds(v),
                Bounds::between(after, current.observed_at),
            );
            events.push(wrap(e));
        }
        for v in starts {
            let e = window.snapshot_event(InteractionEventType::Started, v, counterpart(ends));
            events.push(wrap(e));
        }
    }
    events
}

/// One observation window of one source: what every interaction event of its diff shares (the
/// source, the two polls, the id's window text computed once), for every vendor's diff.
pub(crate) struct Window<'a> {
    meta: &'a SourceMeta,
    pub previous_at: Option<i64>,
    pub observed_at: i64,
    /// [`window`] of `previous_at`, part of every event id.
    win: String,
}

impl<'a> Window<'a> {
    pub fn new(meta: &'a SourceMeta, previous_at: Option<i64>, observed_at: i64) -> Self {
        Window {
            meta,
            previous_at,
            observed_at,
            win: window(previous_at),
        }
    }

    /// `INITIAL_SNAPSHOT` on the source's first poll, else `SNAPSHOT_DIFF`.
    pub fn derivation(&self) -> Derivation {
        match self.previous_at {
            None => Derivation::InitialSnapshot,
            Some(_) => Derivation::SnapshotDiff,
        }
    }

    /// The event of `interaction` at `agent` in this window, with its vendor start and first
    /// sight; the vendor's extras (subject, transfer, ...) are the caller's to fill in.
    pub fn event(
        &self,
        ty: InteractionEventType,
        agent: &str,
        interaction: &str,
        start: (Option<i64>, Option<String>),
        first_seen: Option<i64>,
        derivation: Derivation,
    ) -> InteractionEvent {
        let event_id = id::interaction(&self.meta.name, ty, agent, interaction, &self.win);
        let (started_at, started_at_raw) = start;
        InteractionEvent {
            event_id: event_id.to_string(),
            event_type: ty,
            source: self.meta.name.clone(),
            vendor: self.meta.vendor.clone(),
            agent_id: agent.to_string(),
            interaction_id: interaction.to_string(),
            initial: self.previous_at.is_none(),
            transfer: false,
            transfer_agent_id: None,
            observed_at: self.observed_at,
            previous_observed_at: self.previous_at,
            vendor_timestamp: started_at,
            vendor_timestamp_raw: started_at_raw.clone(),
            subject: None,
            from_name: None,
            latest_only: false,
            started_at,
            started_at_raw,
            // A STARTED event is the first sight itself.
            first_observed_at: match ty {
                InteractionEventType::Started => Some(self.observed_at),
                InteractionEventType::Ended => first_seen,
            },
            ended_after: None,
            ended_before: None,
            duration_ms: None,
            duration_min_ms: None,
            duration_max_ms: None,
            derivation,
        }
    }

    /// An `ENDED` event's end bounds and the duration from a start within `start`.
    pub fn close(e: &mut InteractionEvent, start: Bounds, end: Bounds) {
        let d = span(start, end);
        (e.ended_after, e.ended_before) = (end.after, end.before);
        (e.duration_ms, e.duration_min_ms, e.duration_max_ms) = (d.estimate, d.min, d.max);
    }

    /// Ended within this window (after the previous poll, by this one).
    pub fn end(&self) -> Bounds {
        Bounds::between(self.previous_at, self.observed_at)
    }

    /// An interaction of a full snapshot (`seen` as the poll that saw it last had it); an `ENDED`
    /// one's end is the caller's to close.
    fn snapshot_event(
        &self,
        ty: InteractionEventType,
        seen: &Interaction,
        counterpart: Option<String>,
    ) -> InteractionEvent {
        let raw = seen.vendor_timestamp_raw.map(str::to_string);
        let mut e = self.event(
            ty,
            seen.agent_id,
            seen.interaction_id,
            (seen.vendor_timestamp, raw),
            seen.first_seen,
            self.derivation(),
        );
        e.transfer = counterpart.is_some();
        e.transfer_agent_id = counterpart;
        e.subject = seen.subject.map(str::to_string);
        e.from_name = seen.from_name.map(str::to_string);
        e
    }
}

#[cfg(test)]
mod tests;
