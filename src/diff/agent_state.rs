//! The `agent-state` records of one poll: `(the agents' last records, this poll's agents) → (the
//! new records table, the records to publish)`. Pure: no IO, no clock.
//!
//! - An agent gets a record the first time it is seen (`INITIAL`), whenever anything in its
//!   record changes (`CHANGED`: status, category, name, status time, active interactions, or a
//!   discrete vendor counter such as calls or ongoing chats; time counters that run with the clock
//!   ride along and trigger nothing), and otherwise every `refresh_every` polls (`REFRESH`), so a
//!   table built from the topic never goes stale silently.
//! - Only what this poll *observed* is published: an agent it listed, or one it judged absent
//!   (from one whole response, or confirmed by a second paged miss: [`super::agents`]). An agent
//!   missing from one page of a paged list, not read from a clamped one, or answered 404
//!   (Vonage) keeps its last record until a poll observes it again: a failed, partial or
//!   possibly shifted observation never produces a record.
//! - An agent the vendor no longer lists gets an explicit `OFFLINE` record (`listed = false`,
//!   status `ABSENT`), not a tombstone: it carries `observed_at`, `status_since` and the
//!   derivation, and keeps being refreshed like any other agent.
//! - Wolkvox joins the interactions feed of the same source ([`AgentInteractions`], its last
//!   committed snapshot); Vonage has each agent's latest interaction; Comm100 its `ongoingChats`.
//!
//! The table keeps, per agent, a fingerprint of its last record and the polls since: it is
//! committed with the feed's state and the records, in one outbox batch.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::agents::AgentSnapshot;
use super::latest::LatestSnapshot;
use super::timing::Bounds;
use super::InteractionSnapshot;
use crate::event::agent_state::{
    categorize, with_interactions, AgentStateReason, AgentStateRecord, StatusCategory,
    VonageAgentDetails,
};
use crate::event::id::{self, window};
use crate::event::ABSENT;
use crate::event::{Comm100AgentDetails, Derivation, Event, SourceMeta, WolkvoxAgentDetails};

/// Every agent's active interactions in one committed interactions snapshot (Wolkvox), for the
/// join: by agent id, the interaction ids in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentInteractions {
    /// The poll of that snapshot.
    pub observed_at: i64,
    pub by_agent: BTreeMap<String, Vec<String>>,
}

impl AgentInteractions {
    pub fn of(snapshot: &InteractionSnapshot) -> Self {
        // The snapshot is in hash order: sort its (agent, interaction) pairs first.
        let mut pairs: Vec<(&str, &str)> = snapshot
            .interactions
            .iter()
            .map(|it| (it.agent_id, it.interaction_id))
            .collect();
        pairs.sort_unstable();
        let mut by_agent: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (agent, interaction) in pairs {
            match by_agent.get_mut(agent) {
                Some(ids) => ids.push(interaction.to_string()),
                None => {
                    by_agent.insert(agent.to_string(), vec![interaction.to_string()]);
                }
            }
        }
        AgentInteractions {
            observed_at: snapshot.observed_at,
            by_agent,
        }
    }
}

/// What one poll says of one agent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentView {
    pub name: Option<String>,
    pub status: Option<String>,
    pub status_name: Option<String>,
    pub since: Option<i64>,
    pub since_bounds: Bounds,
    /// The vendor lists the agent.
    pub listed: bool,
    /// This poll observed the agent: listed it, or judged it absent.
    pub observed: bool,
    pub confirmed_absent: bool,
    pub interactions: Option<Vec<String>>,
    pub interaction_count: Option<i64>,
    pub interactions_observed_at: Option<i64>,
    pub wolkvox: Option<WolkvoxAgentDetails>,
    pub comm100: Option<Comm100AgentDetails>,
    pub vonage: Option<VonageAgentDetails>,
}

/// A feed snapshot that says something about agents.
pub trait AgentViews {
    fn observed_at(&self) -> i64;
    /// Every agent the snapshot holds; `interactions`: the joined interactions, when the vendor's
    /// agent data has none of its own (Wolkvox).
    fn agent_views(&self, interactions: Option<&AgentInteractions>) -> BTreeMap<String, AgentView>;
}

fn count(n: usize) -> Option<i64> {
    i64::try_from(n).ok()
}

