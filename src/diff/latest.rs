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

use crate::event::id::{self, window};
use crate::event::{Event, InteractionEvent, InteractionEventType, SourceMeta};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestInteraction {
    pub guid: String,
    pub start: Option<i64>,
    pub start_raw: Option<String>,
    pub has_ended: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LatestSnapshot {
    pub observed_at: i64,
    /// By agent id: the latest interaction, or `None` when the agent has none.
    pub agents: BTreeMap<String, Option<LatestInteraction>>,
}

pub fn diff_latest(
    meta: &SourceMeta,
    previous: Option<&LatestSnapshot>,
    current: &LatestSnapshot,
) -> Vec<Event> {
    let prev_at = previous.map(|p| p.observed_at);
    let win = window(prev_at);
    let mut events = Vec::new();
    let mut push = |ty: InteractionEventType, agent: &str, it: &LatestInteraction| {
        events.push(Event::Interaction(InteractionEvent {
            event_id: id::interaction(&meta.name, ty, agent, &it.guid, &win).to_string(),
            event_type: ty,
            source: meta.name.clone(),
            vendor: meta.vendor.clone(),
            agent_id: agent.to_string(),
            interaction_id: it.guid.clone(),
            initial: previous.is_none(),
            transfer: false,
            transfer_agent_id: None,
            observed_at: current.observed_at,
            previous_observed_at: prev_at,
            vendor_timestamp: it.start,
            vendor_timestamp_raw: it.start_raw.clone(),
            subject: None,
            from_name: None,
            latest_only: true,
        }))
    };
    for (agent, cur) in &current.agents {
        let Some(cur) = cur else { continue };
        let before = previous
            .and_then(|p| p.agents.get(agent))
            .and_then(|b| b.as_ref());
        match before {
            Some(b) if b.guid == cur.guid => {
                if !b.has_ended && cur.has_ended {
                    push(InteractionEventType::Ended, agent, cur);
                }
            }
            _ if previous.is_none() => {
                if !cur.has_ended {
                    push(InteractionEventType::Started, agent, cur);
                }
            }
            _ => {
                if let Some(b) = before.filter(|b| !b.has_ended) {
                    push(InteractionEventType::Ended, agent, b);
                }
                push(InteractionEventType::Started, agent, cur);
                if cur.has_ended {
                    push(InteractionEventType::Ended, agent, cur);
                }
            }
        }
    }
    events
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
