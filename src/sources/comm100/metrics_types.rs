//! Comm100 metrics: the vendor's rows (camelCase, as on seed 004) and the records ccdc publishes
//! (snake_case, one Avro schema per endpoint). Durations such as `06:53:57.0500000` become
//! milliseconds with the raw text kept; integers that arrive as `0.0` are accepted.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use crate::vendor_time::parse_duration_ms;

/// An integer that may be sent as a float with no fraction (`1.0`); `null` → `None`.
fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
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

/// One element of `GET livechat/realTime/Queue`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueRow {
    pub route_to_department_id: Option<String>,
    route_to_department: Option<NamedRef>,
    route_to_agent_id: Option<String>,
    route_to_agent: Option<NamedRef>,
    #[serde(default, deserialize_with = "opt_int")]
    ongoing_chats: Option<i64>,
    #[serde(default, deserialize_with = "opt_int")]
    max_concurrent_chats: Option<i64>,
    #[serde(default, deserialize_with = "opt_int")]
    current_queue_length: Option<i64>,
    #[serde(rename = "avgWaitTimeinLast30Mins")]
    avg_wait_time_in_last30_mins: Option<String>,
    #[serde(rename = "avgWaitTimeinLast60Mins")]
    avg_wait_time_in_last60_mins: Option<String>,
    #[serde(
        rename = "abandonedChatsinLast30Mins",
        default,
        deserialize_with = "opt_int"
    )]
    abandoned_chats_in_last30_mins: Option<i64>,
    #[serde(
        rename = "switchedtoMessagesinLast30Mins",
        default,
        deserialize_with = "opt_int"
    )]
    switched_to_messages_in_last30_mins: Option<i64>,
    #[serde(default)]
    visitors: Vec<VisitorRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueVisitor {
    pub visitor_id: Option<String>,
    pub contact_identity_id: Option<String>,
    pub wait_time_ms: Option<i64>,
    pub wait_time_raw: Option<String>,
}

/// The published queue record (schemas/comm100-queue.avsc, field `metrics`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMetrics {
    pub route_to_department_id: Option<String>,
    pub route_to_department_name: Option<String>,
    pub route_to_agent_id: Option<String>,
    pub route_to_agent_name: Option<String>,
    pub ongoing_chats: Option<i64>,
    pub max_concurrent_chats: Option<i64>,
    pub current_queue_length: Option<i64>,
    pub avg_wait_time_last_30_mins_ms: Option<i64>,
    pub avg_wait_time_last_30_mins_raw: Option<String>,
    pub avg_wait_time_last_60_mins_ms: Option<i64>,
    pub avg_wait_time_last_60_mins_raw: Option<String>,
    pub abandoned_chats_last_30_mins: Option<i64>,
    pub switched_to_messages_last_30_mins: Option<i64>,
    pub visitors: Vec<QueueVisitor>,
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
            ongoing_chats: r.ongoing_chats,
            max_concurrent_chats: r.max_concurrent_chats,
            current_queue_length: r.current_queue_length,
            avg_wait_time_last_30_mins_ms: w30,
            avg_wait_time_last_30_mins_raw: w30_raw,
            avg_wait_time_last_60_mins_ms: w60,
            avg_wait_time_last_60_mins_raw: w60_raw,
            abandoned_chats_last_30_mins: r.abandoned_chats_in_last30_mins,
            switched_to_messages_last_30_mins: r.switched_to_messages_in_last30_mins,
            visitors: r
                .visitors
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

