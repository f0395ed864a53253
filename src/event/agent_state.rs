//! `agent-state`: the current state of one agent, every vendor, as a record of a compacted topic
//! keyed `<source>/<agent_id>` (`schemas/agent-state.avsc`). A consumer that keeps the last record
//! per key has a live table of every agent: its status, a cross-vendor [`StatusCategory`], its
//! active interactions and the vendor's counters, with no joins.
//!
//! The category of a vendor status comes from the source's configured `status_categories` first,
//! then from [`DEFAULT_STATUS_CATEGORIES`]; an agent the vendor no longer lists ([`super::ABSENT`])
//! is always `OFFLINE`. Records are derived in [`crate::diff::agent_state`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Comm100AgentDetails, Derivation, WolkvoxAgentDetails, ABSENT};

/// A cross-vendor summary of an agent's status (Avro enum `StatusCategory`; `UNKNOWN` is its
/// default, for a status no rule names and for readers that do not know a later symbol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatusCategory {
    /// Logged in and ready for an interaction.
    Available,
    /// Handling an interaction (talking, chatting, ringing, after-call work).
    Busy,
    /// Logged in but not taking interactions (a break, lunch, a meeting, an auxiliary code).
    Away,
    /// Logged out, or no longer listed by the vendor.
    Offline,
    /// The status matches no rule, or the vendor reports none (Vonage).
    #[default]
    Unknown,
}

/// Why a record was published (Avro enum `AgentStateReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentStateReason {
    /// The first record of this agent.
    Initial,
    /// Something in the record changed since the agent's last record.
    Changed,
    /// Nothing changed: the per-agent heartbeat, every `agent_state.refresh_every_polls` polls.
    Refresh,
    #[default]
    Unknown,
}

/// The default status categories, matched case-insensitively against the vendor's status and
/// then its name; a pattern ending in `*` matches every text that starts with what precedes it.
/// Wolkvox's statuses are free text per operation (`Ready`, `Busy`, `Aux - Break`, ... after the
/// agent counters `ready_time`, `inbound_time`, `acw_time`, `ring_time`, `aux_time`); Comm100's
/// are GUIDs named by the site's away-status list (`Online`, `Away`, `Offline` and custom away
/// statuses). A status no rule names is `UNKNOWN`: name it in the source's `status_categories`.
pub const DEFAULT_STATUS_CATEGORIES: &[(&str, StatusCategory)] = &[
    ("Ready", StatusCategory::Available),
    ("Available", StatusCategory::Available),
    ("Online", StatusCategory::Available),
    ("Idle", StatusCategory::Available),
    ("Busy", StatusCategory::Busy),
    ("Inbound*", StatusCategory::Busy),
    ("Outbound*", StatusCategory::Busy),
    ("Internal*", StatusCategory::Busy),
    ("Ring*", StatusCategory::Busy),
    ("ACW*", StatusCategory::Busy),
    ("After call*", StatusCategory::Busy),
    ("Wrap*", StatusCategory::Busy),
    ("Talking*", StatusCategory::Busy),
    ("In call*", StatusCategory::Busy),
    ("On call*", StatusCategory::Busy),
    ("Chat*", StatusCategory::Busy),
    ("Dialing*", StatusCategory::Busy),
    ("Aux*", StatusCategory::Away),
    ("Away*", StatusCategory::Away),
    ("Break*", StatusCategory::Away),
    ("Lunch*", StatusCategory::Away),
    ("Meeting*", StatusCategory::Away),
    ("Training*", StatusCategory::Away),
    ("Not ready*", StatusCategory::Away),
    ("Pause*", StatusCategory::Away),
    ("Offline", StatusCategory::Offline),
    ("Logout*", StatusCategory::Offline),
    ("Logged out*", StatusCategory::Offline),
    ("Disconnected", StatusCategory::Offline),
];

/// Whether `pattern` (exact, or a prefix when it ends in `*`) names `text`, ignoring case. An
/// exact match ranks above every prefix, a longer prefix above a shorter one: the rank, or `None`.
fn rank(pattern: &str, text: &str) -> Option<usize> {
    match pattern.strip_suffix('*') {
        Some(prefix) => {
            let head = text.get(..prefix.len())?;
            head.eq_ignore_ascii_case(prefix).then_some(prefix.len())
        }
        None => pattern.eq_ignore_ascii_case(text).then_some(usize::MAX),
    }
}

/// The best rule of `rules` for any of `texts`.
fn best<'a>(
    rules: impl Iterator<Item = (&'a str, StatusCategory)>,
    texts: &[&str],
) -> Option<StatusCategory> {
    rules
        .filter_map(|(p, c)| {
            texts
                .iter()
                .filter_map(|t| rank(p, t))
                .max()
                .map(|r| (r, c))
        })
        .max_by_key(|(r, _)| *r)
        .map(|(_, c)| c)
}

/// The category of a vendor `status` (and its `name`): the configured rules first, then
/// [`DEFAULT_STATUS_CATEGORIES`]; [`ABSENT`] is `OFFLINE`; no status at all is `UNKNOWN`.
pub fn categorize(
    status: Option<&str>,
    name: Option<&str>,
    configured: &BTreeMap<String, StatusCategory>,
) -> StatusCategory {
    if status == Some(ABSENT) {
        return StatusCategory::Offline;
    }
    let texts: Vec<&str> = [status, name].into_iter().flatten().collect();
    if texts.is_empty() {
        return StatusCategory::Unknown;
    }
    best(configured.iter().map(|(p, c)| (p.as_str(), *c)), &texts)
        .or_else(|| best(DEFAULT_STATUS_CATEGORIES.iter().copied(), &texts))
        .unwrap_or_default()
}

