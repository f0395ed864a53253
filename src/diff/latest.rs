//! Diff for vendors that only show each agent's latest interaction (Vonage `latestInteractions`):
//!
//! - a new guid at an agent → `STARTED`;
//! - the same guid going from `hasEnded: false` to `true` → `ENDED`;
//! - a new guid already ended when first seen → `STARTED` and `ENDED` together;
//! - the first observation of a source, or of an agent no earlier poll observed (its requests
//!   failed, or it was added to `agent_ids`), reports only interactions still running (`initial`):
//!   an ended interaction shown then may have ended at any time before.
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
//! **Several rows.** While several interactions run at an agent the vendor may list each of them
//! (seed 003: a phone call first, then by the time their state changed, newest first), so the
//! first row can be one that just ended while others still run. Every row listed is evidence: a
//! known interaction listed running is still running (it is kept like a hidden one, last shown
//! now), one listed ended ends by its own flag, and a new one listed running starts. The agent
//! shows no running interaction only when no row is running. A new row beyond the first that is
//! already ended is not reported: it is older than the latest, and when it ended is unknown.
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
    /// By agent id: the rows the vendor listed after the first (several interactions running).
    /// Not stored: [`LatestSnapshot::settle`] keeps the running ones in `hidden` (last shown now),
    /// and the diff ends a known one listed as ended.
    #[serde(skip)]
    pub listed: BTreeMap<String, Vec<LatestInteraction>>,
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
    /// By agent id: when the vendor answered for it at this poll (UTC ms), the moment its entry
    /// describes — with the account's request rate, the last agent of a poll may be answered
    /// seconds after the poll began. An agent without one (not answered, or a state stored
    /// before this existed) is taken at `observed_at`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub answered: BTreeMap<String, i64>,
}

