//! A faithful simulator of the three vendors' APIs, used by `ccdc simulate`, `ccdc demo` and the
//! integration tests. Each vendor lives under its own prefix:
//!
//! | vendor | base_url to configure | endpoints |
//! |---|---|---|
//! | Wolkvox | `http://ADDR/api/v2` | `real_time.php?api=interactions|agents` (header `wolkvox-token`) |
//! | Comm100 | `http://ADDR/comm100/v4` | `livechat/realTime/Agents` (paged), `Queue`, `Today`, `RightNow`, `agentAwayStatuses` (bearer) |
//! | Vonage | `http://ADDR/vonage` (token: `http://ADDR/vonage/Auth/connect/token`) | `v{n}/{account}/agents/{id}/latestInteractions` (OAuth2 client credentials, client id `ccdc-sim`, secret = the token) |
//!
//! Modes: **scripted** (a [`Scenario`] of steps, served until advanced with `POST /_sim/advance`),
//! **random** (a seeded random walk that changes on every Wolkvox interactions request) and
//! **truth** ([`truth`]: a seeded Wolkvox world with a known ground truth, served as of the real
//! instant of each request, for scoring ccdc's output).
//! Faults for the next requests of a route: `POST /_sim/fault?kind=...&count=N[&route=...]`.
//! With [`SimState::serve_worlds`] (`ccdc simulate --worlds`) every path under `/w/{world}/` is
//! served by a small world of its own ([`worlds`]): one simulator for a thousand sources.

pub mod agent_truth;
pub mod comm100;
pub mod reports;
pub mod truth;
pub mod vonage;
pub mod wolkvox;
pub mod worlds;

mod server;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

pub use comm100::C100Agent;
pub use server::{wolkvox_source, SimServer};
pub use vonage::VonageLatest;
pub use wolkvox::{SimAgent, SimInteraction, Step};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    Http500,
    Http429,
    Http401,
    Http400,
    Malformed,
    Truncated,
    /// Wolkvox: `code` 500 in the envelope; others: HTTP 500.
    VendorError,
    Empty,
    Slow,
    /// The normal body, streamed in chunks without a Content-Length.
    Chunked,
    /// Wolkvox reports: HTTP 200 with an error envelope refusing the window for its size
    /// (diagram_9's page: "if your query exceeds 6000 records, reduce the date range").
    RangeTooLarge,
}

/// Which endpoint a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    #[default]
    WolkvoxInteractions,
    WolkvoxAgents,
    Comm100Agents,
    Comm100Queue,
    Comm100Today,
    Comm100RightNow,
    VonageToken,
    VonageLatest,
    WolkvoxReports,
}

/// A scripted timeline; all vendors share the step index.
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    pub wolkvox: Vec<Step>,
    pub comm100: Vec<Vec<C100Agent>>,
    pub vonage: Vec<BTreeMap<String, Option<VonageLatest>>>,
}

pub enum SimMode {
    /// Wolkvox steps only (shorthand for a [`Scenario`] with just `wolkvox`).
    Scripted(Vec<Step>),
    Scenario(Scenario),
    Random {
        seed: u64,
        agents: usize,
    },
    /// Benchmark world: `interactions` active, `churn` of them replaced on every interactions request.
    Bench {
        seed: u64,
        interactions: usize,
        churn: usize,
    },
    /// Wolkvox serves a world with a known ground truth, at the real instant of each request.
    Truth(Arc<truth::TruthWorld>),
}

pub(crate) struct Inner {
    pub scenario: Scenario,
    pub step: usize,
    pub random: Option<wolkvox::RandomWorld>,
    pub requests: HashMap<Route, u64>,
    pub faults: HashMap<Route, VecDeque<Option<Fault>>>,
    pub slow: Duration,
    pub comm100_page_size: usize,
    pub comm100_shift_once: bool,
    /// Advance the scenario right after serving the next page 1 of `Agents`.
    pub comm100_advance_after_page_1: bool,
    /// A `pageCount` to claim on `Agents` instead of the real one (a vendor gone wrong).
    pub comm100_claimed_page_count: Option<u64>,
    pub vonage: vonage::TokenIssuer,
    pub reports: reports::ReportSim,
    pub truth: Option<Arc<truth::TruthWorld>>,
    /// Steps the random world by the clock instead of per request (the worlds of [`worlds`]).
    pub clock: worlds::Clock,
}

pub struct SimState {
    pub(crate) token: String,
    pub(crate) inner: Mutex<Inner>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// The worlds under `/w/`, once [`SimState::serve_worlds`] is called.
    pub(crate) worlds: std::sync::OnceLock<worlds::Worlds>,
}

