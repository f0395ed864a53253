//! Diff for vendors that only show each agent's latest interaction (Vonage `latestInteractions`):
//!
//! - a new guid at an agent → `STARTED` (and the agent's previous interaction, if it had not ended,
//!   → `ENDED`: the agent moved on);
//! - the same guid going from `hasEnded: false` to `true` → `ENDED`;
//! - a new guid already ended when first seen → `STARTED` and `ENDED` together;
//! - the first observation of a source reports only interactions still running (`initial`).
//!
//! Every event is marked `latest_only`: an interaction that starts and ends between two polls, or
//! that is followed by another before the next poll, is never seen.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::timing::Bounds;
use super::Window;
use crate::event::{Derivation, Event, InteractionEvent, InteractionEventType, SourceMeta};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestInteraction {
    pub guid: String,
    /// The vendor's start (UTC ms) and its text.
    pub start: Option<i64>,
    pub start_raw: Option<String>,
    pub has_ended: bool,
    /// The first poll that saw this guid at this agent ([`LatestSnapshot::settle`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<i64>,
    /// The poll before that one (`None`: there at the source's first poll).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_after: Option<i64>,
}

impl LatestInteraction {
    fn start_bounds(&self) -> Bounds {
        super::timing::start_bounds(self.start, self.first_seen, self.seen_after)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LatestSnapshot {
    pub observed_at: i64,
    /// By agent id: the latest interaction, or `None` when the agent has none.
    pub agents: BTreeMap<String, Option<LatestInteraction>>,
    /// Agents this poll could not observe (the vendor answered 404): their entry is the previous
    /// poll's, carried over. Not stored: it describes one poll.
    #[serde(skip)]
    pub not_found: std::collections::BTreeSet<String>,
}

impl LatestSnapshot {
    /// Carry `first_seen` / `seen_after` of a guid already seen at the agent; a new one was first
    /// seen now, after `previous`'s poll.
    pub fn settle(&mut self, previous: Option<&LatestSnapshot>) {
        let (now, before) = (self.observed_at, previous.map(|p| p.observed_at));
        for (agent, latest) in self.agents.iter_mut() {
            let Some(cur) = latest else { continue };
            let was = previous
                .and_then(|p| p.agents.get(agent))
                .and_then(|w| w.as_ref())
                .filter(|w| w.guid == cur.guid);
            (cur.first_seen, cur.seen_after) = match was {
                Some(w) => (w.first_seen, w.seen_after),
                None => (Some(now), before),
            };
        }
    }
}

/// A `latest_only` event of `it` at `agent` in window `w`.
fn latest_event(
    w: &Window,
    ty: InteractionEventType,
    agent: &str,
    it: &LatestInteraction,
    derivation: Derivation,
) -> InteractionEvent {
    let start = (it.start, it.start_raw.clone());
    let mut e = w.event(ty, agent, &it.guid, start, it.first_seen, derivation);
    e.latest_only = true;
    e
}

fn started(w: &Window, agent: &str, it: &LatestInteraction) -> InteractionEvent {
    latest_event(w, InteractionEventType::Started, agent, it, w.derivation())
}

/// `it` ended within `end`.
fn ended(
    w: &Window,
    agent: &str,
    it: &LatestInteraction,
    end: Bounds,
    derivation: Derivation,
) -> InteractionEvent {
    let mut e = latest_event(w, InteractionEventType::Ended, agent, it, derivation);
    Window::close(&mut e, it.start_bounds(), end);
    e
}

pub fn diff_latest(
    meta: &SourceMeta,
    previous: Option<&LatestSnapshot>,
    current: &LatestSnapshot,
) -> Vec<Event> {
    let w = Window::new(meta, previous.map(|p| p.observed_at), current.observed_at);
    let window_end = w.end();
    let mut events = Vec::new();
    for (agent, cur) in &current.agents {
        let Some(cur) = cur else { continue };
        let before = previous
            .and_then(|p| p.agents.get(agent))
            .and_then(|b| b.as_ref());
        match before {
            Some(b) if b.guid == cur.guid => {
                if !b.has_ended && cur.has_ended {
                    events.push(ended(
                        &w,
                        agent,
                        cur,
                        window_end,
                        Derivation::VendorEndedFlag,
                    ));
                }
            }
            _ if previous.is_none() => {
                if !cur.has_ended {
                    events.push(started(&w, agent, cur));
                }
            }
            _ => {
                if let Some(b) = before.filter(|b| !b.has_ended) {
                    // The agent moved on: the earlier one ended at the latest when this one started.
                    let by = cur.start.map_or(w.observed_at, |s| window_end.clamp(s));
                    let end = Bounds::between(w.previous_at, by);
                    events.push(ended(&w, agent, b, end, Derivation::ReplacedByNext));
                }
                events.push(started(&w, agent, cur));
                if cur.has_ended {
                    // Not the latest at the previous poll: it ended after that and after its start.
                    let after = match (w.previous_at, cur.start) {
                        (Some(p), Some(s)) => Some(window_end.clamp(s).max(p)),
                        (p, s) => p.or(s),
                    };
                    let end = Bounds::between(after, w.observed_at);
                    events.push(ended(&w, agent, cur, end, Derivation::VendorEndedFlag));
                }
            }
        }
    }
    events.into_iter().map(Event::Interaction).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use InteractionEventType::*;

    fn meta() -> SourceMeta {
        SourceMeta {
            name: "v".into(),
            vendor: "vonage".into(),
        }
    }

    fn snap(at: i64, agents: &[(&str, Option<(&str, bool)>)]) -> LatestSnapshot {
        LatestSnapshot {
            observed_at: at,
            not_found: Default::default(),
            agents: agents
                .iter()
                .map(|(a, l)| {
                    (
                        a.to_string(),
                        l.map(|(g, e)| LatestInteraction {
                            guid: g.into(),
                            start: Some(5),
                            start_raw: Some("x".into()),
                            has_ended: e,
                            first_seen: None,
                            seen_after: None,
                        }),
                    )
                })
                .collect(),
        }
    }

    fn brief(ev: &[Event]) -> Vec<(InteractionEventType, String, String, bool)> {
        ev.iter()
            .map(|e| match e {
                Event::Interaction(i) => (
                    i.event_type,
                    i.agent_id.clone(),
                    i.interaction_id.clone(),
                    i.initial,
                ),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn first_observation_reports_only_running_interactions() {
        let s = snap(
            1,
            &[
                ("a", Some(("g1", false))),
                ("b", Some(("g2", true))),
                ("c", None),
            ],
        );
        let ev = diff_latest(&meta(), None, &s);
        assert_eq!(brief(&ev), vec![(Started, "a".into(), "g1".into(), true)]);
        let Event::Interaction(i) = &ev[0] else {
            unreachable!()
        };
        assert!(i.latest_only);
    }

    #[test]
    fn ended_flag_new_guid_and_short_interactions() {
        let s1 = snap(
            1,
            &[
                ("a", Some(("g1", false))),
                ("b", Some(("g2", false))),
                ("c", None),
            ],
        );
        let s2 = snap(
            2,
            &[
                ("a", Some(("g1", true))),
                ("b", Some(("g3", false))),
                ("c", Some(("g4", true))),
            ],
        );
        assert_eq!(
            brief(&diff_latest(&meta(), Some(&s1), &s2)),
            vec![
                (Ended, "a".into(), "g1".into(), false),
                (Ended, "b".into(), "g2".into(), false),
                (Started, "b".into(), "g3".into(), false),
                (Started, "c".into(), "g4".into(), false),
                (Ended, "c".into(), "g4".into(), false),
            ]
        );
        // Nothing changes: nothing happens; an ended interaction replaced by a running one starts it.
        assert!(diff_latest(
            &meta(),
            Some(&s2),
            &snap(
                3,
                &[
                    ("a", Some(("g1", true))),
                    ("b", Some(("g3", false))),
                    ("c", Some(("g4", true)))
                ]
            )
        )
        .is_empty());
        let s4 = snap(4, &[("a", Some(("g5", false)))]);
        assert_eq!(
            brief(&diff_latest(&meta(), Some(&s2), &s4)),
            vec![(Started, "a".into(), "g5".into(), false)]
        );
    }
}