impl LatestSnapshot {
    /// Carry `first_seen` / `seen_after` of a guid already seen at the agent (shown or hidden); a
    /// new one was first seen now, after the last poll that observed the agent (none: the agent's
    /// first observation). Then work out each agent's hidden interactions: those of `previous`
    /// (hidden, or its latest if running) not shown now, and those listed running after the first
    /// row, kept while the agent shows a running interaction (an agent the vendor did not answer
    /// for keeps its previous ones).
    pub fn settle(&mut self, previous: Option<&LatestSnapshot>) {
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
            let now = self
                .answered
                .get(agent)
                .copied()
                .unwrap_or(self.observed_at);
            let before = previous.and_then(|p| p.observed(agent));
            let was = previous.map(|p| p.seen_at(agent)).unwrap_or_default();
            let listed = self.listed.get_mut(agent).map(|l| l.as_mut_slice());
            for cur in latest.iter_mut().chain(listed.into_iter().flatten()) {
                let seen = was.iter().find(|(w, _)| w.guid == cur.guid);
                (cur.first_seen, cur.seen_after) = match seen {
                    Some((w, _)) => (w.first_seen, w.seen_after),
                    None => (Some(now), before),
                };
            }
            let listed = self.listed.get(agent).map_or(&[][..], Vec::as_slice);
            let running = latest.iter().chain(listed).any(|c| !c.has_ended);
            let kept: Vec<HiddenInteraction> =
                if self.not_found.contains(agent) {
                    previous
                        .and_then(|p| p.hidden.get(agent))
                        .cloned()
                        .unwrap_or_default()
                } else if running {
                    let shown = latest.as_ref().map(|c| c.guid.as_str());
                    let listed_now = |g: &str| listed.iter().any(|l| l.guid == g);
                    let mut kept: Vec<HiddenInteraction> = was
                        .into_iter()
                        .filter(|(w, _)| {
                            !w.has_ended && Some(w.guid.as_str()) != shown && !listed_now(&w.guid)
                        })
                        .map(|(w, last_shown)| HiddenInteraction {
                            interaction: w.clone(),
                            last_shown,
                        })
                        .collect();
                    kept.extend(listed.iter().filter(|l| !l.has_ended).map(|l| {
                        HiddenInteraction {
                            interaction: l.clone(),
                            last_shown: now,
                        }
                    }));
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

    /// The last poll that observed `agent` as of this snapshot; `None` when none did (it is not
    /// in this snapshot: every request for it failed so far, or it was not configured).
    fn observed(&self, agent: &str) -> Option<i64> {
        self.agents
            .contains_key(agent)
            .then(|| self.last_observed(agent))
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

    /// When this poll observed `agent`: when the vendor answered for it.
    pub fn at(&self, agent: &str) -> i64 {
        self.answered
            .get(agent)
            .copied()
            .unwrap_or(self.observed_at)
    }

    /// When `agent` was last observed, as of this snapshot: at this poll ([`Self::at`]), unless
    /// it could not be.
    pub fn last_observed(&self, agent: &str) -> i64 {
        let since = self.unobserved_since.get(agent);
        since.copied().unwrap_or_else(|| self.at(agent))
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
    let mut events = Vec::new();
    for (agent, cur) in &current.agents {
        if current.not_found.contains(agent) {
            continue;
        }
        // Each agent's own window: from when it was last observed (none: its first observation,
        // like a source's first poll) to when the vendor answered for it now.
        let observed = previous.and_then(|p| p.observed(agent));
        let w = &Window::new(meta, observed, current.at(agent));
        let window_end = w.end();
        let was = previous.map(|p| p.seen_at(agent)).unwrap_or_default();
        let listed = current.listed.get(agent).map_or(&[][..], Vec::as_slice);
        // Known running before, neither shown nor hidden now: listed as ended (a row after the
        // first), or the agent shows no running interaction (or it is one of the longest hidden
        // beyond the bound).
        let shown = cur.as_ref().map(|c| c.guid.as_str());
        let hidden = current.hidden.get(agent);
        for (b, last_shown) in &was {
            let still = Some(b.guid.as_str()) == shown
                || hidden.is_some_and(|h| h.iter().any(|h| h.interaction.guid == b.guid));
            if !b.has_ended && !still {
                let end = Bounds::between(Some(*last_shown), w.observed_at);
                match listed.iter().find(|l| l.guid == b.guid && l.has_ended) {
                    Some(l) => events.push(ended(w, agent, l, end, Derivation::VendorEndedFlag)),
                    None => events.push(ended(w, agent, b, end, Derivation::ReplacedByNext)),
                }
            }
        }
        // New, listed running after the first row (and kept within the bound): started.
        let known = |g: &str| was.iter().any(|(b, _)| b.guid == g);
        for l in listed.iter().filter(|l| !l.has_ended && !known(&l.guid)) {
            if hidden.is_some_and(|h| h.iter().any(|h| h.interaction.guid == l.guid)) {
                events.push(started(w, agent, l));
            }
        }
        if let Some(cur) = cur {
            match was.iter().find(|(b, _)| b.guid == cur.guid) {
                Some((b, last_shown)) => {
                    if !b.has_ended && cur.has_ended {
                        // Shown running at `last_shown` (this poll's previous one, or earlier if
                        // it was hidden meanwhile), ended now.
                        let end = Bounds::between(Some(*last_shown), w.observed_at);
                        events.push(ended(w, agent, cur, end, Derivation::VendorEndedFlag));
                    }
                }
                None if observed.is_none() => {
                    if !cur.has_ended {
                        events.push(started(w, agent, cur));
                    }
                }
                None => {
                    events.push(started(w, agent, cur));
                    if cur.has_ended {
                        // Not the latest at the last poll that observed the agent: it ended
                        // after that and after its start.
                        let after = match (observed, cur.start) {
                            (Some(p), Some(s)) => Some(window_end.clamp(s).max(p)),
                            (p, s) => p.or(s),
                        };
                        let end = Bounds::between(after, w.observed_at);
                        events.push(ended(w, agent, cur, end, Derivation::VendorEndedFlag));
                    }
                }
            }
        }
    }
    events.into_iter().map(Event::Interaction).collect()
}

#[cfg(test)]
mod tests;
