//! Comm100 metrics as the vendor sends them (camelCase, as on seed 004), and their conversion into
//! the records ccdc publishes ([`crate::event::metrics`]). Durations such as `06:53:57.0500000`
//! become milliseconds with the raw text kept; integers that arrive as `0.0` are accepted; the
//! vendor's typo `abandondedChats` maps to `abandoned_chats`.

use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::event::metrics::{QueueMetrics, QueueVisitor, RightNowMetrics, TodayMetrics};
use crate::sources::bound::{text_len, DecodedSize, Rows};

use crate::vendor_time::parse_duration_ms;

/// An integer that may be sent as a float with no fraction (`1.0`); `null` → `None`.
pub(super) fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v: Option<serde_json::Number> = Option::deserialize(d)?;
    match v {
        None => Ok(None),
        Some(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(Some(i)),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
            _ => Err(de::Error::custom(format!("expected an integer, found {n}"))),
        },
    }
}

/// An agent's counter as sent: an integer (also as a whole float, `1.0`), nothing (`null`,
/// absent), or something else, which becomes `null` in the record and is counted, so that one
/// agent's odd value does not fail every agent's poll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Counter {
    #[default]
    Absent,
    Value(i64),
    Unreadable,
}

impl Counter {
    /// The value, and whether it was unreadable.
    pub(super) fn read(self) -> (Option<i64>, bool) {
        match self {
            Counter::Absent => (None, false),
            Counter::Value(v) => (Some(v), false),
            Counter::Unreadable => (None, true),
        }
    }
}

impl<'de> Deserialize<'de> for Counter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match serde_json::Value::deserialize(d)? {
            serde_json::Value::Null => Counter::Absent,
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Counter::Value(i),
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Counter::Value(f as i64),
                _ => Counter::Unreadable,
            },
            _ => Counter::Unreadable,
        })
    }
}

/// A count the vendor controls (`total`, `pageCount`): any JSON number or numeric string, whole,
/// saturating at `u64::MAX` (negative: 0); `null`, absent or anything else: `None`.
pub(super) fn opt_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    let f = match &v {
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                return Ok(Some(u));
            }
            n.as_f64()
        }
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    // `as` saturates a float out of range; NaN becomes 0.
    Ok(f.map(|f| if f <= 0.0 { 0 } else { f as u64 }))
}

fn duration(raw: Option<String>) -> (Option<i64>, Option<String>) {
    (raw.as_deref().and_then(parse_duration_ms), raw)
}

#[derive(Deserialize)]
struct NamedRef {
    #[serde(alias = "displayName")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VisitorRow {
    visitor_id: Option<String>,
    contact_identity_id: Option<String>,
    wait_time: Option<String>,
}

impl DecodedSize for VisitorRow {
    fn decoded_bytes(&self) -> usize {
        std::mem::size_of::<QueueVisitor>()
            + text_len(&self.visitor_id)
            + text_len(&self.contact_identity_id)
            + text_len(&self.wait_time)
    }
}

/// One element of `GET livechat/realTime/Queue`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueRow {
    pub route_to_department_id: Option<String>,
    route_to_department: Option<NamedRef>,
    pub route_to_agent_id: Option<String>,
    route_to_agent: Option<NamedRef>,
    // Counters: one row's odd value is null in its record, not a failed poll for every row.
    #[serde(default)]
    ongoing_chats: Counter,
    #[serde(default)]
    max_concurrent_chats: Counter,
    #[serde(default)]
    current_queue_length: Counter,
    #[serde(rename = "avgWaitTimeinLast30Mins")]
    avg_wait_time_in_last30_mins: Option<String>,
    #[serde(rename = "avgWaitTimeinLast60Mins")]
    avg_wait_time_in_last60_mins: Option<String>,
    #[serde(rename = "abandonedChatsinLast30Mins", default)]
    abandoned_chats_in_last30_mins: Counter,
    #[serde(rename = "switchedtoMessagesinLast30Mins", default)]
    switched_to_messages_in_last30_mins: Counter,
    /// `null` or absent: none.
    #[serde(default)]
    visitors: Option<Rows<VisitorRow>>,
}

