//! Many small worlds in one simulator (`ccdc simulate --worlds`): every path under `/w/{world}/`
//! is served by its own world, made on its first request, so one simulator process plays a
//! thousand operations (the many-sources benchmark, P6). A world answers every vendor's API at the
//! same paths as the root one, below its prefix:
//!
//! | vendor | base_url of world `ops-7` |
//! |---|---|
//! | Wolkvox | `http://ADDR/w/ops-7/api/v2` |
//! | Comm100 | `http://ADDR/w/ops-7/comm100/v4` |
//! | Vonage | `http://ADDR/w/ops-7/vonage` (token: `http://ADDR/w/ops-7/vonage/Auth/connect/token`) |
//!
//! World `W` accepts the token `<token>-W` (each source has its own token, as each operation has in
//! real life: Wolkvox limits concurrency per token). Its operation: [`WorldSpec::agents`] agents
//! (ids `1001`…), each with [`WorldSpec::interactions_per_agent`] active interactions; every
//! [`WorldSpec::step_every`] (by the clock, not per request, so every vendor's feeds see the same
//! pace) [`WorldSpec::churn`] interactions end and as many start, and one agent's status flips
//! between `Busy` and `Aux - Break`. The seed of a world is the simulator's seed mixed with a hash
//! of its name: the same name plays the same operation.
//!
//! World names are `[A-Za-z0-9._-]`, 1–64 characters; at most [`MAX_WORLDS`] worlds are made.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use tower::ServiceExt;

use super::wolkvox::RandomWorld;
use super::{Inner, SimMode, SimState};

/// The most worlds one simulator makes (a bound on its memory: a world is a few kilobytes).
pub const MAX_WORLDS: usize = 100_000;

/// What every world plays.
#[derive(Debug, Clone, Copy)]
pub struct WorldSpec {
    pub seed: u64,
    pub agents: usize,
    pub interactions_per_agent: usize,
    /// Interactions replaced (one ends, another starts) per step.
    pub churn: usize,
    /// How often a world steps: on the first request after each multiple of this since it was made.
    pub step_every: Duration,
}

impl Default for WorldSpec {
    /// 20 agents, 60 interactions, 3 of them replaced (and one status changed) every 10 s.
    fn default() -> Self {
        WorldSpec {
            seed: 1,
            agents: 20,
            interactions_per_agent: 3,
            churn: 3,
            step_every: Duration::from_secs(10),
        }
    }
}

/// The worlds served under `/w/`.
pub(crate) struct Worlds {
    spec: WorldSpec,
    map: Mutex<HashMap<String, Router>>,
}

/// When a world steps by the clock (`None` in the other modes: the random world steps on every
/// Wolkvox interactions request).
#[derive(Debug, Default)]
pub(crate) struct Clock {
    every: Option<Duration>,
    last: Option<Instant>,
}

