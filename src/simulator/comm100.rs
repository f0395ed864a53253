//! Simulated Comm100 Live Chat real-time API (seed 004) under `/comm100/v4`: `Agents` paged
//! (`total, pageCount, pageIndex, pageSize, list`), `Queue`, `Today` (requires `startTime`),
//! `RightNow`, and `agentAwayStatuses` for status names. Bearer token required.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{fault_response, Fault, InFlight, Route, SimState};

pub const ONLINE: &str = "00000000-0000-0000-0000-000000000000";
pub const AWAY: &str = "00000000-0000-0000-0000-000000000001";
pub const OFFLINE: &str = "00000000-0000-0000-0000-000000000002";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct C100Agent {
    pub agent_id: String,
    pub display_name: String,
    pub status_id: String,
    pub ongoing_chats: i64,
}

impl C100Agent {
    pub fn new(id: &str, name: &str, status_id: &str, ongoing_chats: i64) -> Self {
        C100Agent {
            agent_id: id.into(),
            display_name: name.into(),
            status_id: status_id.into(),
            ongoing_chats,
        }
    }
}

/// The agents `Agents` lists now (the current step, or the random world).
pub(crate) fn agents(st: &SimState) -> Vec<C100Agent> {
    let mut g = st.lock();
    g.tick();
    if let Some(world) = g.random.as_ref() {
        return world
            .agents
            .iter()
            .map(|a| {
                let n: u64 = a.agent_id.parse().unwrap_or(0);
                let status = if a.status.starts_with("Aux") {
                    AWAY
                } else {
                    ONLINE
                };
                C100Agent::new(
                    &format!("00000000-0000-4000-8000-{n:012}"),
                    &format!("Agent {}", a.agent_id),
                    status,
                    a.active_interactions.len() as i64,
                )
            })
            .collect();
    }
    g.scenario.comm100.get(g.step).cloned().unwrap_or_default()
}

fn authorized(st: &SimState, headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(format!("Bearer {}", st.token).as_str())
}