impl QueueRow {
    /// Its counters that are not integers (published as null).
    pub fn unreadable(&self) -> usize {
        [
            self.ongoing_chats,
            self.max_concurrent_chats,
            self.current_queue_length,
            self.abandoned_chats_in_last30_mins,
            self.switched_to_messages_in_last30_mins,
        ]
        .iter()
        .filter(|c| c.read().1)
        .count()
    }
}

impl DecodedSize for QueueRow {
    /// The record it becomes (its visitors are counted as rows of their own).
    fn decoded_bytes(&self) -> usize {
        let name = |r: &Option<NamedRef>| r.as_ref().map_or(0, |n| text_len(&n.name));
        std::mem::size_of::<crate::event::MetricsRecord>()
            + 2 * text_len(&self.route_to_department_id)
            + name(&self.route_to_department)
            + text_len(&self.route_to_agent_id)
            + name(&self.route_to_agent)
            + text_len(&self.avg_wait_time_in_last30_mins)
            + text_len(&self.avg_wait_time_in_last60_mins)
    }
}

impl From<QueueRow> for QueueMetrics {
    fn from(r: QueueRow) -> Self {
        let (w30, w30_raw) = duration(r.avg_wait_time_in_last30_mins);
        let (w60, w60_raw) = duration(r.avg_wait_time_in_last60_mins);
        QueueMetrics {
            route_to_department_id: r.route_to_department_id,
            route_to_department_name: r.route_to_department.and_then(|d| d.name),
            route_to_agent_id: r.route_to_agent_id,
            route_to_agent_name: r.route_to_agent.and_then(|a| a.name),
            ongoing_chats: r.ongoing_chats.read().0,
            max_concurrent_chats: r.max_concurrent_chats.read().0,
            current_queue_length: r.current_queue_length.read().0,
            avg_wait_time_last_30_mins_ms: w30,
            avg_wait_time_last_30_mins_raw: w30_raw,
            avg_wait_time_last_60_mins_ms: w60,
            avg_wait_time_last_60_mins_raw: w60_raw,
            abandoned_chats_last_30_mins: r.abandoned_chats_in_last30_mins.read().0,
            switched_to_messages_last_30_mins: r.switched_to_messages_in_last30_mins.read().0,
            visitors: r
                .visitors
                .unwrap_or_default()
                .0
                .into_iter()
                .map(|v| {
                    let (ms, raw) = duration(v.wait_time);
                    QueueVisitor {
                        visitor_id: v.visitor_id,
                        contact_identity_id: v.contact_identity_id,
                        wait_time_ms: ms,
                        wait_time_raw: raw,
                    }
                })
                .collect(),
        }
    }
}

/// `GET livechat/realTime/Today` as the vendor sends it. Vendor names are kept
/// recognisable; the vendor's typo `abandondedChats` maps to `abandoned_chats`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TodayRow {
    #[serde(alias = "chatRequests", default, deserialize_with = "opt_int")]
    chat_requests: Option<i64>,
    #[serde(alias = "totalChats", default, deserialize_with = "opt_int")]
    total_chats: Option<i64>,
    #[serde(default, deserialize_with = "opt_int")]
    chats: Option<i64>,
    #[serde(alias = "chatAcceptanceRate", default)]
    chat_acceptance_rate: Option<f64>,
    #[serde(
        alias = "abandondedChats",
        alias = "abandonedChats",
        default,
        deserialize_with = "opt_int"
    )]
    abandoned_chats: Option<i64>,
    #[serde(
        alias = "switchedToMessageChats",
        default,
        deserialize_with = "opt_int"
    )]
    switched_to_message_chats: Option<i64>,
    #[serde(alias = "missedChats", default, deserialize_with = "opt_int")]
    missed_chats: Option<i64>,
    #[serde(alias = "avgWaitingTime", default)]
    avg_waiting_time: Option<f64>,
    #[serde(alias = "avgChatTime", default)]
    avg_chat_time: Option<f64>,
    #[serde(alias = "agentAvgResponseTime", default)]
    agent_avg_response_time: Option<f64>,
    #[serde(alias = "acceptedInvitations", default, deserialize_with = "opt_int")]
    accepted_invitations: Option<i64>,
    #[serde(alias = "serviceAccessibilityRate", default)]
    service_accessibility_rate: Option<f64>,
    #[serde(
        alias = "departmentTransferredChats",
        default,
        deserialize_with = "opt_int"
    )]
    department_transferred_chats: Option<i64>,
    #[serde(alias = "totalTransferredChats", default, deserialize_with = "opt_int")]
    total_transferred_chats: Option<i64>,
    #[serde(alias = "uniqueChatRate", default)]
    unique_chat_rate: Option<f64>,
    #[serde(alias = "agentUtilization", default)]
    agent_utilization: Option<f64>,
    #[serde(alias = "avgScore", default)]
    avg_score: Option<f64>,
}

