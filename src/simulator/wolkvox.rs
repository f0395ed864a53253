//! Simulated Wolkvox: `real_time.php?api=interactions` (seed 000) and `api=agents` (vendor notes),
//! string `code`, header `wolkvox-token`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{fault_response, Fault, InFlight, Route, SimState};

/// One active interaction as the simulator serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimInteraction {
    pub conn_id: String,
    pub subject: String,
    pub fromname: String,
    pub date: String,
}

/// One agent: its active interactions (`api=interactions`) and its status (`api=agents`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimAgent {
    pub agent_id: String,
    pub active_interactions: Vec<SimInteraction>,
    /// `agent_status` on `api=agents`; not part of the interactions response.
    #[serde(skip, default = "ready")]
    pub status: String,
}

fn ready() -> String {
    "Ready".into()
}

impl SimAgent {
    pub fn new(agent_id: &str, status: &str, interactions: Vec<SimInteraction>) -> Self {
        SimAgent {
            agent_id: agent_id.into(),
            active_interactions: interactions,
            status: status.into(),
        }
    }
}

pub type Step = Vec<SimAgent>;

/// The demo world: interactions end, start and (rarely) move between agents; statuses follow.
pub struct RandomWorld {
    rng: StdRng,
    pub agents: Vec<SimAgent>,
    counter: u64,
    /// Benchmark world: every step replaces this many interactions by new ones, nothing else.
    churn: Option<usize>,
    /// With `churn`: every step also flips one agent between `Busy` and `Aux - Break`.
    statuses: bool,
}

impl RandomWorld {
    pub fn new(seed: u64, agents: usize) -> Self {
        RandomWorld {
            rng: StdRng::seed_from_u64(seed),
            agents: (0..agents)
                .map(|i| SimAgent::new(&format!("{}", 1001 + i), "Ready", vec![]))
                .collect(),
            counter: 0,
            churn: None,
            statuses: false,
        }
    }

    /// `interactions` active interactions (3 per agent); each step replaces `churn` of them.
    pub fn bench(seed: u64, interactions: usize, churn: usize) -> Self {
        let mut w = RandomWorld::new(seed, interactions.div_ceil(3));
        for a in w.agents.iter_mut() {
            a.status = "Busy".into();
            for _ in 0..3 {
                w.counter += 1;
                a.active_interactions.push(SimInteraction {
                    conn_id: format!("{:09}", w.counter),
                    subject: "Billing question".into(),
                    fromname: "Ana María".into(),
                    date: "2026-11-21 10:15:00".into(),
                });
            }
        }
        w.churn = Some(churn);
        w
    }

    /// A small operation ([`super::worlds`]): `agents` agents with `per_agent` interactions each;
    /// each step replaces `churn` interactions and flips one agent's status.
    pub fn operation(seed: u64, agents: usize, per_agent: usize, churn: usize) -> Self {
        let mut w = RandomWorld::new(seed, agents);
        for a in w.agents.iter_mut() {
            a.status = "Busy".into();
            for _ in 0..per_agent {
                w.counter += 1;
                a.active_interactions.push(SimInteraction {
                    conn_id: format!("{:09}", w.counter),
                    subject: "Billing question".into(),
                    fromname: "Ana María".into(),
                    date: local_now(),
                });
            }
        }
        w.churn = Some(churn);
        w.statuses = true;
        w
    }

