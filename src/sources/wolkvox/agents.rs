//! `real_time.php?api=agents` (vendor notes): `data[]` of `{agent_id, agent_name, agent_status,
//! calls, inbound, outbound, internal, time_state_now, ready_time, inbound_time, outbound_time,
//! acw_time, ring_time, login_time, aht_time, ocupation, aux_time}` → [`AgentSnapshot`]. Counters
//! become numbers, time counters seconds (`HH:MM:SS` or seconds); the row is kept raw.
//!
//! Rows are decoded one at a time (a row's map, many times its text, lives only while the row is
//! converted) and every agent is counted against the poll's decoding bound
//! ([`crate::sources::bound`]); a row longer than [`MAX_ROW_BYTES`] is refused.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{row_text as text, Envelope, WolkvoxClient};
use crate::diff::agents::{diff_agents, AgentSnapshot, AgentState, Listing};
use crate::event::{Event, WolkvoxAgentDetails};
use crate::sources::bound::{self, decode_bounded, map_entry_bytes, text_len, PollBound};
use crate::sources::SourceError;
use crate::sources::{FeedName, SnapshotSource};
use crate::vendor_time::parse_duration_ms;

pub const AGENTS_ENDPOINT: &str = "real_time.php?api=agents";

/// The longest agent row accepted (a typical one is ≈ 400 bytes): decoded into a map, a row takes
/// up to ≈ 20× its text while it is converted.
pub const MAX_ROW_BYTES: u64 = 1024 * 1024;

/// The agent-status feed of one Wolkvox operation.
pub struct WolkvoxAgents(pub Arc<WolkvoxClient>);

#[async_trait]
impl SnapshotSource for WolkvoxAgents {
    type Snapshot = AgentSnapshot;
    fn name(&self) -> FeedName<'_> {
        FeedName {
            meta: &self.0.meta,
            endpoint: AGENTS_ENDPOINT,
            stream: "agents",
        }
    }
    async fn fetch(
        &self,
        observed_at: i64,
        previous: Option<&AgentSnapshot>,
    ) -> Result<AgentSnapshot, SourceError> {
        let name = self.0.meta.name.clone();
        let bound = self.0.agents_limits.0;
        let ((mut snap, unknown, listing), answered) = self
            .0
            .real_time("agents", AGENTS_ENDPOINT, move |r| {
                parse_agents_and_unknown(&name, observed_at, bound, r)
            })
            .await?;
        // The snapshot is of the moment the vendor answered (its `time_state_now` counts to
        // then), not of when the poll began.
        let answered = answered.max(observed_at);
        let shift = answered - observed_at;
        snap.observed_at = answered;
        for a in snap.agents.values_mut() {
            a.since_hint = a.since_hint.and_then(|t| t.checked_add(shift));
        }
        snap.settle_keeping_unknown(unknown, previous, listing);
        Ok(snap)
    }
    fn poll_timeout(&self) -> Option<std::time::Duration> {
        Some(self.0.agents_limits.1)
    }
    fn diff(&self, previous: Option<&AgentSnapshot>, current: &AgentSnapshot) -> Vec<Event> {
        diff_agents(&self.0.meta, previous, current)
    }
    fn size(&self, s: &AgentSnapshot) -> usize {
        s.present()
    }
}

/// Decode one agents response; more than `bound` allows is [`SourceError::OverBound`].
/// Unparsable counters become null (counted and logged once per poll); agents listed without a
/// status are left out (see [`parse_agents_and_unknown`]).
pub fn parse_agents(
    source: &str,
    observed_at: i64,
    bound: PollBound,
    body: &mut dyn Read,
) -> Result<AgentSnapshot, SourceError> {
    parse_agents_and_unknown(source, observed_at, bound, body).map(|(snap, ..)| snap)
}

/// [`parse_agents`], the ids of the agents listed with an empty or missing `agent_status`
/// (Wolkvox: an empty string means "no value"), each left out of the snapshot, counted and
/// logged; and what the answer proves of agents it does not list: nothing when a row had no
/// `agent_id` (that row may be any agent's), else that they are gone.
pub fn parse_agents_and_unknown(
    source: &str,
    observed_at: i64,
    bound: PollBound,
    body: &mut dyn Read,
) -> Result<(AgentSnapshot, Vec<String>, Listing), SourceError> {
    let (env, _): (Envelope<Folded>, _) =
        decode_bounded(source, AGENTS_ENDPOINT, body, bound.tally())?;
    let Folded {
        agents,
        mut unparsable,
        mut unknown,
        rows,
        anonymous,
        duplicates,
    } = env.into_data(source, AGENTS_ENDPOINT)?;
    super::check_row_limit(source, AGENTS_ENDPOINT, rows)?;
    // An agent listed twice, once with a status: the status stands; listed twice without one:
    // once (`dedup` alone keeps a repeat that is not next to its twin).
    unknown.retain(|id| !agents.contains_key(id));
    unknown.sort_unstable();
    unknown.dedup();
    if duplicates > 0 {
        tracing::warn!(
            source,
            endpoint = AGENTS_ENDPOINT,
            rows = duplicates,
            "agents listed more than once: the first row with a status is kept"
        );
        metrics::counter!("ccdc_field_parse_failures_total", "source" => source.to_string(), "field" => "agent_id").increment(duplicates as u64);
    }
    let listing = if anonymous > 0 {
        tracing::warn!(source, endpoint = AGENTS_ENDPOINT, rows = anonymous, "agent rows without an agent_id left out; no agent missing from this answer is judged logged out");
        metrics::counter!("ccdc_field_parse_failures_total", "source" => source.to_string(), "field" => "agent_id").increment(anonymous as u64);
        Listing::Partial
    } else {
        Listing::Whole
    };
    if !unknown.is_empty() {
        let named = &unknown[..unknown.len().min(MAX_UNKNOWN_NAMED)];
        tracing::warn!(source, endpoint = AGENTS_ENDPOINT, field = "agent_status", agents = unknown.len(), first = ?named, "agents listed without a status: each keeps its previous state this poll");
        metrics::counter!("ccdc_field_parse_failures_total", "source" => source.to_string(), "field" => "agent_status").increment(1);
    }
    let mut snap = AgentSnapshot {
        observed_at,
        agents,
    };
    for a in snap.agents.values_mut() {
        // The vendor says how long the agent has been in this status.
        a.since_hint = a
            .wolkvox
            .as_ref()
            .and_then(|d| d.time_state_now_s)
            .and_then(|s| s.checked_mul(1000))
            .and_then(|ms| observed_at.checked_sub(ms));
    }
    if !unparsable.is_empty() {
        unparsable.sort_unstable();
        unparsable.dedup();
        tracing::warn!(source, endpoint = AGENTS_ENDPOINT, fields = ?unparsable, "counters in no known form; left null, raw row kept");
        metrics::counter!("ccdc_field_parse_failures_total", "source" => source.to_string(), "field" => "agent_counters").increment(1);
    }
    Ok((snap, unknown, listing))
}