/// `GET livechat/realTime/Today` (schemas/comm100-today.avsc, field `metrics`). Vendor names are kept
/// recognisable; the vendor's typo `abandondedChats` maps to `abandoned_chats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TodayMetrics {
    #[serde(alias = "chatRequests", default, deserialize_with = "opt_int")]
    pub chat_requests: Option<i64>,
    #[serde(alias = "totalChats", default, deserialize_with = "opt_int")]
    pub total_chats: Option<i64>,
    #[serde(default, deserialize_with = "opt_int")]
    pub chats: Option<i64>,
    #[serde(alias = "chatAcceptanceRate", default)]
    pub chat_acceptance_rate: Option<f64>,
    #[serde(
        alias = "abandondedChats",
        alias = "abandonedChats",
        default,
        deserialize_with = "opt_int"
    )]
    pub abandoned_chats: Option<i64>,
    #[serde(
        alias = "switchedToMessageChats",
        default,
        deserialize_with = "opt_int"
    )]
    pub switched_to_message_chats: Option<i64>,
    #[serde(alias = "missedChats", default, deserialize_with = "opt_int")]
    pub missed_chats: Option<i64>,
    #[serde(alias = "avgWaitingTime", default)]
    pub avg_waiting_time: Option<f64>,
    #[serde(alias = "avgChatTime", default)]
    pub avg_chat_time: Option<f64>,
    #[serde(alias = "agentAvgResponseTime", default)]
    pub agent_avg_response_time: Option<f64>,
    #[serde(alias = "acceptedInvitations", default, deserialize_with = "opt_int")]
    pub accepted_invitations: Option<i64>,
    #[serde(alias = "serviceAccessibilityRate", default)]
    pub service_accessibility_rate: Option<f64>,
    #[serde(
        alias = "departmentTransferredChats",
        default,
        deserialize_with = "opt_int"
    )]
    pub department_transferred_chats: Option<i64>,
    #[serde(alias = "totalTransferredChats", default, deserialize_with = "opt_int")]
    pub total_transferred_chats: Option<i64>,
    #[serde(alias = "uniqueChatRate", default)]
    pub unique_chat_rate: Option<f64>,
    #[serde(alias = "agentUtilization", default)]
    pub agent_utilization: Option<f64>,
    #[serde(alias = "avgScore", default)]
    pub avg_score: Option<f64>,
}

/// `GET livechat/realTime/RightNow` (schemas/comm100-right-now.avsc, field `metrics`).
/// `chatUtilization` is documented as int but sent as `0.0`: it is a double here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RightNowMetrics {
    #[serde(alias = "loggedInAgents", default, deserialize_with = "opt_int")]
    pub logged_in_agents: Option<i64>,
    #[serde(alias = "agentsInChat", default, deserialize_with = "opt_int")]
    pub agents_in_chat: Option<i64>,
    #[serde(alias = "chatUtilization", default)]
    pub chat_utilization: Option<f64>,
    #[serde(alias = "visitorOnSite", default, deserialize_with = "opt_int")]
    pub visitor_on_site: Option<i64>,
    #[serde(alias = "ongoingChats", default, deserialize_with = "opt_int")]
    pub ongoing_chats: Option<i64>,
    #[serde(alias = "ongoingChatsWithAgent", default, deserialize_with = "opt_int")]
    pub ongoing_chats_with_agent: Option<i64>,
    #[serde(alias = "currentQueueLength", default, deserialize_with = "opt_int")]
    pub current_queue_length: Option<i64>,
    #[serde(alias = "ongoingChatsWithBot", default, deserialize_with = "opt_int")]
    pub ongoing_chats_with_bot: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

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

        let t: TodayMetrics = serde_json::from_str(
            r#"{"chatRequests":0,"totalChats":3,"chats":0,"chatAcceptanceRate":0.0,"abandondedChats":2,"switchedToMessageChats":0,
            "missedChats":0,"avgWaitingTime":0.0,"avgChatTime":0.0,"agentAvgResponseTime":0.0,"acceptedInvitations":0,
            "serviceAccessibilityRate":0.0,"departmentTransferredChats":0,"totalTransferredChats":0,"uniqueChatRate":0.0,
            "agentUtilization":1.0,"avgScore":0.0}"#,
        )
        .unwrap();
        assert_eq!(
            (t.total_chats, t.abandoned_chats, t.agent_utilization),
            (Some(3), Some(2), Some(1.0))
        );

        let r: RightNowMetrics = serde_json::from_str(
            r#"{"agentsInChat":0,"ongoingChats":1,"ongoingChatsWithAgent":1,"ongoingChatsWithBot":0,"currentQueueLength":0,
            "visitorOnSite":1,"loggedInAgents":2,"chatUtilization":0.0}"#,
        )
        .unwrap();
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
        assert!(serde_json::from_str::<RightNowMetrics>(r#"{"loggedInAgents":2.5}"#).is_err());
        assert!(serde_json::from_str::<RightNowMetrics>(r#"{"loggedInAgents":"two"}"#).is_err());
    }
}
