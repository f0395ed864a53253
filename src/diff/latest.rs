//! Diff for vendors that only show each agent's latest interaction (Vonage `latestInteractions`):
//!
//! - a new guid at an agent → `STARTED`;
//! - the same guid going from `hasEnded: false` to `true` → `ENDED`;
//! - a new guid already ended when first seen → `STARTED` and `ENDED` together;
//! - the first observation of a source reports only interactions still running (`initial`).
//!
//! **An interaction no longer shown has not necessarily ended.** With several interactions running
//! at one agent (a chat and an email, say) the vendor shows one of them — a phone call first, else
//! the one whose state changed last (seed 003) — so which one is shown can change back and forth
//! while all of them run. An interaction shown running and then replaced by another running one is
//! kept as *hidden* ([`HiddenInteraction`]): no event. It ends (`ENDED`, `REPLACED_BY_NEXT`) once
//! the agent shows no running interaction (its latest has ended, or it has none), between the last
//! poll that showed it running and that poll; or, shown again with `hasEnded`, as usual. Shown
//! again running, it simply is the latest again (no second `STARTED`).
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

/// An interaction shown running at an agent earlier and not shown now, not known to have ended
/// (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HiddenInteraction {
    pub interaction: LatestInteraction,
    /// The last poll that showed it running (UTC ms): it ended, if it has, after that.
    pub last_shown: i64,
}

/// The most hidden interactions kept per agent; beyond it the longest hidden are ended (an agent
/// whose shown interaction is always running, each poll another, would otherwise keep them all).
pub const MAX_HIDDEN_PER_AGENT: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LatestSnapshot {
    pub observed_at: i64,
    /// By agent id: the latest interaction, or `None` when the agent has none.
    pub agents: BTreeMap<String, Option<LatestInteraction>>,
    /// Agents this poll could not observe (the vendor answered 404, or failed for that agent
    /// alone): their entry is the previous poll's, carried over. Not stored: it describes one poll.
    #[serde(skip)]
    pub not_found: std::collections::BTreeSet<String>,
    /// By agent id: interactions shown running before and not now, not known to have ended
    /// ([`LatestSnapshot::settle`] sets them; absent in states stored before they existed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hidden: BTreeMap<String, Vec<HiddenInteraction>>,
    /// By agent id: for an agent this poll could not observe ([`LatestSnapshot::not_found`]), the
    /// last poll that did (UTC ms). Its carried entry dates from then: an interaction of it that
    /// ends is bounded from that poll, and one that appears as started after it
    /// ([`LatestSnapshot::settle`] sets it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unobserved_since: BTreeMap<String, i64>,
}

impl LatestSnapshot {
    /// Carry `first_seen` / `seen_after` of a guid already seen at the agent (shown or hidden); a
    /// new one was first seen now, after `previous`'s poll. Then work out each agent's hidden
    /// interactions: those of `previous` (hidden, or its latest if running) not shown now, kept
    /// while the agent shows a running interaction (an agent the vendor did not answer for keeps
    /// its previous ones).
    pub fn settle(&mut self, previous: Option<&LatestSnapshot>) {
        let now = self.observed_at;
        self.unobserved_since = match previous {
            Some(p) => self
                .not_found
                .iter()
                .map(|a| (a.clone(), p.last_observed(a)))
                .collect(),
            None => BTreeMap::new(),
        };
        let mut hidden = BTreeMap::new();
        for (agent, latest) in self.agents.iter_mut() {
            let was = previous.map(|p| p.seen_at(agent)).unwrap_or_default();
            if let Some(cur) = latest.as_mut() {
                let seen = was.iter().find(|(w, _)| w.guid == cur.guid);
                (cur.first_seen, cur.seen_after) = match seen {
                    Some((w, _)) => (w.first_seen, w.seen_after),
                    None => (Some(now), previous.map(|p| p.last_observed(agent))),
                };
            }
            let kept: Vec<HiddenInteraction> = if self.not_found.contains(agent) {
                previous
                    .and_then(|p| p.hidden.get(agent))
                    .cloned()
                    .unwrap_or_default()
            } else if latest.as_ref().is_some_and(|c| !c.has_ended) {
                let shown = latest.as_ref().map(|c| c.guid.as_str());
                let mut kept: Vec<HiddenInteraction> = was
                    .into_iter()
                    .filter(|(w, _)| !w.has_ended && Some(w.guid.as_str()) != shown)
                    .map(|(w, last_shown)| HiddenInteraction {
                        interaction: w.clone(),
                        last_shown,
                    })
                    .collect();
                // Newest first: beyond the bound the longest hidden are left out here, and the
                // diff ends them.
                kept.sort_by_key(|h| std::cmp::Reverse(h.last_shown));
                kept.truncate(MAX_HIDDEN_PER_AGENT);
                kept
            } else {
                Vec::new()
            };
            if !kept.is_empty() {
                hidden.insert(agent.clone(), kept);
            }
        }
        self.hidden = hidden;
    }

