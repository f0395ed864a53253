//! `real_time.php?api=agents` (vendor notes): `data[]` of `{agent_id, agent_name, agent_status,
//! calls, inbound, outbound, internal, time_state_now, ready_time, inbound_time, outbound_time,
//! acw_time, ring_time, login_time, aht_time, ocupation, aux_time}` → [`AgentSnapshot`]. Counters
//! become numbers, time counters seconds (`HH:MM:SS` or seconds); the row is kept raw.

use std::io::Read;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{decode_envelope, row_text as text, WolkvoxClient};
use crate::diff::agents::{diff_agents, AgentSnapshot, AgentState, Listing};
use crate::event::{Event, WolkvoxAgentDetails};
use crate::sources::SourceError;
use crate::sources::{FeedName, SnapshotSource};
use crate::vendor_time::parse_duration_ms;

pub const AGENTS_ENDPOINT: &str = "real_time.php?api=agents";

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
        let (mut snap, answered) = self
            .0
            .real_time("agents", AGENTS_ENDPOINT, move |r| {
                parse_agents(&name, observed_at, r)
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
        snap.settle(previous, Listing::Whole);
        Ok(snap)
    }
    fn diff(&self, previous: Option<&AgentSnapshot>, current: &AgentSnapshot) -> Vec<Event> {
        diff_agents(&self.0.meta, previous, current)
    }
    fn size(&self, s: &AgentSnapshot) -> usize {
        s.present()
    }
}

/// Decode one agents response. Unparsable counters become null (counted and logged once per poll).
pub fn parse_agents(
    source: &str,
    observed_at: i64,
    body: &mut dyn Read,
) -> Result<AgentSnapshot, SourceError> {
    let rows: Vec<Map<String, Value>> = decode_envelope(source, AGENTS_ENDPOINT, body)?;
    let err = |field: String, detail: &str| SourceError::Parse {
        source_name: source.into(),
        endpoint: AGENTS_ENDPOINT.into(),
        field,
        detail: detail.into(),
    };
    let mut snap = AgentSnapshot {
        observed_at,
        agents: Default::default(),
    };
    let mut unparsable = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let id = text(row, "agent_id")
            .ok_or_else(|| err(format!("data[{i}].agent_id"), "missing or empty"))?;
        let status = text(row, "agent_status")
            .ok_or_else(|| err(format!("data[{i}].agent_status"), "missing or empty"))?;
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
            raw: Value::Object(row.clone()).to_string(),
        };
        // The vendor says how long the agent has been in this status.
        let since_hint = details
            .time_state_now_s
            .and_then(|s| s.checked_mul(1000))
            .and_then(|ms| observed_at.checked_sub(ms));
        snap.agents.insert(
            id,
            AgentState {
                name: text(row, "agent_name"),
                status: status.clone(),
                status_name: Some(status),
                wolkvox: Some(details),
                since_hint,
                ..AgentState::default()
            },
        );
    }
    if !unparsable.is_empty() {
        unparsable.sort_unstable();
        unparsable.dedup();
        tracing::warn!(source, endpoint = AGENTS_ENDPOINT, fields = ?unparsable, "counters in no known form; left null, raw row kept");
        metrics::counter!("ccdc_field_parse_failures_total", "source" => source.to_string(), "field" => "agent_counters").increment(1);
    }
    Ok(snap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_typed_agent_states() {
        let body = r#"{"code":"200","error":null,"msg":"2 records were found","data":[
          {"agent_id":"1001","agent_name":"Ana","agent_status":"Ready","calls":"12","inbound":"10","outbound":"2","internal":"0",
           "time_state_now":"00:03:15","ready_time":"3600","inbound_time":"01:10:00","outbound_time":"","acw_time":"00:00:30",
           "ring_time":"00:00:05","login_time":"08:00:00","aht_time":"00:04:00","ocupation":"87%","aux_time":"00:15:00"},
          {"agent_id":1002,"agent_name":"Luis","agent_status":"Aux - Lunch","calls":"n/a"}]}"#;
        let s = parse_agents("ops", 9, &mut body.as_bytes()).unwrap();
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
    fn missing_status_names_the_field() {
        let e = parse_agents(
            "ops",
            1,
            &mut r#"{"code":200,"data":[{"agent_id":"1","agent_status":""}]}"#.as_bytes(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("data[0].agent_status"), "{e}");
        let e = parse_agents(
            "ops",
            1,
            &mut r#"{"code":200,"data":[{"agent_status":"Ready"}]}"#.as_bytes(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("data[0].agent_id"), "{e}");
    }
}