impl AgentViews for AgentSnapshot {
    fn observed_at(&self) -> i64 {
        self.observed_at
    }
    fn agent_views(&self, joined: Option<&AgentInteractions>) -> BTreeMap<String, AgentView> {
        let now = self.observed_at;
        let view = |(id, a): (&String, &super::agents::AgentState)| {
            let listed = a.status != ABSENT;
            let observed = match listed {
                true => a.last_seen == Some(now),
                false => a.absent_at == Some(now),
            };
            let (interactions, interaction_count, interactions_observed_at) =
                match (joined, &a.comm100) {
                    (Some(j), _) => {
                        let ids = j.by_agent.get(id).cloned().unwrap_or_default();
                        let n = count(ids.len());
                        (Some(ids), n, Some(j.observed_at))
                    }
                    (None, Some(c)) => (None, c.ongoing_chats, Some(now)),
                    (None, None) => (None, None, None),
                };
            let v = AgentView {
                name: a.name.clone(),
                status: Some(a.status.clone()),
                status_name: a.status_name.clone(),
                since: a.since,
                since_bounds: a.since_bounds,
                listed,
                observed,
                confirmed_absent: a.confirmed_absent,
                interactions,
                interaction_count,
                interactions_observed_at,
                wolkvox: a.wolkvox.clone(),
                comm100: a.comm100.clone(),
                vonage: None,
            };
            (id.clone(), v)
        };
        self.agents.iter().map(view).collect()
    }
}

impl AgentViews for LatestSnapshot {
    fn observed_at(&self) -> i64 {
        self.observed_at
    }
    fn agent_views(&self, _: Option<&AgentInteractions>) -> BTreeMap<String, AgentView> {
        let view = |(id, latest): (&String, &Option<super::latest::LatestInteraction>)| {
            // Running: the latest, and those listed running after it at this poll (kept among
            // the hidden ones, last shown now).
            let listed_now = self.hidden.get(id).into_iter().flatten();
            let at = self.at(id);
            let listed_now = listed_now.filter(|h| h.last_shown == at && !h.interaction.has_ended);
            let active: Vec<String> = latest
                .iter()
                .filter(|l| !l.has_ended)
                .chain(listed_now.map(|h| &h.interaction))
                .map(|l| l.guid.clone())
                .collect();
            let v = AgentView {
                listed: true,
                observed: !self.not_found.contains(id),
                interaction_count: count(active.len()),
                interactions: Some(active),
                interactions_observed_at: Some(self.last_observed(id)),
                vonage: Some(VonageAgentDetails {
                    latest_interaction_id: latest.as_ref().map(|l| l.guid.clone()),
                    latest_interaction_started_at: latest.as_ref().and_then(|l| l.start),
                    latest_interaction_started_at_raw: latest
                        .as_ref()
                        .and_then(|l| l.start_raw.clone()),
                    latest_interaction_has_ended: latest.as_ref().map(|l| l.has_ended),
                }),
                ..AgentView::default()
            };
            (id.clone(), v)
        };
        self.agents.iter().map(view).collect()
    }
}

/// An agent's last record, as far as deciding the next one needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// [`fingerprint`] of the record's content.
    pub fingerprint: u64,
    /// Committed polls since that record.
    pub polls: u32,
}

/// Every agent's last record (the agent-state part of a feed's state).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AgentStateTable {
    pub agents: BTreeMap<String, Recorded>,
}

/// One poll of a feed, and how its records are made.
pub struct Poll<'a> {
    pub meta: &'a SourceMeta,
    /// The feed's previous poll (`None`: its first), part of every record's id.
    pub previous_at: Option<i64>,
    pub observed_at: i64,
    /// The source's `status_categories`.
    pub categories: &'a BTreeMap<String, StatusCategory>,
    /// Refresh an unchanged agent's record every this many polls (0: never).
    pub refresh_every: u32,
}

