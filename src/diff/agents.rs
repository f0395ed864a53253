//! Agent status diff, shared by every vendor: `(previous, current) → agent-status-changed` events.
//!
//! - an agent seen for the first time emits its status, marked `initial`;
//! - a status change emits previous and current status (and names when known);
//! - an agent no longer listed emits a change to [`ABSENT`]; it stays in the snapshot as absent, so
//!   its return is a change from `ABSENT`, not a new initial status;
//! - other fields (counters) changing alone emit nothing; they ride along in the next event.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::id::{self, window};
use crate::event::{
    AgentStatusEvent, Comm100AgentDetails, Event, SourceMeta, WolkvoxAgentDetails, ABSENT,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AgentState {
    pub name: Option<String>,
    pub status: String,
    pub status_name: Option<String>,
    pub wolkvox: Option<WolkvoxAgentDetails>,
    pub comm100: Option<Comm100AgentDetails>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AgentSnapshot {
    pub observed_at: i64,
    /// By agent id. Absent agents are kept with status [`ABSENT`].
    pub agents: BTreeMap<String, AgentState>,
}

impl AgentSnapshot {
    /// Agents currently listed (not absent).
    pub fn present(&self) -> usize {
        self.agents.values().filter(|a| a.status != ABSENT).count()
    }

    /// Mark every agent of `previous` that `self` lacks as absent (the vendor no longer lists it).
    pub fn carry_absent(&mut self, previous: Option<&AgentSnapshot>) {
        if let Some(p) = previous {
            for (id, a) in &p.agents {
                self.agents.entry(id.clone()).or_insert_with(|| AgentState {
                    name: a.name.clone(),
                    status: ABSENT.into(),
                    status_name: None,
                    wolkvox: None,
                    comm100: None,
                });
            }
        }
    }
}

/// The events leading from `previous` to `current`. `current` must already hold absent agents
/// (see [`AgentSnapshot::carry_absent`]).
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
        let eid = id::agent_status(&meta.name, id, &win);
        events.push(Event::AgentStatus(Box::new(AgentStatusEvent {
            event_id: eid.to_string(),
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
        })));
    }
    events
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
        s.carry_absent(previous);
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
}
