//! Agent status diff, shared by every vendor: `(previous, current) → agent-status-changed` events.
//!
//! - an agent seen for the first time emits its status, marked `initial`;
//! - a status change emits previous and current status (and names when known);
//! - an agent no longer listed emits a change to [`ABSENT`]; it stays in the snapshot as absent, so
//!   its return is a change from `ABSENT`, not a new initial status. When the list came in several
//!   pages (Comm100), one poll that misses an agent proves nothing (the list may have shifted
//!   between pages): the agent keeps its state, and only a second consecutive poll that misses it
//!   makes it `ABSENT` (derivation `CONFIRMED_ABSENT`, one interval late, with the logout's time
//!   bounded by the last poll that listed it and the first that did not);
//! - other fields (counters) changing alone emit nothing; they ride along in the next event.
//!
//! Times: [`AgentSnapshot::settle`] gives every status the moment it began, as bounds and an
//! estimate ([`super::timing`]), carried from poll to poll while the status lasts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::timing::Bounds;
use crate::event::id::{self, window};
use crate::event::{
    AgentStatusEvent, Comm100AgentDetails, Derivation, Event, SourceMeta, WolkvoxAgentDetails,
    ABSENT,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AgentState {
    pub name: Option<String>,
    pub status: String,
    pub status_name: Option<String>,
    pub wolkvox: Option<WolkvoxAgentDetails>,
    pub comm100: Option<Comm100AgentDetails>,
    /// What the vendor says of when the status began (Wolkvox: `observed_at − time_state_now`),
    /// set by the source on a fresh observation; [`AgentSnapshot::settle`] turns it into `since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_hint: Option<i64>,
    /// When the current status began: the estimate and its bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    #[serde(default, skip_serializing_if = "is_unbounded")]
    pub since_bounds: Bounds,
    /// The last poll that listed the agent (Comm100: when the page that listed it was answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<i64>,
    /// When this observation listed the agent, when that is not the snapshot's `observed_at`
    /// (Comm100: the answer of its page, before the last page's); set by the source, taken by
    /// [`AgentSnapshot::settle`]. Not stored.
    #[serde(skip)]
    pub seen_hint: Option<i64>,
    /// Consecutive polls of a paged list that did not list the agent (not yet believed absent).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missed: u32,
    /// The first of those polls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed_since: Option<i64>,
    /// The status became `ABSENT` only after a second consecutive miss.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub confirmed_absent: bool,
    /// The last poll that judged the agent absent: the one that made it `ABSENT`, then every
    /// whole listing without it (a paged or partial one proves nothing about an absent agent, who
    /// may have come back on a page already read). `agent-state` refreshes only what a poll judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absent_at: Option<i64>,
}

fn is_unbounded(b: &Bounds) -> bool {
    *b == Bounds::default()
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AgentSnapshot {
    pub observed_at: i64,
    /// By agent id. Absent agents are kept with status [`ABSENT`].
    pub agents: BTreeMap<String, AgentState>,
}

/// How much one poll's list proves about agents it does not contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// One response: an agent not in it is gone.
    Whole,
    /// Several pages read one after the other: the list may have shifted between them, so an
    /// agent missing from it is gone only if the next poll misses it too.
    Paged,
    /// Not the whole list (the vendor claimed more pages than ccdc reads in one poll): an agent
    /// missing from it proves nothing, and the poll does not count as a miss.
    Partial,
}

impl AgentSnapshot {
    /// Agents currently listed (not absent).
    pub fn present(&self) -> usize {
        self.agents.values().filter(|a| a.status != ABSENT).count()
    }

    /// Make this fresh observation a complete state: agents of `previous` it lacks are absent (or,
    /// from a [`Listing::Paged`] list, absent only when missed twice in a row), and every status
    /// knows when it began (carried over while it lasts).
    pub fn settle(&mut self, previous: Option<&AgentSnapshot>, listing: Listing) {
        let now = self.observed_at;
        let before = previous.map(|p| p.observed_at);
        for state in self.agents.values_mut() {
            state.last_seen = Some(state.seen_hint.take().unwrap_or(now));
        }
        if let Some(p) = previous {
            for (id, was) in &p.agents {
                if !self.agents.contains_key(id) {
                    self.agents
                        .insert(id.clone(), missing(was, now, before, listing));
                }
            }
        }
        for (id, state) in self.agents.iter_mut() {
            let was = previous.and_then(|p| p.agents.get(id));
            match was.filter(|w| w.status == state.status) {
                Some(w) => {
                    state.since = w.since;
                    state.since_bounds = w.since_bounds;
                }
                None if state.status == ABSENT && state.since.is_some() => {}
                None => {
                    // Since the last poll that listed the agent (the previous one, unless a
                    // paged poll missed it in between); back from ABSENT: the previous poll.
                    let since = match was {
                        Some(w) if w.status != ABSENT => w.last_seen.or(before),
                        Some(_) => before,
                        None => None,
                    };
                    // By the moment this poll listed it.
                    let window = Bounds::between(since, state.last_seen.unwrap_or(now));
                    // The vendor counts whole seconds in the status: it began in the second
                    // before `observed_at − time_state_now`, inside the observation window.
                    let told = state.since_hint.map(|t| Bounds {
                        after: t.checked_sub(super::timing::VENDOR_TIME_RESOLUTION_MS),
                        before: Some(t),
                    });
                    // A vendor counter that disagrees with the polls: believe the polls.
                    state.since_bounds = told.and_then(|t| t.intersect(&window)).unwrap_or(window);
                    state.since = match (was, state.since_hint) {
                        (None, None) => None,
                        _ => state.since_bounds.estimate(),
                    };
                }
            }
            state.since_hint = None;
        }
    }
}

impl AgentSnapshot {
    /// [`AgentSnapshot::settle`], the agents listed without a status (`unknown`) kept as they
    /// were: what such an agent's status is now is unknown, which is neither a change nor a
    /// logout. One seen before keeps its state for this poll, and the last poll that saw its
    /// status (a change found later began after that one); a new one waits for a status.
    pub fn settle_keeping_unknown(
        &mut self,
        unknown: Vec<String>,
        previous: Option<&AgentSnapshot>,
        listing: Listing,
    ) {
        let mut kept = Vec::new();
        for id in unknown {
            if let Some(was) = previous.and_then(|p| p.agents.get(&id)) {
                kept.push((id.clone(), was.last_seen));
                self.agents.insert(id, was.clone());
            }
        }
        self.settle(previous, listing);
        for (id, last_seen) in kept {
            if let Some(a) = self.agents.get_mut(&id) {
                a.last_seen = last_seen;
            }
        }
    }
}

/// The state of an agent that `previous` had and this poll did not list.
fn missing(was: &AgentState, now: i64, before: Option<i64>, listing: Listing) -> AgentState {
    if was.status == ABSENT || listing == Listing::Partial {
        let judged = was.status == ABSENT && listing == Listing::Whole;
        return AgentState {
            missed: if was.status == ABSENT { 0 } else { was.missed },
            absent_at: if judged { Some(now) } else { was.absent_at },
            ..was.clone()
        };
    }
    let missed = was.missed.saturating_add(1);
    let missed_since = was.missed_since.or(Some(now));
    if listing == Listing::Paged && missed < 2 {
        // Not believed yet: the same state, one miss counted.
        return AgentState {
            missed,
            missed_since,
            ..was.clone()
        };
    }
    // Gone: between the last poll that listed it and the first that did not.
    let gone = Bounds {
        after: was.last_seen.or(before),
        before: missed_since,
    };
    AgentState {
        name: was.name.clone(),
        status: ABSENT.into(),
        since: gone.estimate(),
        since_bounds: gone,
        last_seen: was.last_seen,
        confirmed_absent: listing == Listing::Paged,
        absent_at: Some(now),
        ..AgentState::default()
    }
}

/// The events leading from `previous` to `current`. `current` must be settled
/// ([`AgentSnapshot::settle`]).
pub fn diff_agents(
    meta: &SourceMeta,
    previous: Option<&AgentSnapshot>,
    current: &AgentSnapshot,
) -> Vec<Event> {
    let prev_at = previous.map(|p| p.observed_at);
    let win = window(prev_at);
    let mut events = Vec::new();
    for (id, cur) in &current.agents {
        let before = previous.and_then(|p| p.agents.get(id));
        let changed = match before {
            None => cur.status != ABSENT,
            Some(b) => b.status != cur.status,
        };
        if !changed {
            continue;
        }
        let derivation = match (before, cur.confirmed_absent) {
            (None, _) if prev_at.is_none() => Derivation::InitialSnapshot,
            (Some(_), true) if cur.status == ABSENT => Derivation::ConfirmedAbsent,
            _ => Derivation::SnapshotDiff,
        };
        let previous_duration = before.map(|b| previous_span(b, cur)).unwrap_or_default();
        events.push(Event::AgentStatus(Box::new(AgentStatusEvent {
            event_id: id::agent_status(&meta.name, id, &win).to_string(),
            source: meta.name.clone(),
            vendor: meta.vendor.clone(),
            agent_id: id.clone(),
            agent_name: cur.name.clone(),
            status: cur.status.clone(),
            status_name: cur.status_name.clone(),
            previous_status: before.map(|b| b.status.clone()),
            previous_status_name: before.and_then(|b| b.status_name.clone()),
            initial: before.is_none(),
            observed_at: current.observed_at,
            previous_observed_at: prev_at,
            wolkvox: cur.wolkvox.clone(),
            comm100: cur.comm100.clone(),
            status_since: cur.since,
            status_since_after: cur.since_bounds.after,
            status_since_before: cur.since_bounds.before,
            previous_status_since: before.and_then(|b| b.since),
            previous_status_duration_ms: previous_duration.estimate,
            previous_status_duration_min_ms: previous_duration.min,
            previous_status_duration_max_ms: previous_duration.max,
            derivation,
        })));
    }
    events
}

/// How long the status `was` lasted, ending when `now` began.
fn previous_span(was: &AgentState, now: &AgentState) -> super::timing::Span {
    let mut span = super::timing::span(was.since_bounds, now.since_bounds);
    span.estimate = match (was.since, now.since) {
        (Some(a), Some(b)) => b.checked_sub(a).map(|d| d.max(0)),
        _ => None,
    };
    span
}

#[cfg(test)]
mod tests;