impl From<TodayRow> for TodayMetrics {
    fn from(r: TodayRow) -> Self {
        TodayMetrics {
            chat_requests: r.chat_requests,
            total_chats: r.total_chats,
            chats: r.chats,
            chat_acceptance_rate: r.chat_acceptance_rate,
            abandoned_chats: r.abandoned_chats,
            switched_to_message_chats: r.switched_to_message_chats,
            missed_chats: r.missed_chats,
            avg_waiting_time: r.avg_waiting_time,
            avg_chat_time: r.avg_chat_time,
            agent_avg_response_time: r.agent_avg_response_time,
            accepted_invitations: r.accepted_invitations,
            service_accessibility_rate: r.service_accessibility_rate,
            department_transferred_chats: r.department_transferred_chats,
            total_transferred_chats: r.total_transferred_chats,
            unique_chat_rate: r.unique_chat_rate,
            agent_utilization: r.agent_utilization,
            avg_score: r.avg_score,
        }
    }
}

/// `GET livechat/realTime/RightNow` as the vendor sends it.
/// `chatUtilization` is documented as int but sent as `0.0`: it is a double here.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RightNowRow {
    #[serde(alias = "loggedInAgents", default, deserialize_with = "opt_int")]
    logged_in_agents: Option<i64>,
    #[serde(alias = "agentsInChat", default, deserialize_with = "opt_int")]
    agents_in_chat: Option<i64>,
    #[serde(alias = "chatUtilization", default)]
    chat_utilization: Option<f64>,
    #[serde(alias = "visitorOnSite", default, deserialize_with = "opt_int")]
    visitor_on_site: Option<i64>,
    #[serde(alias = "ongoingChats", default, deserialize_with = "opt_int")]
    ongoing_chats: Option<i64>,
    #[serde(alias = "ongoingChatsWithAgent", default, deserialize_with = "opt_int")]
    ongoing_chats_with_agent: Option<i64>,
    #[serde(alias = "currentQueueLength", default, deserialize_with = "opt_int")]
    current_queue_length: Option<i64>,
    #[serde(alias = "ongoingChatsWithBot", default, deserialize_with = "opt_int")]
    ongoing_chats_with_bot: Option<i64>,
}