/// Counts a request as in flight while alive.
pub(crate) struct InFlight<'a>(&'a SimState);

impl<'a> InFlight<'a> {
    pub(crate) fn enter(st: &'a SimState) -> Self {
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
    /// `token` is Wolkvox's `wolkvox-token`, Comm100's bearer token and Vonage's client secret.
    pub fn new(token: &str, mode: SimMode) -> Arc<Self> {
        let truth = match &mode {
            SimMode::Truth(world) => Some(world.clone()),
            _ => None,
        };
        let (scenario, random) = match mode {
            SimMode::Scripted(steps) => (
                Scenario {
                    wolkvox: steps,
                    ..Default::default()
                },
                None,
            ),
            SimMode::Scenario(s) => (s, None),
            SimMode::Truth(_) => (Scenario::default(), None),
            SimMode::Bench {
                seed,
                interactions,
                churn,
            } => (
                Scenario::default(),
                Some(wolkvox::RandomWorld::bench(seed, interactions, churn)),
            ),
            SimMode::Random { seed, agents } => (
                Scenario::default(),
                Some(wolkvox::RandomWorld::new(seed, agents)),
            ),
        };
        Arc::new(SimState {
            token: token.to_string(),
            inner: Mutex::new(Inner {
                scenario,
                step: 0,
                random,
                requests: HashMap::new(),
                faults: HashMap::new(),
                slow: Duration::from_secs(65),
                comm100_page_size: 5,
                comm100_shift_once: false,
                comm100_advance_after_page_1: false,
                comm100_claimed_page_count: None,
                vonage: vonage::TokenIssuer::default(),
                reports: reports::ReportSim::default(),
                truth,
                clock: worlds::Clock::default(),
            }),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            worlds: std::sync::OnceLock::new(),
        })
    }

    /// Serve a world of `spec` under `/w/{name}/` for every name asked for ([`worlds`]); the
    /// first call wins.
    pub fn serve_worlds(&self, spec: worlds::WorldSpec) {
        let _ = self.worlds.set(worlds::Worlds::new(spec));
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serve the next scripted step from now on. Returns the new step index.
    pub fn advance(&self) -> usize {
        let mut g = self.lock();
        let len = g
            .scenario
            .wolkvox
            .len()
            .max(g.scenario.comm100.len())
            .max(g.scenario.vonage.len());
        if g.step + 1 < len {
            g.step += 1;
        }
        g.step
    }

    pub fn step(&self) -> usize {
        self.lock().step
    }

    /// Requests served on the Wolkvox interactions route.
    pub fn requests(&self) -> u64 {
        self.requests_on(Route::WolkvoxInteractions)
    }

    pub fn requests_on(&self, route: Route) -> u64 {
        self.lock().requests.get(&route).copied().unwrap_or(0)
    }

    /// The most requests ever served at the same time.
    pub fn max_concurrent_requests(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Inject `fault` into the next `count` Wolkvox interactions requests.
    pub fn inject(&self, fault: Fault, count: usize) {
        self.inject_at(Route::WolkvoxInteractions, fault, count);
    }

    pub fn inject_at(&self, route: Route, fault: Fault, count: usize) {
        self.inject_sequence(route, std::iter::repeat_n(Some(fault), count).collect());
    }

    /// The next requests of `route` get these outcomes in order (`None` = normal answer).
    pub fn inject_sequence(&self, route: Route, seq: Vec<Option<Fault>>) {
        self.lock().faults.entry(route).or_default().extend(seq);
    }

    /// How long a `slow` fault stalls (default 65 s, past the vendor's 60 s limit).
    pub fn set_slow(&self, d: Duration) {
        self.lock().slow = d;
    }

    /// Comm100 `Agents` page size (default 5, as in the seed's example).
    pub fn set_comm100_page_size(&self, n: usize) {
        self.lock().comm100_page_size = n.max(1);
    }

    /// The next paged Comm100 poll sees the list shift by one between page 1 and the following pages.
    pub fn shift_comm100_list_once(&self) {
        self.lock().comm100_shift_once = true;
    }

    /// The next step happens in the middle of the next paged Comm100 poll: right after its page 1
    /// is served (e.g. an agent of page 1 logs out and a new one is appended, so an agent of page 2
    /// slides onto page 1, already read, and is on no page of that poll).
    pub fn advance_comm100_between_pages_once(&self) {
        self.lock().comm100_advance_after_page_1 = true;
    }

    /// Claim `n` pages on Comm100 `Agents` whatever the list holds.
    pub fn claim_comm100_page_count(&self, n: u64) {
        self.lock().comm100_claimed_page_count = Some(n);
    }

    /// Report rows every `spacing_s` seconds (0: no generated rows, only those added with
    /// [`Self::add_report_row`]) and at most `row_limit` rows per response.
    pub fn set_report_generation(&self, spacing_s: i64, row_limit: usize) {
        let mut g = self.lock();
        g.reports.spacing_s = spacing_s.max(0);
        g.reports.row_limit = row_limit.max(1);
    }

    /// Give each generated chat_1 row a `comments` of `chars` characters.
    pub fn set_report_padding(&self, chars: usize) {
        self.lock().reports.padding = chars;
    }

    /// Serve `row` as a row of `report` dated `at` (local) from now on; replaces a generated row with
    /// the same identity (a late, changed or malformed row). Rows added with one identity are all
    /// served (a chat listed once per agent).
    pub fn add_report_row(
        &self,
        report: &str,
        at: chrono::NaiveDateTime,
        row: serde_json::Map<String, serde_json::Value>,
    ) {
        self.lock()
            .reports
            .extra
            .push((report.to_string(), at, row));
    }

    /// Every row the simulator serves for `report` in `[ini, end]` (local, inclusive) as of now.
    pub fn report_rows(
        &self,
        report: &str,
        ini: chrono::NaiveDateTime,
        end: chrono::NaiveDateTime,
    ) -> Vec<serde_json::Map<String, serde_json::Value>> {
        let now = chrono::Utc::now()
            .with_timezone(&reports::SIM_TZ)
            .naive_local();
        reports::report_rows(&self.lock().reports, report, ini, end, now)
    }

    /// Vonage tokens' lifetime in seconds (default 3600).
    pub fn set_vonage_token_lifetime(&self, secs: u64) {
        self.lock().vonage.lifetime = secs;
    }

    /// Invalidate every Vonage token issued so far (the next call gets a 401).
    pub fn revoke_vonage_tokens(&self) {
        self.lock().vonage.revoke_all();
    }

    /// Vonage tokens issued so far.
    pub fn vonage_tokens_issued(&self) -> u64 {
        self.lock().vonage.issued
    }

    /// Count a request on `route` and take its fault, if any.
    pub(crate) fn begin(&self, route: Route) -> (Option<Fault>, Duration) {
        let mut g = self.lock();
        *g.requests.entry(route).or_default() += 1;
        let fault = g
            .faults
            .get_mut(&route)
            .and_then(|q| q.pop_front())
            .flatten();
        (fault, g.slow)
    }
}

/// The answer for `fault`, given the normal JSON body; `None` when the fault does not apply.
pub(crate) async fn fault_response(
    fault: Fault,
    body: &serde_json::Value,
    slow: Duration,
) -> Option<Response> {
    let json_text = |t: String| ([("content-type", "application/json")], t).into_response();
    Some(match fault {
        Fault::Http500 | Fault::VendorError => {
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
        }
        Fault::Http429 => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "slow down",
        )
            .into_response(),
        Fault::Http401 => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Unauthorized"})),
        )
            .into_response(),
        Fault::Http400 => (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "The InteractionType field is required."})),
        )
            .into_response(),
        Fault::Malformed => json_text("{\"data\":[{\"id\":".into()),
        Fault::Truncated => {
            let full = body.to_string();
            json_text(full[..full.len() / 2].to_string())
        }
        Fault::Chunked => {
            let text = body.to_string().into_bytes();
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
        Fault::Slow => {
            tokio::time::sleep(slow).await;
            return None;
        }
        Fault::Empty => return None,
        Fault::RangeTooLarge => Json(json!({
            "code": "400",
            "error": "if your query exceeds 6000 records, reduce the date range",
            "msg": null,
            "data": null
        }))
        .into_response(),
    })
}

#[derive(Deserialize)]
struct FaultQuery {
    kind: Fault,
    count: Option<usize>,
    #[serde(default)]
    route: Route,
}

pub fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .merge(wolkvox::routes())
        .merge(comm100::routes())
        .merge(vonage::routes())
        .merge(reports::routes())
        .merge(worlds::routes())
        .route("/_sim/advance", post(|State(st): State<Arc<SimState>>| async move { Json(json!({"step": st.advance()})) }))
        .route(
            "/_sim/state",
            get(|State(st): State<Arc<SimState>>| async move { Json(json!({"step": st.step(), "requests": st.requests()})) }),
        )
        .route(
            "/_sim/fault",
            post(|State(st): State<Arc<SimState>>, Query(q): Query<FaultQuery>| async move {
                st.inject_at(q.route, q.kind, q.count.unwrap_or(1));
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(state)
}
