//! A faithful Wolkvox simulator (seed 000's response shape, string `code`, `wolkvox-token` header),
//! used by `ccdc simulate`, `ccdc demo` and the integration tests.
//!
//! Modes: **scripted** (a list of steps; the current step is served until advanced through
//! `POST /_sim/advance`) and **random** (a seeded random walk that changes on every request).
//! Faults for the next requests: `POST /_sim/fault?kind=http500|http429|malformed|truncated|vendor_error|empty|slow|chunked&count=N`.
//! `GET /_sim/state` returns `{step, requests}`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// One active interaction as the simulator serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimInteraction {
    pub conn_id: String,
    pub subject: String,
    pub fromname: String,
    pub date: String,
}

/// One agent row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimAgent {
    pub agent_id: String,
    pub active_interactions: Vec<SimInteraction>,
}

pub type Step = Vec<SimAgent>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    Http500,
    Http429,
    Malformed,
    Truncated,
    VendorError,
    Empty,
    Slow,
    /// The normal body, streamed in chunks without a Content-Length.
    Chunked,
}

pub enum SimMode {
    Scripted(Vec<Step>),
    Random { seed: u64, agents: usize },
}

struct Inner {
    steps: Vec<Step>,
    step: usize,
    random: Option<(StdRng, Vec<SimAgent>, u64)>,
    requests: u64,
    faults: VecDeque<Fault>,
    slow: Duration,
}

pub struct SimState {
    token: String,
    inner: Mutex<Inner>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// Counts a request as in flight while alive.
struct InFlight<'a>(&'a SimState);