impl From<RightNowRow> for RightNowMetrics {
    fn from(r: RightNowRow) -> Self {
        RightNowMetrics {
            logged_in_agents: r.logged_in_agents,
            agents_in_chat: r.agents_in_chat,
            chat_utilization: r.chat_utilization,
            visitor_on_site: r.visitor_on_site,
            ongoing_chats: r.ongoing_chats,
            ongoing_chats_with_agent: r.ongoing_chats_with_agent,
            current_queue_length: r.current_queue_length,
            ongoing_chats_with_bot: r.ongoing_chats_with_bot,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_counts_sent_as_whole_floats_are_read_and_anything_else_is_unreadable() {
        let page = |n: &str| {
            format!(
                r#"{{"total":1,"pageCount":1,"list":[{{"agentId":"a","ongoingChats":{n},"maxConcurrentChats":3,"intradayChats":null}}]}}"#
            )
        };
        let counters = |n: &str| {
            let p: super::super::AgentsPage = serde_json::from_str(&page(n)).unwrap();
            let row = p.list.unwrap().0.into_iter().next().unwrap();
            (
                row.ongoing_chats,
                row.max_concurrent_chats,
                row.intraday_chats,
            )
        };
        use Counter::*;
        assert_eq!(counters("1.0"), (Value(1), Value(3), Absent));
        // Not an integer: that counter is unreadable, the row (and the page) is still read.
        for bad in ["1.5", "1e300", r#""x""#, "[]", "true"] {
            assert_eq!(counters(bad), (Unreadable, Value(3), Absent), "{bad}");
        }
        assert_eq!(Unreadable.read(), (None, true));
    }

    #[test]
    fn a_queue_rows_odd_counter_is_null_and_the_other_rows_are_read() {
        let q = r#"[{"routeToDepartmentId":"d1","currentQueueLength":1.5,"ongoingChats":"x","visitors":null},
            {"routeToDepartmentId":"d2","currentQueueLength":3.0,"ongoingChats":2}]"#;
        let rows: Vec<QueueRow> = serde_json::from_str(q).unwrap();
        assert_eq!(
            rows.iter().map(QueueRow::unreadable).collect::<Vec<_>>(),
            [2, 0]
        );
        let m: Vec<QueueMetrics> = rows.into_iter().map(Into::into).collect();
        assert_eq!(
            m.iter()
                .map(|m| (m.current_queue_length, m.ongoing_chats, m.visitors.len()))
                .collect::<Vec<_>>(),
            [(None, None, 0), (Some(3), Some(2), 0)]
        );
    }

    #[test]
    fn seed_queue_today_and_right_now_samples_decode() {
        let q = r#"[{"routeToDepartmentId":"3fa8","routeToDepartment":{"id":"3fa8","name":"Sales"},
            "routeToAgentId":"a1","routeToAgent":{"id":"a1","displayName":"Ana"},"ongoingChats":0,"maxConcurrentChats":0,
            "currentQueueLength":2,"avgWaitTimeinLast30Mins":"00:01:30","avgWaitTimeinLast60Mins":"00:00:00",
            "abandonedChatsinLast30Mins":1,"switchedtoMessagesinLast30Mins":0,
            "visitors":[{"visitorId":"v1","contactIdentityId":"c1","waitTime":"00:00:42.5000000"}]}]"#;
        let rows: Vec<QueueRow> = serde_json::from_str(q).unwrap();
        let m: QueueMetrics = rows.into_iter().next().unwrap().into();
        assert_eq!(
            (
                m.route_to_department_name.as_deref(),
                m.route_to_agent_name.as_deref()
            ),
            (Some("Sales"), Some("Ana"))
        );
        assert_eq!(
            (
                m.current_queue_length,
                m.avg_wait_time_last_30_mins_ms,
                m.abandoned_chats_last_30_mins
            ),
            (Some(2), Some(90_000), Some(1))
        );
        assert_eq!(
            m.avg_wait_time_last_30_mins_raw.as_deref(),
            Some("00:01:30")
        );
        assert_eq!(m.visitors[0].wait_time_ms, Some(42_500));

        let t: TodayMetrics = serde_json::from_str::<TodayRow>(
            r#"{"chatRequests":0,"totalChats":3,"chats":0,"chatAcceptanceRate":0.0,"abandondedChats":2,"switchedToMessageChats":0,
            "missedChats":0,"avgWaitingTime":0.0,"avgChatTime":0.0,"agentAvgResponseTime":0.0,"acceptedInvitations":0,
            "serviceAccessibilityRate":0.0,"departmentTransferredChats":0,"totalTransferredChats":0,"uniqueChatRate":0.0,
            "agentUtilization":1.0,"avgScore":0.0}"#,
        )
        .unwrap()
        .into();
        assert_eq!(
            (t.total_chats, t.abandoned_chats, t.agent_utilization),
            (Some(3), Some(2), Some(1.0))
        );

        let r: RightNowMetrics = serde_json::from_str::<RightNowRow>(
            r#"{"agentsInChat":0,"ongoingChats":1,"ongoingChatsWithAgent":1,"ongoingChatsWithBot":0,"currentQueueLength":0,
            "visitorOnSite":1,"loggedInAgents":2,"chatUtilization":0.0}"#,
        )
        .unwrap()
        .into();
        assert_eq!(
            (r.logged_in_agents, r.ongoing_chats, r.chat_utilization),
            (Some(2), Some(1), Some(0.0))
        );
        // The published form round-trips (it is what the outbox stores).
        let back: RightNowMetrics =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn an_integer_field_with_a_fraction_is_an_error() {
        assert!(serde_json::from_str::<RightNowRow>(r#"{"loggedInAgents":2.5}"#).is_err());
        assert!(serde_json::from_str::<RightNowRow>(r#"{"loggedInAgents":"two"}"#).is_err());
    }
}