impl Inner {
    /// Step the random world by the clock, when it steps by the clock; `true` if it does (then a
    /// request does not step it).
    pub(crate) fn tick(&mut self) -> bool {
        let Some(every) = self.clock.every.filter(|e| !e.is_zero()) else {
            return false;
        };
        let now = Instant::now();
        let last = *self.clock.last.get_or_insert(now);
        let due = (now.duration_since(last).as_nanos() / every.as_nanos()).min(1_000) as u32;
        if due > 0 {
            self.clock.last = Some(last + every * due);
            if let Some(world) = self.random.as_mut() {
                for _ in 0..due {
                    world.step();
                }
            }
        }
        true
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Worlds {
    pub(crate) fn new(spec: WorldSpec) -> Self {
        Worlds {
            spec,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The router of world `name`, made on first use; `None` for a bad name or past
    /// [`MAX_WORLDS`].
    fn router(&self, name: &str, token: &str) -> Option<Router> {
        if !valid_name(name) {
            return None;
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = map.get(name) {
            return Some(r.clone());
        }
        if map.len() >= MAX_WORLDS {
            return None;
        }
        let s = self.spec;
        let seed = s.seed ^ xxhash_rust::xxh3::xxh3_64(name.as_bytes());
        let world = RandomWorld::operation(seed, s.agents, s.interactions_per_agent, s.churn);
        let state = SimState::new(
            &format!("{token}-{name}"),
            SimMode::Random { seed, agents: 0 },
        );
        {
            let mut g = state.lock();
            g.random = Some(world);
            g.clock.every = Some(s.step_every);
            g.comm100_page_size = s.agents.max(1);
        }
        let router = super::router(state);
        map.insert(name.to_string(), router.clone());
        Some(router)
    }
}

/// `/w/{world}/{rest}`: `/{rest}` of that world.
async fn serve(State(st): State<Arc<SimState>>, req: Request) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no such world").into_response();
    let Some(worlds) = st.worlds.get() else {
        return not_found();
    };
    let path = req.uri().path().to_string();
    let Some((name, rest)) = path.strip_prefix("/w/").and_then(|p| p.split_once('/')) else {
        return not_found();
    };
    let Some(router) = worlds.router(name, &st.token) else {
        return not_found();
    };
    let target = match req.uri().query() {
        Some(q) => format!("/{rest}?{q}"),
        None => format!("/{rest}"),
    };
    let Ok(uri) = target.parse::<Uri>() else {
        return not_found();
    };
    // A new request: the outer route's path parameters (in the extensions) must not reach the
    // world's router, whose handlers extract their own.
    let (parts, body) = req.into_parts();
    let mut inner = Request::new(body);
    *inner.method_mut() = parts.method;
    *inner.uri_mut() = uri;
    *inner.version_mut() = parts.version;
    *inner.headers_mut() = parts.headers;
    match router.oneshot(inner).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

pub(crate) fn routes() -> Router<Arc<SimState>> {
    Router::new().route("/w/{world}/{*rest}", any(serve))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_path_safe_and_bounded() {
        assert!(valid_name("p6-wolkvox-0001"));
        assert!(valid_name("a.b_c"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("%2e%2e"));
        assert!(!valid_name(&"x".repeat(65)));
    }

    #[tokio::test]
    async fn each_world_has_its_own_operation_token_and_clock() {
        let st = SimState::new("tok", SimMode::Random { seed: 1, agents: 1 });
        st.serve_worlds(WorldSpec {
            step_every: Duration::from_secs(3600),
            ..WorldSpec::default()
        });
        let sim = super::super::SimServer::start("127.0.0.1:0".parse().unwrap(), st)
            .await
            .unwrap();
        let client = reqwest::Client::new();
        let get = |world: &str, token: &str| {
            client
                .get(format!(
                    "http://{}/w/{world}/api/v2/real_time.php?api=interactions",
                    sim.addr
                ))
                .header("wolkvox-token", token)
                .send()
        };
        let body = |r: reqwest::Response| async move {
            let v: serde_json::Value = r.json().await.unwrap();
            v["data"].clone()
        };
        // The world's own token, not the simulator's.
        assert_eq!(get("a", "tok").await.unwrap().status(), 401);
        let a1 = body(get("a", "tok-a").await.unwrap()).await;
        let agents = a1.as_array().unwrap();
        assert_eq!(agents.len(), 20);
        let active: usize = agents
            .iter()
            .map(|a| a["active_interactions"].as_array().unwrap().len())
            .sum();
        assert_eq!(active, 60);
        // Steps by the clock, not per request: the same answer until the step is due.
        assert_eq!(body(get("a", "tok-a").await.unwrap()).await, a1);
        // Another world plays another operation (another seed), under its own token.
        assert_eq!(get("b", "tok-a").await.unwrap().status(), 401);
        assert!(get("b", "tok-b").await.unwrap().status().is_success());
        // Comm100 and Vonage of a world answer under its prefix.
        let c100 = client
            .get(format!(
                "http://{}/w/a/comm100/v4/livechat/realTime/Agents",
                sim.addr
            ))
            .bearer_auth("tok-a")
            .send()
            .await
            .unwrap();
        let c100: serde_json::Value = c100.json().await.unwrap();
        assert_eq!(c100["total"], 20);
        assert_eq!(c100["pageCount"], 1, "one page holds the world's agents");
        let token: serde_json::Value = client
            .post(format!("http://{}/w/a/vonage/Auth/connect/token", sim.addr))
            .basic_auth(super::super::vonage::CLIENT_ID, Some("tok-a"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let latest = client
            .get(format!(
                "http://{}/w/a/vonage/v1/acct/agents/1001/latestInteractions",
                sim.addr
            ))
            .bearer_auth(token["access_token"].as_str().unwrap())
            .header("accept", "application/json;version=1")
            .send()
            .await
            .unwrap();
        assert_eq!(
            latest.status(),
            200,
            "path parameters of the world's own routes"
        );
        let latest: serde_json::Value = latest.json().await.unwrap();
        assert_eq!(latest["interactions"].as_array().unwrap().len(), 1);
        let root = client
            .get(format!("http://{}/w/a%2fb/api/v2/real_time.php", sim.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(root.status(), 404, "a name that is not path-safe");
        sim.stop().await;
    }

    #[test]
    fn the_clock_steps_the_world_once_per_period() {
        let st = SimState::new("t", SimMode::Random { seed: 1, agents: 0 });
        let mut g = st.lock();
        g.random = Some(RandomWorld::operation(3, 4, 3, 2));
        g.clock.every = Some(Duration::from_millis(50));
        let ids = |g: &Inner| -> Vec<String> {
            let w = g.random.as_ref().unwrap();
            w.agents
                .iter()
                .flat_map(|a| a.active_interactions.iter().map(|i| i.conn_id.clone()))
                .collect()
        };
        assert!(g.tick());
        let first = ids(&g);
        assert_eq!(first.len(), 12);
        assert!(g.tick());
        assert_eq!(ids(&g), first, "not due yet");
        std::thread::sleep(Duration::from_millis(60));
        assert!(g.tick());
        let second = ids(&g);
        assert_eq!(second.len(), 12, "as many start as end");
        assert_ne!(second, first, "stepped");
        drop(g);
        let plain = SimState::new("t", SimMode::Random { seed: 1, agents: 2 });
        assert!(!plain.lock().tick(), "the other modes step per request");
    }
}
