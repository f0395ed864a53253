//! Comm100 real-time metrics as ccdc publishes them (one Avro schema per endpoint, field `metrics`).
//! These are domain types: how the vendor's JSON is read is in [`crate::sources::comm100`], which
//! converts into these with `From`. Durations are milliseconds with the vendor's text kept.

use serde::{Deserialize, Serialize};

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

/// Comm100 `Today` (schemas/comm100-today.avsc, field `metrics`): the site's totals since local
/// midnight. Example: `total_chats = 3`, `abandoned_chats = 2`,
/// `agent_utilization = 1.0`; every value exactly as the vendor sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TodayMetrics {
    pub chat_requests: Option<i64>,
    pub total_chats: Option<i64>,
    pub chats: Option<i64>,
    pub chat_acceptance_rate: Option<f64>,
    pub abandoned_chats: Option<i64>,
    pub switched_to_message_chats: Option<i64>,
    pub missed_chats: Option<i64>,
    pub avg_waiting_time: Option<f64>,
    pub avg_chat_time: Option<f64>,
    pub agent_avg_response_time: Option<f64>,
    pub accepted_invitations: Option<i64>,
    pub service_accessibility_rate: Option<f64>,
    pub department_transferred_chats: Option<i64>,
    pub total_transferred_chats: Option<i64>,
    pub unique_chat_rate: Option<f64>,
    pub agent_utilization: Option<f64>,
    pub avg_score: Option<f64>,
}

/// Comm100 `RightNow` (schemas/comm100-right-now.avsc, field `metrics`): the site at the poll.
/// Example: `logged_in_agents = 2`, `chat_utilization = 0.5` (a double: the vendor sends `0.0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RightNowMetrics {
    pub logged_in_agents: Option<i64>,
    pub agents_in_chat: Option<i64>,
    pub chat_utilization: Option<f64>,
    pub visitor_on_site: Option<i64>,
    pub ongoing_chats: Option<i64>,
    pub ongoing_chats_with_agent: Option<i64>,
    pub current_queue_length: Option<i64>,
    pub ongoing_chats_with_bot: Option<i64>,
}