/// An agent handling interactions is `BUSY` whatever its status says when that status is
/// `AVAILABLE` (Comm100's `Online` while chatting) or unknown (Vonage, which reports none).
pub fn with_interactions(category: StatusCategory, active: Option<i64>) -> StatusCategory {
    match category {
        StatusCategory::Available | StatusCategory::Unknown if active.is_some_and(|n| n > 0) => {
            StatusCategory::Busy
        }
        c => c,
    }
}

/// Vonage `latestInteractions`: the agent's latest interaction as the vendor shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VonageAgentDetails {
    pub latest_interaction_id: Option<String>,
    /// Its start (UTC ms) and the vendor's text of it.
    pub latest_interaction_started_at: Option<i64>,
    pub latest_interaction_started_at_raw: Option<String>,
    pub latest_interaction_has_ended: Option<bool>,
}

/// `agent-state`, as in `schemas/agent-state.avsc` (same fields, same order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStateRecord {
    /// UUIDv5 of (source, `agent-state`, agent, the feed's previous poll): [`super::id::agent_state`].
    pub event_id: String,
    pub source: String,
    pub vendor: String,
    pub agent_id: String,
    pub agent_name: Option<String>,
    /// The vendor's status (Wolkvox text, Comm100 status id), `ABSENT` when the vendor no longer
    /// lists the agent; null when the vendor has no agent status (Vonage).
    pub status: Option<String>,
    pub status_name: Option<String>,
    pub status_category: StatusCategory,
    /// The vendor lists the agent (logged in); false once it is `ABSENT`.
    pub listed: bool,
    /// When the status began: the estimate and its bounds (as on `agent-status-changed`).
    pub status_since: Option<i64>,
    pub status_since_after: Option<i64>,
    pub status_since_before: Option<i64>,
    /// The agent's active interactions; null when the vendor does not name them (Comm100) or
    /// they are not known yet (Wolkvox before its interactions feed's first poll).
    pub active_interaction_ids: Option<Vec<String>>,
    pub active_interaction_count: Option<i64>,
    /// The poll that saw those interactions (Wolkvox: the interactions feed's last poll).
    pub interactions_observed_at: Option<i64>,
    /// The poll this record describes.
    pub observed_at: i64,
    pub reason: AgentStateReason,
    /// How the status was observed: `INITIAL_SNAPSHOT` (the feed's first poll), `SNAPSHOT_DIFF`,
    /// `CONFIRMED_ABSENT` (Comm100: missing from two paged polls).
    pub derivation: Derivation,
    pub wolkvox: Option<WolkvoxAgentDetails>,
    pub comm100: Option<Comm100AgentDetails>,
    pub vonage: Option<VonageAgentDetails>,
}

#[cfg(test)]
mod tests {
    use super::StatusCategory::*;
    use super::*;

    fn none() -> BTreeMap<String, StatusCategory> {
        BTreeMap::new()
    }

    #[test]
    fn default_rules_cover_the_simulated_and_documented_statuses() {
        for (status, want) in [
            ("Ready", Available),
            ("ready", Available),
            ("Busy", Busy),
            ("Aux - Break", Away),
            ("AUX - Lunch", Away),
            ("ACW", Busy),
            ("Ringing", Busy),
            ("Logout", Offline),
            (ABSENT, Offline),
            ("Something else", Unknown),
        ] {
            assert_eq!(categorize(Some(status), None, &none()), want, "{status}");
        }
        // Comm100: the status is a GUID, its name decides.
        let guid = "00000000-0000-0000-0000-000000000001";
        assert_eq!(categorize(Some(guid), Some("Away"), &none()), Away);
        assert_eq!(categorize(Some(guid), Some("Online"), &none()), Available);
        assert_eq!(categorize(Some(guid), None, &none()), Unknown);
        assert_eq!(categorize(None, None, &none()), Unknown);
    }

    #[test]
    fn configured_rules_win_and_the_most_specific_rule_decides() {
        let cfg: BTreeMap<String, StatusCategory> = [
            ("Aux - Coaching".to_string(), Busy),
            ("aux*".to_string(), Offline),
            (
                "00000000-0000-0000-0000-000000000009".to_string(),
                Available,
            ),
        ]
        .into();
        assert_eq!(categorize(Some("Aux - Coaching"), None, &cfg), Busy);
        assert_eq!(categorize(Some("Aux - Break"), None, &cfg), Offline);
        // A configured id beats the default rule of its name.
        let id = "00000000-0000-0000-0000-000000000009";
        assert_eq!(categorize(Some(id), Some("Away"), &cfg), Available);
        // Longest prefix wins among defaults too: "Not ready*" over nothing, exact over prefix.
        assert_eq!(categorize(Some("Not ready - 3"), None, &none()), Away);
        // ABSENT is OFFLINE whatever is configured.
        let odd: BTreeMap<String, StatusCategory> = [("ABSENT".to_string(), Busy)].into();
        assert_eq!(categorize(Some(ABSENT), None, &odd), Offline);
    }

    #[test]
    fn an_available_or_unknown_agent_with_interactions_is_busy() {
        assert_eq!(with_interactions(Available, Some(1)), Busy);
        assert_eq!(with_interactions(Unknown, Some(2)), Busy);
        assert_eq!(with_interactions(Available, Some(0)), Available);
        assert_eq!(with_interactions(Available, None), Available);
        assert_eq!(with_interactions(Away, Some(1)), Away);
        assert_eq!(with_interactions(Offline, Some(1)), Offline);
    }
}