impl<'a> InFlight<'a> {
    fn enter(st: &'a SimState) -> Self {
        let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        st.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(st)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SimState {
    pub fn new(token: &str, mode: SimMode) -> Arc<Self> {
        let (steps, random) = match mode {
            SimMode::Scripted(steps) => (steps, None),
            SimMode::Random { seed, agents } => {
                let rows = (0..agents)
                    .map(|i| SimAgent {
                        agent_id: format!("{}", 1001 + i),
                        active_interactions: vec![],
                    })
                    .collect();
                (vec![], Some((StdRng::seed_from_u64(seed), rows, 0)))
            }
        };
        Arc::new(SimState {
            token: token.to_string(),
            inner: Mutex::new(Inner {
                steps,
                step: 0,
                random,
                requests: 0,
                faults: VecDeque::new(),
                slow: Duration::from_secs(65),
            }),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serve the next scripted step from now on. Returns the new step index.
    pub fn advance(&self) -> usize {
        let mut g = self.lock();
        if g.step + 1 < g.steps.len() {
            g.step += 1;
        }
        g.step
    }

    /// The most requests ever served at the same time (the vendor allows 2 per token).
    pub fn max_concurrent_requests(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    pub fn step(&self) -> usize {
        self.lock().step
    }

    /// Inject `fault` into the next `count` requests.
    pub fn inject(&self, fault: Fault, count: usize) {
        let mut g = self.lock();
        g.faults.extend(std::iter::repeat_n(fault, count));
    }

    /// How long a `slow` fault stalls (default 65 s, past the vendor's 60 s limit).
    pub fn set_slow(&self, d: Duration) {
        self.lock().slow = d;
    }

    fn next_response(&self) -> (Option<Fault>, Step, Duration) {
        let mut g = self.lock();
        g.requests += 1;
        let fault = g.faults.pop_front();
        let slow = g.slow;
        if let Some((rng, agents, counter)) = g.random.as_mut() {
            random_walk(rng, agents, counter);
            return (fault, agents.clone(), slow);
        }
        let step = g.steps.get(g.step).cloned().unwrap_or_default();
        (fault, step, slow)
    }
}

fn local_now() -> String {
    let tz: chrono_tz::Tz = chrono_tz::America::Bogota;
    chrono::Utc::now()
        .with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// One step of the demo world: interactions end, start and (rarely) move between agents.
fn random_walk(rng: &mut StdRng, agents: &mut [SimAgent], counter: &mut u64) {
    let n = agents.len();
    let mut moved = Vec::new();
    for a in agents.iter_mut() {
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
            *counter += 1;
            a.active_interactions.push(SimInteraction {
                conn_id: format!("{:08}", *counter),
                subject: [
                    "Billing",
                    "Order status",
                    "Technical support",
                    "Cancellation",
                ][rng.random_range(0..4)]
                .into(),
                fromname: ["Ana", "Luis", "Marta", "Jorge", "Sofía"][rng.random_range(0..5)].into(),
                date: local_now(),
            });
        }
    }
    for it in moved {
        if n > 0 {
            agents[rng.random_range(0..n)].active_interactions.push(it);
        }
    }
}

#[derive(Deserialize)]
struct ApiQuery {
    api: Option<String>,
}

fn envelope(code: &str, error: Option<&str>, data: serde_json::Value) -> serde_json::Value {
    let n = data.as_array().map_or(0, |a| a.len());
    json!({"code": code, "error": error, "msg": format!("{n} records were found"), "data": data})
}

async fn real_time(
    State(st): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(q): Query<ApiQuery>,
) -> Response {
    if headers.get("wolkvox-token").and_then(|v| v.to_str().ok()) != Some(st.token.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(envelope("401", Some("Invalid token"), json!([]))),
        )
            .into_response();
    }
    let _in_flight = InFlight::enter(&st);
    if q.api.as_deref() != Some("interactions") {
        return Json(envelope(
            "400",
            Some("Unknown api"),
            serde_json::Value::Null,
        ))
        .into_response();
    }
    let (fault, step, slow) = st.next_response();
    let body = serde_json::to_value(&step).unwrap_or_default();
    match fault {
        None => Json(envelope("200", None, body)).into_response(),
        Some(Fault::Http500) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
        }
        Some(Fault::Http429) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "slow down",
        )
            .into_response(),
        Some(Fault::Malformed) => (
            [("content-type", "application/json")],
            "{\"code\":\"200\",\"data\":[{\"agent_id\":",
        )
            .into_response(),
        Some(Fault::Truncated) => {
            let full = envelope("200", None, body).to_string();
            (
                [("content-type", "application/json")],
                full[..full.len() / 2].to_string(),
            )
                .into_response()
        }
        Some(Fault::VendorError) => Json(envelope(
            "500",
            Some("Internal error, try again later"),
            serde_json::Value::Null,
        ))
        .into_response(),
        Some(Fault::Empty) => Json(envelope("200", None, json!([]))).into_response(),
        Some(Fault::Chunked) => {
            let text = envelope("200", None, body).to_string().into_bytes();
            let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = text
                .chunks(8 * 1024)
                .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
                .collect();
            (
                [("content-type", "application/json")],
                axum::body::Body::from_stream(futures::stream::iter(chunks)),
            )
                .into_response()
        }
        Some(Fault::Slow) => {
            tokio::time::sleep(slow).await;
            Json(envelope("200", None, body)).into_response()
        }
    }
}

#[derive(Deserialize)]
struct FaultQuery {
    kind: Fault,
    count: Option<usize>,
}

pub fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/api/v2/real_time.php", get(real_time))
        .route(
            "/_sim/advance",
            post(|State(st): State<Arc<SimState>>| async move { Json(json!({"step": st.advance()})) }),
        )
        .route(
            "/_sim/state",
            get(|State(st): State<Arc<SimState>>| async move { Json(json!({"step": st.step(), "requests": st.requests()})) }),
        )
        .route(
            "/_sim/fault",
            post(|State(st): State<Arc<SimState>>, Query(q): Query<FaultQuery>| async move {
                st.inject(q.kind, q.count.unwrap_or(1));
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(state)
}

/// A running simulator.
pub struct SimServer {
    pub addr: SocketAddr,
    pub state: Arc<SimState>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl SimServer {
    /// Bind `addr` (use port 0 for a free port) and serve in the background.
    pub async fn start(addr: SocketAddr, state: Arc<SimState>) -> std::io::Result<SimServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            let res = axum::serve(listener, app)
                .with_graceful_shutdown(async move { c.cancelled().await })
                .await;
            if let Err(e) = res {
                tracing::error!(error = %e, "simulator server failed");
            }
        });
        Ok(SimServer {
            addr,
            state,
            cancel,
            task,
        })
    }

    /// The `base_url` to configure a Wolkvox source with.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v2", self.addr)
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_walk_is_reproducible_and_moves() {
        let a = SimState::new("t", SimMode::Random { seed: 7, agents: 4 });
        let b = SimState::new("t", SimMode::Random { seed: 7, agents: 4 });
        let strip = |s: Step| {
            s.into_iter()
                .map(|a| {
                    (
                        a.agent_id,
                        a.active_interactions
                            .into_iter()
                            .map(|i| i.conn_id)
                            .collect::<Vec<_>>(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let mut changed = false;
        let mut last = None;
        for _ in 0..20 {
            let (_, sa, _) = a.next_response();
            let (_, sb, _) = b.next_response();
            let (sa, sb) = (strip(sa), strip(sb));
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
            SimMode::Scripted(vec![
                vec![],
                vec![SimAgent {
                    agent_id: "1".into(),
                    active_interactions: vec![],
                }],
            ]),
        );
        st.inject(Fault::Http500, 1);
        assert_eq!(st.next_response().0, Some(Fault::Http500));
        assert_eq!(st.next_response().0, None);
        assert!(st.next_response().1.is_empty());
        assert_eq!(st.advance(), 1);
        assert_eq!(st.advance(), 1, "stays on the last step");
        assert_eq!(st.next_response().1.len(), 1);
        assert_eq!(st.requests(), 4);
    }
}