/// The content of a record that makes it a change: everything but its id, poll, reason and the
/// counters that run with the clock. JSON, hashed with XXH3 (stable across versions).
pub fn fingerprint(r: &AgentStateRecord) -> u64 {
    #[derive(Serialize)]
    struct Content<'a> {
        name: &'a Option<String>,
        status: &'a Option<String>,
        status_name: &'a Option<String>,
        category: StatusCategory,
        listed: bool,
        since: [Option<i64>; 3],
        ids: &'a Option<Vec<String>>,
        count: Option<i64>,
        wolkvox: Option<[Option<i64>; 4]>,
        comm100: Option<[Option<i64>; 3]>,
        vonage: &'a Option<VonageAgentDetails>,
    }
    let c = Content {
        name: &r.agent_name,
        status: &r.status,
        status_name: &r.status_name,
        category: r.status_category,
        listed: r.listed,
        since: [r.status_since, r.status_since_after, r.status_since_before],
        ids: &r.active_interaction_ids,
        count: r.active_interaction_count,
        wolkvox: r
            .wolkvox
            .as_ref()
            .map(|w| [w.calls, w.inbound, w.outbound, w.internal]),
        comm100: r
            .comm100
            .as_ref()
            .map(|c| [c.ongoing_chats, c.max_concurrent_chats, c.intraday_chats]),
        vonage: &r.vonage,
    };
    // Plain data: JSON serialization cannot fail; were it to, every record would count as changed.
    serde_json::to_vec(&c).map_or(0, |bytes| xxhash_rust::xxh3::xxh3_64(&bytes))
}

impl Poll<'_> {
    fn record(&self, agent: &str, v: AgentView, win: &str) -> AgentStateRecord {
        let category = categorize(
            v.status.as_deref(),
            v.status_name.as_deref(),
            self.categories,
        );
        let derivation = match (v.listed, v.confirmed_absent, self.previous_at) {
            (false, true, _) => Derivation::ConfirmedAbsent,
            (_, _, None) => Derivation::InitialSnapshot,
            _ => Derivation::SnapshotDiff,
        };
        AgentStateRecord {
            event_id: id::agent_state(&self.meta.name, agent, win).to_string(),
            source: self.meta.name.clone(),
            vendor: self.meta.vendor.clone(),
            agent_id: agent.to_string(),
            agent_name: v.name,
            status: v.status,
            status_name: v.status_name,
            status_category: with_interactions(category, v.interaction_count),
            listed: v.listed,
            status_since: v.since,
            status_since_after: v.since_bounds.after,
            status_since_before: v.since_bounds.before,
            active_interaction_ids: v.interactions,
            active_interaction_count: v.interaction_count,
            interactions_observed_at: v.interactions_observed_at,
            observed_at: self.observed_at,
            reason: AgentStateReason::Unknown,
            derivation,
            wolkvox: v.wolkvox,
            comm100: v.comm100,
            vonage: v.vonage,
        }
    }
}

/// The records of this poll and the table after it. `table`: after the previous poll (`None` or
/// empty: no agent has a record yet); `views`: this poll's agents ([`AgentViews`]).
pub fn derive(
    poll: &Poll,
    table: Option<&AgentStateTable>,
    views: BTreeMap<String, AgentView>,
) -> (AgentStateTable, Vec<Event>) {
    let win = window(poll.previous_at);
    let mut next = AgentStateTable::default();
    let mut events = Vec::new();
    for (agent, view) in views {
        let before = table.and_then(|t| t.agents.get(&agent));
        let polls = before.map_or(0, |b| b.polls.saturating_add(1));
        if !view.observed {
            if let Some(b) = before {
                let kept = Recorded {
                    fingerprint: b.fingerprint,
                    polls,
                };
                next.agents.insert(agent, kept);
            }
            continue;
        }
        let mut record = poll.record(&agent, view, &win);
        let fingerprint = fingerprint(&record);
        let due = poll.refresh_every > 0 && polls >= poll.refresh_every;
        record.reason = match before {
            None => AgentStateReason::Initial,
            Some(b) if b.fingerprint != fingerprint => AgentStateReason::Changed,
            Some(_) if due => AgentStateReason::Refresh,
            Some(_) => {
                next.agents.insert(agent, Recorded { fingerprint, polls });
                continue;
            }
        };
        next.agents.insert(
            agent,
            Recorded {
                fingerprint,
                polls: 0,
            },
        );
        events.push(Event::AgentState(Box::new(record)));
    }
    (next, events)
}

#[cfg(test)]
mod tests;
