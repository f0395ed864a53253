//! Simulated Vonage Contact Center under `/vonage`: the OAuth2 client-credentials token endpoint
//! (`Auth/connect/token`, client id `ccdc-sim`, secret = the simulator token; tokens expire) and
//! `v{n}/{accountKey}/agents/{agentId}/latestInteractions` (seed 003: `Accept:
//! application/json;version=1`, 401 without a valid token, 404 for an unknown agent).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{fault_response, Fault, InFlight, Route, SimState};

pub const CLIENT_ID: &str = "ccdc-sim";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VonageLatest {
    pub guid: String,
    /// RFC 3339 UTC, e.g. `2017-03-30T22:40:15Z`.
    pub start: String,
    pub has_ended: bool,
}

impl VonageLatest {
    pub fn new(guid: &str, start: &str, has_ended: bool) -> Self {
        VonageLatest {
            guid: guid.into(),
            start: start.into(),
            has_ended,
        }
    }
}

pub struct TokenIssuer {
    pub lifetime: u64,
    pub issued: u64,
    tokens: HashMap<String, Instant>,
    /// Random mode: the last interaction each agent had.
    last: HashMap<String, VonageLatest>,
}

impl Default for TokenIssuer {
    fn default() -> Self {
        TokenIssuer {
            lifetime: 3600,
            issued: 0,
            tokens: HashMap::new(),
            last: HashMap::new(),
        }
    }
}

impl TokenIssuer {
    pub fn revoke_all(&mut self) {
        self.tokens.clear();
    }
    fn issue(&mut self) -> String {
        self.issued += 1;
        let t = format!("vtok-{}-{}", self.issued, rand::random::<u32>());
        self.tokens.insert(
            t.clone(),
            Instant::now() + Duration::from_secs(self.lifetime),
        );
        t
    }
    fn valid(&self, t: &str) -> bool {
        self.tokens.get(t).is_some_and(|exp| Instant::now() < *exp)
    }
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let v = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let text = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .ok()?,
    )
    .ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

async fn token(
    State(st): State<Arc<SimState>>,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Response {
    let (fault, slow) = st.begin(Route::VonageToken);
    if let Some(r) = match fault {
        Some(f) => fault_response(f, &json!({}), slow).await,
        None => None,
    } {
        return r;
    }
    if f.grant_type != "client_credentials" {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    if basic(&headers) != Some((CLIENT_ID.to_string(), st.token.clone())) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let mut g = st.lock();
    let t = g.vonage.issue();
    let lifetime = g.vonage.lifetime;
    Json(json!({"access_token": t, "expires_in": lifetime, "token_type": "Bearer"})).into_response()
}

fn latest_for(st: &SimState, agent: &str) -> Option<Option<VonageLatest>> {
    let mut g = st.lock();
    g.tick();
    let world_agent = g
        .random
        .as_ref()
        .map(|w| w.agents.iter().find(|a| a.agent_id == agent).cloned());
    match world_agent {
        Some(None) => None,
        Some(Some(a)) => {
            let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let latest = match a.active_interactions.first() {
                Some(it) => Some(VonageLatest::new(
                    &format!("00000000-0000-4000-9000-{:0>12}", it.conn_id),
                    &now,
                    false,
                )),
                None => g.vonage.last.get(agent).map(|l| VonageLatest {
                    has_ended: true,
                    ..l.clone()
                }),
            };
            if let Some(l) = &latest {
                g.vonage.last.insert(agent.to_string(), l.clone());
            }
            Some(latest)
        }
        None => g
            .scenario
            .vonage
            .get(g.step)
            .and_then(|m| m.get(agent).cloned()),
    }
}

async fn latest(
    State(st): State<Arc<SimState>>,
    headers: HeaderMap,
    Path((_version, _account, agent)): Path<(String, String, String)>,
) -> Response {
    let _f = InFlight::enter(&st);
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    if !bearer.is_some_and(|b| st.lock().vonage.valid(&b)) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Authorization has been denied for this request."})),
        )
            .into_response();
    }
    if !headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
    {
        return (
            StatusCode::NOT_ACCEPTABLE,
            "Accept application/json;version=1",
        )
            .into_response();
    }
    let (fault, slow) = st.begin(Route::VonageLatest);
    let Some(found) = latest_for(&st, &agent) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "The requested resource was not found."})),
        )
            .into_response();
    };
    let body = json!({"interactions": found.map(|l| vec![json!({"start": l.start, "guid": l.guid, "hasEnded": l.has_ended})]).unwrap_or_default()});
    match fault {
        Some(Fault::Empty) => Json(json!({"interactions": []})).into_response(),
        Some(f) => fault_response(f, &body, slow)
            .await
            .unwrap_or_else(|| Json(body).into_response()),
        None => Json(body).into_response(),
    }
}

pub(crate) fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/vonage/Auth/connect/token", post(token))
        .route(
            "/vonage/{version}/{account}/agents/{agent}/latestInteractions",
            get(latest),
        )
}