    pub fn step(&mut self) {
        if let Some(churn) = self.churn {
            for _ in 0..churn {
                let a = self.rng.random_range(0..self.agents.len().max(1));
                let Some(agent) = self.agents.get_mut(a) else {
                    return;
                };
                let i = self
                    .rng
                    .random_range(0..agent.active_interactions.len().max(1));
                if let Some(it) = agent.active_interactions.get_mut(i) {
                    self.counter += 1;
                    it.conn_id = format!("{:09}", self.counter);
                    if self.statuses {
                        it.date = local_now();
                    }
                }
            }
            if self.statuses && !self.agents.is_empty() {
                let a = self.rng.random_range(0..self.agents.len());
                let agent = &mut self.agents[a];
                agent.status = if agent.status == "Busy" {
                    "Aux - Break".into()
                } else {
                    "Busy".into()
                };
            }
            return;
        }
        let n = self.agents.len();
        let mut moved = Vec::new();
        let rng = &mut self.rng;
        for a in self.agents.iter_mut() {
            a.active_interactions.retain(|it| {
                let r: f64 = rng.random();
                if r < 0.05 {
                    moved.push(it.clone());
                    false
                } else {
                    r >= 0.25
                }
            });
            if a.active_interactions.len() < 3 && rng.random_bool(0.35) {
                self.counter += 1;
                a.active_interactions.push(SimInteraction {
                    conn_id: format!("{:08}", self.counter),
                    subject: [
                        "Billing",
                        "Order status",
                        "Technical support",
                        "Cancellation",
                    ][rng.random_range(0..4)]
                    .into(),
                    fromname: ["Ana", "Luis", "Marta", "Jorge", "Sofía"][rng.random_range(0..5)]
                        .into(),
                    date: local_now(),
                });
            }
        }
        for it in moved {
            if n > 0 {
                let i = rng.random_range(0..n);
                self.agents[i].active_interactions.push(it);
            }
        }
        for a in self.agents.iter_mut() {
            a.status = if !a.active_interactions.is_empty() {
                "Busy".into()
            } else if rng.random_bool(0.2) {
                "Aux - Break".into()
            } else {
                "Ready".into()
            };
        }
    }
}

fn local_now() -> String {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::America::Bogota)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The agents the current step (or the random world) holds; `advance_random` moves the world.
pub(crate) fn current_agents(st: &SimState, advance_random: bool) -> Step {
    with_agents(st, advance_random, <[SimAgent]>::to_vec)
}

/// `f` applied to the agents of the current step (or the random world), under the state's lock.
fn with_agents<R>(st: &SimState, advance_random: bool, f: impl FnOnce(&[SimAgent]) -> R) -> R {
    let mut guard = st.lock();
    let by_clock = guard.tick();
    let g = &mut *guard;
    match g.random.as_mut() {
        Some(world) => {
            if advance_random && !by_clock {
                world.step();
            }
            f(&world.agents)
        }
        None => f(g.scenario.wolkvox.get(g.step).map_or(&[], |s| s.as_slice())),
    }
}

/// The interactions response of the next step, serialized straight from the world under its lock
/// (no clone, no intermediate JSON tree: the benchmark serves 60,000 interactions per request).
fn interactions_body(st: &SimState) -> Vec<u8> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        code: &'static str,
        error: Option<&'static str>,
        msg: String,
        data: &'a [SimAgent],
    }
    with_agents(st, true, |agents| {
        serde_json::to_vec(&Envelope {
            code: "200",
            error: None,
            msg: records_found(agents.len()),
            data: agents,
        })
        .unwrap_or_default()
    })
}

/// The vendor's `msg` of a successful response.
fn records_found(n: usize) -> String {
    format!("{n} records were found")
}

#[derive(Deserialize)]
struct ApiQuery {
    api: Option<String>,
}

pub(crate) fn envelope(
    code: &str,
    error: Option<&str>,
    data: serde_json::Value,
) -> serde_json::Value {
    let n = data.as_array().map_or(0, |a| a.len());
    json!({"code": code, "error": error, "msg": records_found(n), "data": data})
}

pub(crate) fn agent_row(a: &SimAgent) -> serde_json::Value {
    let calls = a.active_interactions.len() + a.agent_id.len();
    json!({
        "agent_id": a.agent_id, "agent_name": format!("Agent {}", a.agent_id), "agent_status": a.status,
        "calls": calls.to_string(), "inbound": calls.to_string(), "outbound": "0", "internal": "0",
        "time_state_now": "00:02:05", "ready_time": "3600", "inbound_time": "01:10:00", "outbound_time": "",
        "acw_time": "00:00:30", "ring_time": "00:00:05", "login_time": "08:00:00", "aht_time": "00:04:00",
        "ocupation": "80%", "aux_time": "00:15:00"
    })
}

