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
    // An agent listed twice, once with a status: the status stands.
    unknown.retain(|id| !agents.contains_key(id));
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
mod tests {
    use super::*;

    const BOUND: PollBound = PollBound {
        max_rows: 1000,
        max_decoded_bytes: 8 << 20,
    };

    #[test]
    fn rows_become_typed_agent_states() {
        let body = r#"{"code":"200","error":null,"msg":"2 records were found","data":[
          {"agent_id":"1001","agent_name":"Ana","agent_status":"Ready","calls":"12","inbound":"10","outbound":"2","internal":"0",
           "time_state_now":"00:03:15","ready_time":"3600","inbound_time":"01:10:00","outbound_time":"","acw_time":"00:00:30",
           "ring_time":"00:00:05","login_time":"08:00:00","aht_time":"00:04:00","ocupation":"87%","aux_time":"00:15:00"},
          {"agent_id":1002,"agent_name":"Luis","agent_status":"Aux - Lunch","calls":"n/a"}]}"#;
        let s = parse_agents("ops", 9, BOUND, &mut body.as_bytes()).unwrap();
        assert_eq!(s.observed_at, 9);
        let a = &s.agents["1001"];
        assert_eq!(
            (a.name.as_deref(), a.status.as_str()),
            (Some("Ana"), "Ready")
        );
        let d = a.wolkvox.as_ref().unwrap();
        assert_eq!(
            (d.calls, d.inbound, d.outbound, d.internal),
            (Some(12), Some(10), Some(2), Some(0))
        );
        assert_eq!(
            (
                d.time_state_now_s,
                d.ready_time_s,
                d.inbound_time_s,
                d.outbound_time_s
            ),
            (Some(195), Some(3600), Some(4200), None)
        );
        assert_eq!(
            (d.login_time_s, d.ocupation.as_deref()),
            (Some(28_800), Some("87%"))
        );
        assert!(d.raw.contains("\"agent_name\":\"Ana\""));
        let b = &s.agents["1002"];
        assert_eq!(
            (b.status.as_str(), b.wolkvox.as_ref().unwrap().calls),
            ("Aux - Lunch", None)
        );
    }

    #[test]
    fn an_agent_without_a_status_or_id_or_listed_twice_invents_nothing() {
        let parse = |at: i64, body: &str| {
            parse_agents_and_unknown("ops", at, BOUND, &mut body.as_bytes()).unwrap()
        };
        let row = |id: &str, status: &str| {
            format!(r#"{{"agent_id":"{id}","agent_status":"{status}","time_state_now":"5"}}"#)
        };
        let body = |rows: &[String]| format!(r#"{{"code":200,"data":[{}]}}"#, rows.join(","));
        let meta = crate::event::SourceMeta {
            name: "ops".into(),
            vendor: "wolkvox".into(),
        };
        let mut s1 = parse(1_000, &body(&[row("1", "Ready"), row("2", "Busy")])).0;
        s1.settle(None, Listing::Whole);
        // Agent 1 without a status (empty, then missing), agent 3 new without one.
        for empty in [
            row("1", ""),
            r#"{"agent_id":"1","time_state_now":"5"}"#.to_string(),
        ] {
            let (mut s2, unknown, _) =
                parse(2_000, &body(&[empty, row("2", "Busy"), row("3", "")]));
            assert_eq!(unknown, ["1", "3"]);
            s2.settle_keeping_unknown(unknown, Some(&s1), Listing::Whole);
            assert!(
                diff_agents(&meta, Some(&s1), &s2).is_empty(),
                "no logout, no change"
            );
            assert_eq!(s2.agents["1"].status, "Ready");
            assert_eq!(
                s2.agents["1"].last_seen,
                Some(1_000),
                "its status was seen at 1,000"
            );
            assert!(!s2.agents.contains_key("3"));
            // Its status seen again at 3,000, changed: it began after 1,000, not after 2,000.
            let (mut s3, unknown, _) = parse(3_000, &body(&[row("1", "Busy"), row("2", "Busy")]));
            s3.settle_keeping_unknown(unknown, Some(&s2), Listing::Whole);
            let changed = diff_agents(&meta, Some(&s2), &s3);
            assert_eq!(changed.len(), 1);
            let crate::event::Event::AgentStatus(e) = &changed[0] else {
                panic!("{changed:?}")
            };
            // (time_state_now, 5 s, points before both polls here, so the polls' bounds stand.)
            assert_eq!(e.status_since_after, Some(1_000), "{e:?}");
        }
        // A row without an agent id is left out, and the answer judges nobody logged out: the
        // row may be any agent's.
        for anonymous in [
            r#"{"agent_status":"Busy"}"#,
            r#"{"agent_id":"","agent_status":"Busy"}"#,
        ] {
            let (mut s2, unknown, listing) =
                parse(2_000, &body(&[anonymous.to_string(), row("1", "Ready")]));
            assert_eq!(listing, Listing::Partial);
            s2.settle_keeping_unknown(unknown, Some(&s1), listing);
            assert!(
                diff_agents(&meta, Some(&s1), &s2).is_empty(),
                "agent 2 is not logged out"
            );
            assert_eq!(s2.agents["2"].status, "Busy");
        }
        // An agent listed twice: the first row with a status stands, a later one (with another
        // status, or none) is left out.
        for second in [row("2", "Ready"), row("2", "")] {
            let (mut s2, unknown, listing) =
                parse(2_000, &body(&[row("1", "Ready"), row("2", "Busy"), second]));
            assert_eq!((listing, unknown.len()), (Listing::Whole, 0));
            s2.settle_keeping_unknown(unknown, Some(&s1), listing);
            assert!(diff_agents(&meta, Some(&s1), &s2).is_empty());
        }
        let (mut s2, unknown, _) = parse(
            2_000,
            &body(&[row("1", "Ready"), row("2", ""), row("2", "Aux")]),
        );
        assert!(unknown.is_empty(), "the row with a status stands");
        s2.settle_keeping_unknown(unknown, Some(&s1), Listing::Whole);
        assert_eq!(diff_agents(&meta, Some(&s1), &s2).len(), 1, "2: Busy → Aux");
    }

    fn rows(n: usize, name: &str) -> String {
        let rows: Vec<String> = (0..n)
            .map(|i| {
                format!(r#"{{"agent_id":"{i}","agent_name":"{name}","agent_status":"Ready"}}"#)
            })
            .collect();
        format!(r#"{{"code":200,"data":[{}]}}"#, rows.join(","))
    }

    #[test]
    fn more_agents_than_max_rows_fail_the_poll_naming_the_bound() {
        let bound = |max_rows| PollBound { max_rows, ..BOUND };
        let body = rows(5, "Ana");
        let s = parse_agents("ops", 1, bound(5), &mut body.as_bytes()).unwrap();
        assert_eq!(s.agents.len(), 5);
        let e = parse_agents("ops", 1, bound(4), &mut body.as_bytes()).unwrap_err();
        assert_eq!(e.kind(), "over_bound");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("ops {AGENTS_ENDPOINT}: "))
                && text.contains("more than 4 rows (max_rows_per_poll)"),
            "{text}"
        );
    }

    #[test]
    fn decoded_size_and_row_length_are_bounded() {
        // Ten agents of 10 kB names: ≈ 200 kB decoded (the name in the field and in the raw row).
        let body = rows(10, &"n".repeat(10_000));
        let tight = PollBound::new(1000, 20_000); // 160 kB decoded at most
        let e = parse_agents("ops", 1, tight, &mut body.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("decoded bytes"), "{e}");
        let roomy = PollBound::new(1000, 40_000);
        assert_eq!(
            parse_agents("ops", 1, roomy, &mut body.as_bytes())
                .unwrap()
                .agents
                .len(),
            10
        );
        let body = rows(1, &"n".repeat(MAX_ROW_BYTES as usize));
        let e = parse_agents("ops", 1, BOUND, &mut body.as_bytes()).unwrap_err();
        assert_eq!(e.kind(), "over_bound");
        assert!(e.to_string().contains("bytes in one row"), "{e}");
    }

    #[test]
    fn a_row_that_is_not_an_object_names_its_index() {
        let body = r#"{"code":200,"data":[{"agent_id":"1","agent_status":"x"},"oops"]}"#;
        let e = parse_agents("ops", 1, BOUND, &mut body.as_bytes()).unwrap_err();
        assert_eq!(e.kind(), "parse");
        assert!(e.to_string().contains("data[1]"), "{e}");
    }

    #[test]
    fn an_answer_of_as_many_rows_as_the_vendor_sends_per_call_is_refused_whole() {
        let bound = PollBound::new(100_000, 64 << 20);
        let rows = |n: usize| {
            let rows: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"agent_id":"{i}","agent_status":"Ready"}}"#))
                .collect();
            format!(r#"{{"code":200,"data":[{}]}}"#, rows.join(","))
        };
        let s = parse_agents("ops", 9, bound, &mut rows(59_999).as_bytes()).unwrap();
        assert_eq!(s.agents.len(), 59_999);
        let e = parse_agents("ops", 9, bound, &mut rows(60_000).as_bytes()).unwrap_err();
        assert_eq!(e.kind(), "row_limit");
        assert!(
            e.to_string().starts_with(&format!(
                "ops {AGENTS_ENDPOINT}: the answer holds 60000 rows"
            )),
            "{e}"
        );
    }

    #[test]
    fn every_agent_listed_without_a_status_keeps_its_state_however_many() {
        let meta = crate::event::SourceMeta {
            name: "ops".into(),
            vendor: "wolkvox".into(),
        };
        let bound = PollBound::new(10_000, 64 << 20);
        let body = |status: &str| {
            let rows: Vec<String> = (0..1_500)
                .map(|i| format!(r#"{{"agent_id":"{i}","agent_status":"{status}"}}"#))
                .collect();
            format!(r#"{{"code":200,"data":[{}]}}"#, rows.join(","))
        };
        let mut s1 = parse_agents("ops", 1_000, bound, &mut body("Ready").as_bytes()).unwrap();
        s1.settle(None, Listing::Whole);
        let (mut s2, unknown, _) =
            parse_agents_and_unknown("ops", 2_000, bound, &mut body("").as_bytes()).unwrap();
        assert_eq!(unknown.len(), 1_500);
        s2.settle_keeping_unknown(unknown, Some(&s1), Listing::Whole);
        assert!(diff_agents(&meta, Some(&s1), &s2).is_empty(), "no logout");
        assert_eq!(s2.present(), 1_500);
    }
}