/// The `data` array folded into the snapshot's map while it is parsed, one row at a time.
#[derive(Default)]
struct Folded {
    agents: BTreeMap<String, AgentState>,
    /// Counters in no known form (field names).
    unparsable: Vec<&'static str>,
    /// Agents listed without a status (every one: one left out would read as a logout; each is
    /// charged to the poll's bound).
    unknown: Vec<String>,
    /// The rows of `data`, each counted.
    rows: usize,
    /// Rows without an `agent_id` (or with an empty one), left out.
    anonymous: usize,
    /// Rows of an agent already listed with a status, left out.
    duplicates: usize,
}

/// The most agents without a status named in a poll's warning (every one is kept).
const MAX_UNKNOWN_NAMED: usize = 20;

impl<'de> Deserialize<'de> for Folded {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Folded;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of agent rows")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Folded, A::Error> {
                let mut out = Folded::default();
                let mut i = 0usize;
                while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
                    bound::check_row_len(raw.get().len(), MAX_ROW_BYTES)?;
                    let row: Map<String, Value> = serde_json::from_str(raw.get())
                        .map_err(|e| de::Error::custom(format!("data[{i}]: {e}")))?;
                    drop(raw);
                    match agent_from_row(&row, &mut out.unparsable) {
                        Row::Anonymous => out.anonymous += 1,
                        Row::Listed(id, _) if out.agents.contains_key(&id) => out.duplicates += 1,
                        Row::Listed(id, state) => {
                            bound::charge(decoded_bytes(&id, &state))?;
                            out.agents.insert(id, *state);
                        }
                        Row::NoStatus(id) => {
                            bound::charge(map_entry_bytes::<String, ()>() + id.len())?;
                            out.unknown.push(id);
                        }
                    }
                    i += 1;
                }
                out.rows = i;
                Ok(out)
            }
        }
        d.deserialize_seq(V)
    }
}

/// What keeping one agent costs: its entry in the snapshot's map and every string it holds.
fn decoded_bytes(id: &str, a: &AgentState) -> usize {
    let details = a
        .wolkvox
        .as_ref()
        .map_or(0, |d| text_len(&d.ocupation) + d.raw.len());
    map_entry_bytes::<String, AgentState>()
        + id.len()
        + text_len(&a.name)
        + a.status.len()
        + text_len(&a.status_name)
        + details
}

/// What one row of `data` says.
enum Row {
    /// An agent and its state.
    Listed(String, Box<AgentState>),
    /// An agent listed without a status.
    NoStatus(String),
    /// A row without an `agent_id`: nobody's, and maybe anybody's.
    Anonymous,
}

/// One row of `data`; the names of counters in no known form are added to `unparsable`.
fn agent_from_row(row: &Map<String, Value>, unparsable: &mut Vec<&'static str>) -> Row {
    let Some(id) = text(row, "agent_id") else {
        return Row::Anonymous;
    };
    let Some(status) = text(row, "agent_status") else {
        return Row::NoStatus(id);
    };
    let mut count = |key: &'static str| {
        let raw = text(row, key)?;
        let n = raw.parse::<i64>().ok();
        if n.is_none() {
            unparsable.push(key);
        }
        n
    };
    let (calls, inbound, outbound, internal) = (
        count("calls"),
        count("inbound"),
        count("outbound"),
        count("internal"),
    );
    let mut secs = |key: &'static str| {
        let raw = text(row, key)?;
        let ms = parse_duration_ms(&raw);
        if ms.is_none() {
            unparsable.push(key);
        }
        ms.map(|ms| ms / 1000)
    };
    let details = WolkvoxAgentDetails {
        calls,
        inbound,
        outbound,
        internal,
        time_state_now_s: secs("time_state_now"),
        ready_time_s: secs("ready_time"),
        inbound_time_s: secs("inbound_time"),
        outbound_time_s: secs("outbound_time"),
        acw_time_s: secs("acw_time"),
        ring_time_s: secs("ring_time"),
        login_time_s: secs("login_time"),
        aht_time_s: secs("aht_time"),
        aux_time_s: secs("aux_time"),
        ocupation: text(row, "ocupation"),
        raw: serde_json::to_string(row).unwrap_or_default(),
    };
    let state = AgentState {
        name: text(row, "agent_name"),
        status: status.clone(),
        status_name: Some(status),
        wolkvox: Some(details),
        ..AgentState::default()
    };
    Row::Listed(id, Box::new(state))
}

#[cfg(test)]
mod tests;