async fn respond(
    st: &SimState,
    route: Route,
    body: serde_json::Value,
    empty: serde_json::Value,
) -> Response {
    let (fault, slow) = st.begin(route);
    match fault {
        Some(Fault::Empty) => Json(empty).into_response(),
        Some(f) => fault_response(f, &body, slow)
            .await
            .unwrap_or_else(|| Json(body).into_response()),
        None => Json(body).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageQuery {
    page_index: Option<usize>,
    page_size: Option<usize>,
}

async fn agents_page(
    State(st): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let _f = InFlight::enter(&st);
    if !authorized(&st, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Unauthorized"})),
        )
            .into_response();
    }
    let all = agents(&st);
    let (size, shift) = {
        let mut g = st.lock();
        let size = q.page_size.unwrap_or(g.comm100_page_size).max(1);
        let page = q.page_index.unwrap_or(1).max(1);
        let pages = all.len().div_ceil(size).max(1);
        let shift = g.comm100_shift_once && page >= 2;
        if g.comm100_shift_once && page >= pages {
            g.comm100_shift_once = false;
        }
        (size, shift)
    };
    let page = q.page_index.unwrap_or(1).max(1);
    // A shift: one agent was inserted before this page was read, so it starts one earlier.
    let start = ((page - 1) * size)
        .saturating_sub(usize::from(shift))
        .min(all.len());
    let end = (start + size).min(all.len());
    let list: Vec<_> = all[start..end]
        .iter()
        .map(|a| {
            json!({"agentId": a.agent_id, "displayName": a.display_name, "currentStatusId": a.status_id, "ongoingChats": a.ongoing_chats,
                   "maxConcurrentChats": 3, "intradayChats": a.ongoing_chats + 2, "intradayLinearChatTime": "06:53:57.0500000", "statusDistribution": {}})
        })
        .collect();
    let page_count = st
        .lock()
        .comm100_claimed_page_count
        .unwrap_or(all.len().div_ceil(size).max(1) as u64);
    let body = json!({"total": all.len(), "pageCount": page_count, "list": list, "pageIndex": page, "pageSize": size});
    let empty =
        json!({"total": 0, "pageCount": 1, "list": [], "pageIndex": page, "pageSize": size});
    let advance = page == 1 && std::mem::take(&mut st.lock().comm100_advance_after_page_1);
    if advance {
        st.advance();
    }
    respond(&st, Route::Comm100Agents, body, empty).await
}

async fn queue(State(st): State<Arc<SimState>>, headers: HeaderMap) -> Response {
    if !authorized(&st, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let a = agents(&st);
    let ongoing: i64 = a.iter().map(|x| x.ongoing_chats).sum();
    let body = json!([{
        "routeToDepartmentId": "dep-support", "routeToDepartment": {"id": "dep-support", "siteId": 0, "name": "Support"},
        "routeToAgentId": null, "routeToAgent": null, "ongoingChats": ongoing, "maxConcurrentChats": 3 * a.len(),
        "currentQueueLength": 2, "avgWaitTimeinLast30Mins": "00:01:30", "avgWaitTimeinLast60Mins": "00:00:45.5000000",
        "abandonedChatsinLast30Mins": 1, "switchedtoMessagesinLast30Mins": 0,
        "visitors": [{"visitorId": "v-1", "contactIdentityId": "ci-1", "waitTime": "00:00:42"}]
    }]);
    respond(&st, Route::Comm100Queue, body, json!([])).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TodayQuery {
    start_time: Option<String>,
}

async fn today(
    State(st): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(q): Query<TodayQuery>,
) -> Response {
    if !authorized(&st, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if q.start_time.is_none() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "startTime is required"})),
        )
            .into_response();
    }
    let total = st.requests_on(Route::Comm100Today) as i64 + 3;
    let body = json!({"chatRequests": total, "totalChats": total, "chats": total, "chatAcceptanceRate": 0.9, "abandondedChats": 1,
        "switchedToMessageChats": 0, "missedChats": 0, "avgWaitingTime": 12.5, "avgChatTime": 300.0, "agentAvgResponseTime": 8.0,
        "acceptedInvitations": 0, "serviceAccessibilityRate": 0.95, "departmentTransferredChats": 0, "totalTransferredChats": 1,
        "uniqueChatRate": 0.8, "agentUtilization": 1.0, "avgScore": 4.5});
    respond(&st, Route::Comm100Today, body, json!({})).await
}

async fn right_now(State(st): State<Arc<SimState>>, headers: HeaderMap) -> Response {
    if !authorized(&st, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let a = agents(&st);
    let ongoing: i64 = a.iter().map(|x| x.ongoing_chats).sum();
    let logged_in = a.iter().filter(|x| x.status_id != OFFLINE).count();
    let body = json!({"agentsInChat": a.iter().filter(|x| x.ongoing_chats > 0).count(), "ongoingChats": ongoing, "ongoingChatsWithAgent": ongoing,
        "ongoingChatsWithBot": 0, "currentQueueLength": 2, "visitorOnSite": ongoing + 1, "loggedInAgents": logged_in, "chatUtilization": 0.5});
    respond(&st, Route::Comm100RightNow, body, json!({})).await
}

async fn away_statuses(State(st): State<Arc<SimState>>, headers: HeaderMap) -> Response {
    if !authorized(&st, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(json!([
        {"id": ONLINE, "name": "Online", "isSystem": true, "order": 1},
        {"id": AWAY, "name": "Away", "isSystem": true, "order": 2},
        {"id": OFFLINE, "name": "Offline", "isSystem": true, "order": 3}
    ]))
    .into_response()
}

pub(crate) fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/comm100/v4/livechat/realTime/Agents", get(agents_page))
        .route("/comm100/v4/livechat/realTime/Queue", get(queue))
        .route("/comm100/v4/livechat/realTime/Today", get(today))
        .route("/comm100/v4/livechat/realTime/RightNow", get(right_now))
        .route("/comm100/v4/agentAwayStatuses", get(away_statuses))
}
