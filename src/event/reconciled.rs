//! `interaction-reconciled`: one chat as the vendor's report tells it, set against what real-time
//! polling saw of it (`schemas/interaction-reconciled.avsc`).
//!
//! Polling every few minutes misses short chats and can only bound the ones it sees; a Wolkvox
//! `chat_1` report row has the authoritative start, duration and agent. Once a report window has
//! settled, every chat of it gets one of these records, keyed like the interaction
//! (`<source>/<conn_id>`), and so does every chat polling saw starting in that window that the
//! report does not have (`in_report = false`).

use serde::{Deserialize, Serialize};

use super::Derivation;

/// Where the sightings of `source` are stored: `sighting/<source>/<conn_id>/<agent_id>`.
pub fn sighting_prefix(source: &str) -> String {
    format!("sighting/{source}/")
}

/// The state key of one sighting.
pub fn sighting_key(source: &str, interaction_id: &str, agent_id: &str) -> String {
    format!("sighting/{source}/{interaction_id}/{agent_id}")
}

/// What polling saw of one interaction at one agent, as kept for reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Sighting {
    pub agent_id: String,
    /// The vendor's start, when the real-time API gave one (UTC ms).
    pub started_at: Option<i64>,
    /// The first poll that saw it at this agent, and the poll before.
    pub first_seen: i64,
    pub seen_after: Option<i64>,
    /// Set once it ended: the last poll that saw it and the first that did not.
    pub ended_after: Option<i64>,
    pub ended_before: Option<i64>,
}

/// Where a chat that has a reconciliation record is marked: `reconciled/<source>/<conn_id>` (apart
/// from the sightings, which polling rewrites when the chat ends).
pub fn reconciled_key(source: &str, interaction_id: &str) -> String {
    format!("reconciled/{source}/{interaction_id}")
}

/// The prefix of every reconciliation mark of `source`.
pub fn reconciled_prefix(source: &str) -> String {
    format!("reconciled/{source}/")
}

/// A reconciliation mark: when the record was made (UTC ms; marks expire like the sightings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub at: i64,
}

impl Sighting {
    /// When it started, as well as polling knows: the vendor's start, else the first poll.
    pub fn start(&self) -> i64 {
        self.started_at.unwrap_or(self.first_seen)
    }
}

/// One chat of a settled report window, against what polling saw (every time UTC ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InteractionReconciled {
    /// UUIDv5 of (source, conn_id, what it reconciles: the report row's hash, or the polled start).
    pub event_id: String,
    pub source: String,
    pub vendor: String,
    /// The interaction (Wolkvox `conn_id`), as on the interactions topic.
    pub interaction_id: String,
    /// The report has this chat.
    pub in_report: bool,
    /// Real-time polling saw it (at one agent at least).
    pub seen_realtime: bool,
    /// From the report: the agent, the start (`date`), its text, the end (start + `chat_duration`)
    /// and the durations.
    pub report_agent_id: Option<String>,
    pub report_started_at: Option<i64>,
    pub report_started_at_raw: Option<String>,
    pub report_ended_at: Option<i64>,
    pub report_duration_ms: Option<i64>,
    pub report_time_on_agent_ms: Option<i64>,
    /// The report row's content hash (its `row_hash` on the report topic).
    pub report_row_hash: Option<String>,
    /// From polling: the agents it was seen at, in order of first sight.
    pub polled_agent_ids: Vec<String>,
    /// The first poll that saw it, and the poll before that.
    pub first_observed_at: Option<i64>,
    pub first_observed_after: Option<i64>,
    /// The end as polling bounds it (the last agent's), when it saw it end.
    pub ended_after: Option<i64>,
    pub ended_before: Option<i64>,
    /// The handle time polling would estimate (the middle of its bounds), for comparison.
    pub polled_duration_ms: Option<i64>,
    /// The report window (UTC) and as sent (local `YYYYmmddHHiiss`).
    pub window_start: i64,
    pub window_end: i64,
    pub window_start_raw: String,
    pub window_end_raw: String,
    pub reconciled_at: i64,
    pub derivation: Derivation,
}
