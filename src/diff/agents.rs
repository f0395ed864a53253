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
    /// The last poll that listed the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<i64>,
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
            state.last_seen = Some(now);
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
                    let window = Bounds::between(since, now);
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
mod tests {
    use super::*;

    fn meta() -> SourceMeta {
        SourceMeta {
            name: "s".into(),
            vendor: "comm100".into(),
        }
    }

    fn snap(at: i64, agents: &[(&str, &str)], previous: Option<&AgentSnapshot>) -> AgentSnapshot {
        let mut s = AgentSnapshot {
            observed_at: at,
            agents: agents
                .iter()
                .map(|(id, st)| {
                    (
                        id.to_string(),
                        AgentState {
                            name: Some(format!("n{id}")),
                            status: st.to_string(),
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        };
        s.settle(previous, Listing::Whole);
        s
    }

    fn brief(ev: &[Event]) -> Vec<(String, Option<String>, String, bool)> {
        ev.iter()
            .map(|e| match e {
                Event::AgentStatus(a) => (
                    a.agent_id.clone(),
                    a.previous_status.clone(),
                    a.status.clone(),
                    a.initial,
                ),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn first_sight_is_initial_then_changes_absence_and_return() {
        let s1 = snap(1, &[("a", "Ready"), ("b", "Aux")], None);
        assert_eq!(
            brief(&diff_agents(&meta(), None, &s1)),
            vec![
                ("a".into(), None, "Ready".into(), true),
                ("b".into(), None, "Aux".into(), true)
            ]
        );
        let s2 = snap(2, &[("a", "Busy"), ("b", "Aux"), ("c", "Ready")], Some(&s1));
        assert_eq!(
            brief(&diff_agents(&meta(), Some(&s1), &s2)),
            vec![
                ("a".into(), Some("Ready".into()), "Busy".into(), false),
                ("c".into(), None, "Ready".into(), true)
            ]
        );
        let s3 = snap(3, &[("a", "Busy"), ("c", "Ready")], Some(&s2));
        assert_eq!(
            brief(&diff_agents(&meta(), Some(&s2), &s3)),
            vec![("b".into(), Some("Aux".into()), ABSENT.into(), false)]
        );
        assert_eq!(s3.present(), 2);
        // Still absent: nothing. Back: a change from ABSENT, not a new initial.
        let s4 = snap(4, &[("a", "Busy"), ("c", "Ready")], Some(&s3));
        assert!(diff_agents(&meta(), Some(&s3), &s4).is_empty());
        let s5 = snap(
            5,
            &[("a", "Busy"), ("b", "Ready"), ("c", "Ready")],
            Some(&s4),
        );
        assert_eq!(
            brief(&diff_agents(&meta(), Some(&s4), &s5)),
            vec![("b".into(), Some(ABSENT.into()), "Ready".into(), false)]
        );
    }

    #[test]
    fn counters_alone_emit_nothing_and_ids_are_stable() {
        let s1 = snap(1, &[("a", "Ready")], None);
        let mut s2 = snap(2, &[("a", "Ready")], Some(&s1));
        s2.agents.get_mut("a").unwrap().comm100 = Some(Comm100AgentDetails {
            ongoing_chats: Some(3),
            ..Default::default()
        });
        assert!(diff_agents(&meta(), Some(&s1), &s2).is_empty());
        let s3 = snap(3, &[("a", "Busy")], Some(&s1));
        let a = diff_agents(&meta(), Some(&s1), &s3);
        let b = diff_agents(&meta(), Some(&s1), &snap(4, &[("a", "Busy")], Some(&s1)));
        assert_eq!(a[0].event_id(), b[0].event_id());
    }

    fn listed(at: i64, ids: &[&str], previous: &AgentSnapshot, listing: Listing) -> AgentSnapshot {
        let mut s = AgentSnapshot {
            observed_at: at,
            agents: ids
                .iter()
                .map(|id| {
                    let state = AgentState {
                        status: "Online".into(),
                        ..Default::default()
                    };
                    (id.to_string(), state)
                })
                .collect(),
        };
        s.settle(Some(previous), listing);
        s
    }

    /// The interleaving an acceptance run found: pages of 2; between page 1 and page 2 of one poll,
    /// a1 (page 1) logs out and a5 logs in at the end, so a3 slides from page 2 onto page 1 and is
    /// on no page: that poll sees a1, a2, a4, a5 — exactly `total` distinct agents.
    #[test]
    fn an_agent_hidden_by_a_shift_between_pages_is_not_reported_absent() {
        let mut s0 = AgentSnapshot {
            observed_at: 1_000,
            ..Default::default()
        };
        for id in ["a1", "a2", "a3", "a4"] {
            s0.agents.insert(
                id.into(),
                AgentState {
                    status: "Online".into(),
                    ..Default::default()
                },
            );
        }
        s0.settle(None, Listing::Paged);
        let s1 = listed(2_000, &["a1", "a2", "a4", "a5"], &s0, Listing::Paged);
        let e1 = diff_agents(&meta(), Some(&s0), &s1);
        assert_eq!(brief(&e1), vec![("a5".into(), None, "Online".into(), true)]);
        assert_eq!(s1.agents["a3"].status, "Online", "a3 keeps its state");
        // The next poll lists everyone as they are now: a3 is back on page 1, a1 is missing once.
        let s2 = listed(3_000, &["a2", "a3", "a4", "a5"], &s1, Listing::Paged);
        assert!(
            diff_agents(&meta(), Some(&s1), &s2).is_empty(),
            "no a3 return, no a1 yet"
        );
        // A second miss: a1 is gone, between the last poll that listed it and the first that did not.
        let s3 = listed(4_000, &["a2", "a3", "a4", "a5"], &s2, Listing::Paged);
        let e3 = diff_agents(&meta(), Some(&s2), &s3);
        assert_eq!(
            brief(&e3),
            vec![("a1".into(), Some("Online".into()), ABSENT.into(), false)]
        );
        let Event::AgentStatus(a1) = &e3[0] else {
            panic!()
        };
        assert_eq!(a1.derivation, Derivation::ConfirmedAbsent);
        assert_eq!(
            (
                a1.status_since_after,
                a1.status_since_before,
                a1.status_since
            ),
            (Some(2_000), Some(3_000), Some(2_500))
        );
        // One response is one moment: a missing agent is gone at once.
        let s4 = listed(5_000, &["a2", "a3", "a4"], &s3, Listing::Whole);
        let e4 = diff_agents(&meta(), Some(&s3), &s4);
        assert_eq!(
            brief(&e4),
            vec![("a5".into(), Some("Online".into()), ABSENT.into(), false)]
        );
        let Event::AgentStatus(a5) = &e4[0] else {
            panic!()
        };
        assert_eq!(a5.derivation, Derivation::SnapshotDiff);
    }

    #[test]
    fn status_times_are_bounded_by_polls_or_told_by_the_vendor() {
        let hinted = |at: i64, status: &str, since: Option<i64>| AgentSnapshot {
            observed_at: at,
            agents: [(
                "a".to_string(),
                AgentState {
                    status: status.into(),
                    since_hint: since,
                    ..Default::default()
                },
            )]
            .into(),
        };
        // Initial: the vendor's time when it tells (Wolkvox, whole seconds: the status began in
        // the second before 4,000), else unknown.
        let mut s1 = hinted(10_000, "Ready", Some(4_000));
        s1.settle(None, Listing::Whole);
        assert_eq!(s1.agents["a"].since, Some(3_500));
        assert_eq!(
            s1.agents["a"].since_bounds,
            Bounds {
                after: Some(3_001),
                before: Some(4_000)
            }
        );
        let mut quiet = hinted(10_000, "Ready", None);
        quiet.settle(None, Listing::Whole);
        assert_eq!(quiet.agents["a"].since, None);
        // The same status later keeps its start, whatever the vendor's counter says now.
        let mut s2 = hinted(20_000, "Ready", Some(19_000));
        s2.settle(Some(&s1), Listing::Whole);
        assert_eq!(s2.agents["a"].since, Some(3_500));
        // A change whose vendor counter points before the window (18,000 < 20,000): the polls win.
        let mut s3 = hinted(30_000, "Busy", Some(18_000));
        s3.settle(Some(&s2), Listing::Whole);
        let e = diff_agents(&meta(), Some(&s2), &s3);
        let Event::AgentStatus(busy) = &e[0] else {
            panic!()
        };
        assert_eq!(
            busy.status_since,
            Some(25_000),
            "a vendor counter outside the window: the polls' window"
        );
        assert_eq!(busy.previous_status_since, Some(3_500));
        assert_eq!(busy.previous_status_duration_ms, Some(21_500));
        // A vendor counter inside the window: the second it names.
        let mut inside = hinted(30_000, "Busy", Some(25_000));
        inside.settle(Some(&s2), Listing::Whole);
        assert_eq!(
            inside.agents["a"].since_bounds,
            Bounds {
                after: Some(24_001),
                before: Some(25_000)
            }
        );
        // Without the vendor's time: the middle of the window, with its bounds.
        let mut s4 = hinted(40_000, "Away", None);
        s4.settle(Some(&s3), Listing::Whole);
        let e = diff_agents(&meta(), Some(&s3), &s4);
        let Event::AgentStatus(away) = &e[0] else {
            panic!()
        };
        assert_eq!(
            (
                away.status_since,
                away.status_since_after,
                away.status_since_before
            ),
            (Some(35_000), Some(30_000), Some(40_000))
        );
        assert_eq!(away.previous_status_duration_ms, Some(10_000));
        assert_eq!(
            (
                away.previous_status_duration_min_ms,
                away.previous_status_duration_max_ms
            ),
            (Some(0), Some(20_000))
        );
        assert_eq!(away.derivation, Derivation::SnapshotDiff);
    }

    /// A fresh observation of agent `a` in `status` (not settled yet).
    fn agent_a(at: i64, status: &str) -> AgentSnapshot {
        let state = AgentState {
            status: status.into(),
            ..Default::default()
        };
        AgentSnapshot {
            observed_at: at,
            agents: [("a".to_string(), state)].into(),
        }
    }

    #[test]
    fn a_change_seen_after_a_paged_miss_is_bounded_by_the_last_poll_that_listed_the_agent() {
        let mut s0 = agent_a(1_000, "Online");
        s0.settle(None, Listing::Paged);
        let s1 = listed(2_000, &[], &s0, Listing::Paged); // missed once: kept
        let mut s2 = agent_a(3_000, "Away");
        s2.settle(Some(&s1), Listing::Paged);
        let e = diff_agents(&meta(), Some(&s1), &s2);
        let Event::AgentStatus(away) = &e[0] else {
            panic!()
        };
        assert_eq!(
            (away.status_since_after, away.status_since_before),
            (Some(1_000), Some(3_000)),
            "the 2,000 poll did not list the agent: the change may be from before it"
        );
    }

    #[test]
    fn an_agent_missing_from_a_partial_list_is_never_judged() {
        let mut s0 = agent_a(1_000, "Online");
        s0.settle(None, Listing::Whole);
        let mut s = s0;
        for at in [2_000, 3_000, 4_000] {
            let next = listed(at, &[], &s, Listing::Partial);
            assert!(diff_agents(&meta(), Some(&s), &next).is_empty(), "at {at}");
            assert_eq!(next.agents["a"].missed, 0);
            s = next;
        }
    }
}