    /// The interactions this snapshot knew at `agent`, each with the last poll that showed it
    /// running: its hidden ones, then its latest (shown at this poll).
    fn seen_at(&self, agent: &str) -> Vec<(&LatestInteraction, i64)> {
        let hidden = self.hidden.get(agent).into_iter().flatten();
        let latest = self.agents.get(agent).and_then(|l| l.as_ref());
        hidden
            .map(|h| (&h.interaction, h.last_shown))
            .chain(latest.map(|l| (l, self.last_observed(agent))))
            .collect()
    }

    /// The last poll that observed `agent`, as of this snapshot: this one, unless it could not.
    pub fn last_observed(&self, agent: &str) -> i64 {
        if self.unobserved_since.is_empty() {
            return self.observed_at;
        }
        let since = self.unobserved_since.get(agent);
        since.copied().unwrap_or(self.observed_at)
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
        if current.not_found.contains(agent) {
            continue;
        }
        let was = previous.map(|p| p.seen_at(agent)).unwrap_or_default();
        // Known running before, neither shown nor hidden now: the agent shows no running
        // interaction (or it is one of the longest hidden beyond the bound).
        let shown = cur.as_ref().map(|c| c.guid.as_str());
        let hidden = current.hidden.get(agent);
        for (b, last_shown) in &was {
            let still = Some(b.guid.as_str()) == shown
                || hidden.is_some_and(|h| h.iter().any(|h| h.interaction.guid == b.guid));
            if !b.has_ended && !still {
                let end = Bounds::between(Some(*last_shown), w.observed_at);
                events.push(ended(&w, agent, b, end, Derivation::ReplacedByNext));
            }
        }
        if let Some(cur) = cur {
            match was.iter().find(|(b, _)| b.guid == cur.guid) {
                Some((b, last_shown)) => {
                    if !b.has_ended && cur.has_ended {
                        // Shown running at `last_shown` (this poll's previous one, or earlier if
                        // it was hidden meanwhile), ended now.
                        let end = Bounds::between(Some(*last_shown), w.observed_at);
                        events.push(ended(&w, agent, cur, end, Derivation::VendorEndedFlag));
                    }
                }
                None if previous.is_none() => {
                    if !cur.has_ended {
                        events.push(started(&w, agent, cur));
                    }
                }
                None => {
                    events.push(started(&w, agent, cur));
                    if cur.has_ended {
                        // Not the latest at the last poll that observed the agent: it ended
                        // after that and after its start.
                        let observed = previous.map(|p| p.last_observed(agent));
                        let after = match (observed, cur.start) {
                            (Some(p), Some(s)) => Some(window_end.clamp(s).max(p)),
                            (p, s) => p.or(s),
                        };
                        let end = Bounds::between(after, w.observed_at);
                        events.push(ended(&w, agent, cur, end, Derivation::VendorEndedFlag));
                    }
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
            hidden: Default::default(),
            unobserved_since: BTreeMap::new(),
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

    /// The snapshot polled after `prev`, settled against it as the source does.
    fn next(
        prev: &LatestSnapshot,
        at: i64,
        agents: &[(&str, Option<(&str, bool)>)],
    ) -> LatestSnapshot {
        let mut s = snap(at, agents);
        s.settle(Some(prev));
        s
    }

    /// `(type, guid, derivation, ended_after, ended_before)` of an event.
    type End = (
        InteractionEventType,
        String,
        Derivation,
        Option<i64>,
        Option<i64>,
    );

    fn ends(ev: &[Event]) -> Vec<End> {
        ev.iter()
            .map(|e| match e {
                Event::Interaction(i) => (
                    i.event_type,
                    i.interaction_id.clone(),
                    i.derivation,
                    i.ended_after,
                    i.ended_before,
                ),
                other => panic!("{other:?}"),
            })
            .collect()
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
        let s2 = next(
            &s1,
            2,
            &[
                ("a", Some(("g1", true))),
                ("b", Some(("g3", false))),
                ("c", Some(("g4", true))),
            ],
        );
        // b's g2 is not shown any more, but g3 runs: g2 may still run too (hidden, no event).
        assert_eq!(
            brief(&diff_latest(&meta(), Some(&s1), &s2)),
            vec![
                (Ended, "a".into(), "g1".into(), false),
                (Started, "b".into(), "g3".into(), false),
                (Started, "c".into(), "g4".into(), false),
                (Ended, "c".into(), "g4".into(), false),
            ]
        );
        assert_eq!(s2.hidden["b"][0].interaction.guid, "g2");
        assert_eq!(s2.hidden["b"][0].last_shown, 1);
        // Nothing changes: nothing happens; an ended interaction replaced by a running one starts it.
        let s3 = next(
            &s2,
            3,
            &[
                ("a", Some(("g1", true))),
                ("b", Some(("g3", false))),
                ("c", Some(("g4", true))),
            ],
        );
        assert!(diff_latest(&meta(), Some(&s2), &s3).is_empty());
        let s4 = next(&s2, 4, &[("a", Some(("g5", false)))]);
        assert_eq!(
            brief(&diff_latest(&meta(), Some(&s2), &s4)),
            vec![(Started, "a".into(), "g5".into(), false)]
        );
    }

    #[test]
    fn two_running_interactions_shown_in_turn_start_once_and_end_when_none_runs() {
        use Derivation::*;
        let s1 = snap(10, &[("a", Some(("chat", false)))]);
        // An email starts; the vendor now shows it (its state changed last): the chat still runs.
        let s2 = next(&s1, 20, &[("a", Some(("email", false)))]);
        assert_eq!(
            brief(&diff_latest(&meta(), Some(&s1), &s2)),
            vec![(Started, "a".into(), "email".into(), false)]
        );
        // The chat is shown again, then the email: neither starts again, neither ends.
        let s3 = next(&s2, 30, &[("a", Some(("chat", false)))]);
        assert!(diff_latest(&meta(), Some(&s2), &s3).is_empty());
        let s4 = next(&s3, 40, &[("a", Some(("email", false)))]);
        assert!(diff_latest(&meta(), Some(&s3), &s4).is_empty());
        assert_eq!(s4.hidden["a"][0].interaction.guid, "chat");
        assert_eq!(s4.hidden["a"][0].last_shown, 30);
        // The email ends, shown ended: no interaction runs any more, so the chat has ended too,
        // after the last poll that showed it running.
        let s5 = next(&s4, 50, &[("a", Some(("email", true)))]);
        assert_eq!(
            ends(&diff_latest(&meta(), Some(&s4), &s5)),
            vec![
                (Ended, "chat".into(), ReplacedByNext, Some(30), Some(50)),
                (Ended, "email".into(), VendorEndedFlag, Some(40), Some(50)),
            ]
        );
        assert!(s5.hidden.is_empty());
        // A hidden one shown again already ended ends by its flag, after it was last shown; an
        // agent that then has no interaction at all ends the one it showed running.
        let s6 = next(&s4, 50, &[("a", Some(("chat", true)))]);
        assert_eq!(
            ends(&diff_latest(&meta(), Some(&s4), &s6)),
            vec![
                (Ended, "email".into(), ReplacedByNext, Some(40), Some(50)),
                (Ended, "chat".into(), VendorEndedFlag, Some(30), Some(50)),
            ]
        );
        let s7 = next(&s1, 20, &[("a", None)]);
        assert_eq!(
            ends(&diff_latest(&meta(), Some(&s1), &s7)),
            vec![(Ended, "chat".into(), ReplacedByNext, Some(10), Some(20))]
        );
    }

    #[test]
    fn an_unanswered_agent_keeps_its_hidden_ones_and_the_longest_hidden_end_beyond_the_bound() {
        let s1 = snap(10, &[("a", Some(("g0", false)))]);
        let mut prev = next(&s1, 20, &[("a", Some(("g1", false)))]);
        let mut s = prev.clone();
        for i in 2..=MAX_HIDDEN_PER_AGENT as i64 {
            s = next(
                &prev,
                10 * (i + 1),
                &[("a", Some((&format!("g{i}"), false)))],
            );
            let ev = diff_latest(&meta(), Some(&prev), &s);
            assert_eq!(
                brief(&ev),
                vec![(Started, "a".into(), format!("g{i}"), false)],
                "{i}"
            );
            prev = s.clone();
        }
        assert_eq!(s.hidden["a"].len(), MAX_HIDDEN_PER_AGENT);
        // One more: the longest hidden (g0, last shown at 10) ends.
        let n = MAX_HIDDEN_PER_AGENT as i64 + 1;
        let more = next(
            &prev,
            10 * (n + 1),
            &[("a", Some((&format!("g{n}"), false)))],
        );
        let ev = diff_latest(&meta(), Some(&prev), &more);
        assert_eq!(
            ends(&ev)[0],
            (
                Ended,
                "g0".into(),
                Derivation::ReplacedByNext,
                Some(10),
                Some(10 * (n + 1))
            )
        );
        assert_eq!(ev.len(), 2, "and the new one starts");
        // The vendor does not answer for the agent (404): its entry and hidden ones carry over.
        let mut gone = snap(999, &[("a", Some((&format!("g{n}"), false)))]);
        gone.not_found.insert("a".into());
        gone.settle(Some(&more));
        assert_eq!(gone.hidden, more.hidden);
        assert!(diff_latest(&meta(), Some(&more), &gone).is_empty());
    }

    #[test]
    fn hidden_interactions_round_trip_and_states_stored_before_them_read_as_none() {
        let s1 = snap(10, &[("a", Some(("chat", false)))]);
        let s2 = next(&s1, 20, &[("a", Some(("email", false)))]);
        let json = serde_json::to_string(&s2).unwrap();
        let back: LatestSnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back.hidden, s2.hidden);
        let old = serde_json::to_string(&s1).unwrap();
        assert!(!old.contains("hidden"), "{old}");
        let read: LatestSnapshot = serde_json::from_str(&old).unwrap();
        assert!(read.hidden.is_empty());
    }

    #[test]
    fn an_agent_the_vendor_did_not_answer_for_is_bounded_from_the_last_poll_that_did() {
        let s1 = snap(
            10,
            &[("a", Some(("g1", false))), ("b", Some(("g2", false)))],
        );
        // At 20 the vendor fails for agent a alone: its entry is carried, observed at 10.
        let mut s2 = snap(
            20,
            &[("a", Some(("g1", false))), ("b", Some(("g2", false)))],
        );
        s2.not_found.insert("a".into());
        s2.settle(Some(&s1));
        assert!(diff_latest(&meta(), Some(&s1), &s2).is_empty());
        assert_eq!(s2.unobserved_since, BTreeMap::from([("a".to_string(), 10)]));
        // Not answered at 30 either: still observed last at 10.
        let mut s3 = snap(
            30,
            &[("a", Some(("g1", false))), ("b", Some(("g2", false)))],
        );
        s3.not_found.insert("a".into());
        s3.settle(Some(&s2));
        assert_eq!(s3.unobserved_since, BTreeMap::from([("a".to_string(), 10)]));
        // At 40 a shows no running interaction, b none either: g1 may have ended right after
        // 10, g2 after 30.
        let s4 = next(&s3, 40, &[("a", None), ("b", None)]);
        assert!(s4.unobserved_since.is_empty());
        let mut got = ends(&diff_latest(&meta(), Some(&s3), &s4));
        got.sort_by(|x, y| x.1.cmp(&y.1));
        assert_eq!(
            got,
            vec![
                (
                    Ended,
                    "g1".into(),
                    Derivation::ReplacedByNext,
                    Some(10),
                    Some(40)
                ),
                (
                    Ended,
                    "g2".into(),
                    Derivation::ReplacedByNext,
                    Some(30),
                    Some(40)
                ),
            ]
        );
        // A new one at an agent unobserved at the previous poll started after the last that
        // observed it.
        let s4b = next(
            &s3,
            40,
            &[("a", Some(("g9", false))), ("b", Some(("g2", false)))],
        );
        let g9 = s4b.agents["a"].as_ref().unwrap();
        assert_eq!((g9.first_seen, g9.seen_after), (Some(40), Some(10)));
        // Kept through the store (a restart while the vendor still does not answer).
        let back: LatestSnapshot =
            serde_json::from_str(&serde_json::to_string(&s3).unwrap()).unwrap();
        assert_eq!(back.unobserved_since, s3.unobserved_since);
    }
}