async fn real_time(
    State(st): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(q): Query<ApiQuery>,
) -> Response {
    let _in_flight = InFlight::enter(&st);
    if headers.get("wolkvox-token").and_then(|v| v.to_str().ok()) != Some(st.token.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(envelope("401", Some("Invalid token"), json!([]))),
        )
            .into_response();
    }
    let route = match q.api.as_deref() {
        Some("interactions") => Route::WolkvoxInteractions,
        Some("agents") => Route::WolkvoxAgents,
        _ => {
            return Json(envelope(
                "400",
                Some("Unknown api"),
                serde_json::Value::Null,
            ))
            .into_response()
        }
    };
    let (fault, slow) = st.begin(route);
    if let Some(body) = super::truth::real_time(&st, route) {
        return Json(body).into_response();
    }
    if fault.is_none() && route == Route::WolkvoxInteractions {
        return (
            [("content-type", "application/json")],
            interactions_body(&st),
        )
            .into_response();
    }
    let agents = current_agents(&st, route == Route::WolkvoxInteractions);
    let data = match route {
        Route::WolkvoxAgents => serde_json::Value::Array(agents.iter().map(agent_row).collect()),
        _ => serde_json::to_value(&agents).unwrap_or_default(),
    };
    let body = envelope("200", None, data);
    match fault {
        Some(Fault::VendorError) => Json(envelope(
            "500",
            Some("Internal error, try again later"),
            serde_json::Value::Null,
        ))
        .into_response(),
        Some(Fault::Empty) => Json(envelope("200", None, json!([]))).into_response(),
        Some(Fault::Malformed) => (
            [("content-type", "application/json")],
            "{\"code\":\"200\",\"data\":[{\"agent_id\":",
        )
            .into_response(),
        Some(f) => match fault_response(f, &body, slow).await {
            Some(r) => r,
            None => Json(body).into_response(),
        },
        None => Json(body).into_response(),
    }
}

pub(crate) fn routes() -> Router<Arc<SimState>> {
    Router::new().route("/api/v2/real_time.php", get(real_time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::SimMode;

    #[test]
    fn random_walk_is_reproducible_and_moves() {
        let mut a = RandomWorld::new(7, 4);
        let mut b = RandomWorld::new(7, 4);
        let strip = |s: &[SimAgent]| {
            s.iter()
                .map(|a| {
                    (
                        a.agent_id.clone(),
                        a.status.clone(),
                        a.active_interactions
                            .iter()
                            .map(|i| i.conn_id.clone())
                            .collect::<Vec<_>>(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let mut changed = false;
        let mut last = None;
        for _ in 0..20 {
            a.step();
            b.step();
            let (sa, sb) = (strip(&a.agents), strip(&b.agents));
            assert_eq!(sa, sb);
            changed |= last.as_ref().is_some_and(|l| *l != sa);
            last = Some(sa);
        }
        assert!(changed);
    }

    #[test]
    fn scripted_steps_advance_only_on_request_and_faults_are_consumed() {
        let st = SimState::new(
            "t",
            SimMode::Scripted(vec![vec![], vec![SimAgent::new("1", "Ready", vec![])]]),
        );
        st.inject(Fault::Http500, 1);
        assert_eq!(st.begin(Route::WolkvoxInteractions).0, Some(Fault::Http500));
        assert_eq!(st.begin(Route::WolkvoxInteractions).0, None);
        assert!(current_agents(&st, true).is_empty());
        assert_eq!(st.advance(), 1);
        assert_eq!(st.advance(), 1, "stays on the last step");
        assert_eq!(current_agents(&st, true).len(), 1);
        assert_eq!(st.requests(), 2);
    }
}
