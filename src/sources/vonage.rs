//! Vonage Contact Center (seed 003): `GET v{n}/{accountKey}/agents/{agentId}/latestInteractions` with
//! `Accept: application/json;version=1`, for each configured agent, with an OAuth2 client-credentials
//! bearer token (cached, refreshed before expiry and once on 401, never logged).
//!
//! Limits: bounded concurrency and a per-account request rate (token bucket), paused by 429
//! `Retry-After`. A 404 for one agent is reported (metric + warning) and that agent keeps its previous
//! state; so does one with a 400 (a configuration error carrying the vendor's message, which fails
//! the poll when every agent gets it).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::Mutex;

use super::http::SourceHttp;
use super::SourceError;
use crate::config::VonageConfig;
use crate::diff::latest::{diff_latest, LatestInteraction, LatestSnapshot};
use crate::event::Event;
use crate::event::SourceMeta;
use crate::secret::Secret;
use crate::sources::{FeedName, SnapshotSource};

pub const VENDOR: &str = "vonage";
pub const ENDPOINT: &str = "agents/{agentId}/latestInteractions";
const TOKEN_ENDPOINT: &str = "oauth token";
/// The longest token lifetime believed (a vendor's `expires_in` is vendor data).
const MAX_TOKEN_LIFE_S: u64 = 24 * 3600;
const MAX_429_RETRIES: u32 = 3;

mod limits;
mod wire;
pub use limits::{account_limits, RateLimiter};
pub use wire::MAX_LISTED_PER_AGENT;
use wire::{LatestBody, TokenResponse};

struct CachedToken {
    token: Secret,
    refresh_at: Instant,
}

pub struct VonageSource {
    meta: SourceMeta,
    http: SourceHttp,
    base: String,
    token_url: String,
    client_id: String,
    client_secret: Secret,
    scope: Option<String>,
    agent_ids: Vec<String>,
    concurrency: usize,
    /// The longest one poll (every agent's request) may take.
    poll_timeout: Duration,
    /// The account's budget: shared by every source of this process on the same account.
    rate: Arc<RateLimiter>,
    token: Mutex<Option<CachedToken>>,
}

/// What one agent's request yielded.
enum AgentResult {
    /// The rows listed, in the vendor's order (the first is the latest), and when the vendor
    /// answered (UTC ms).
    Seen(Vec<LatestInteraction>, i64),
    NotFound,
}

impl VonageSource {
    pub fn new(cfg: &VonageConfig) -> anyhow::Result<Arc<Self>> {
        let (rate, limiter) = account_limits(
            &cfg.base_url,
            &cfg.account_key,
            cfg.requests_per_second,
            cfg.max_concurrent_requests,
        );
        Ok(Arc::new(VonageSource {
            meta: SourceMeta {
                name: cfg.name.clone(),
                vendor: VENDOR.into(),
            },
            http: SourceHttp::new(
                &cfg.name,
                cfg.request_timeout,
                limiter,
                cfg.max_response_bytes,
            )?,
            base: format!(
                "{}/v{}/{}",
                cfg.base_url.trim_end_matches('/'),
                cfg.api_version,
                cfg.account_key
            ),
            token_url: cfg.token_url.clone(),
            client_id: cfg.client_id.clone(),
            client_secret: cfg.client_secret.resolve()?,
            scope: cfg.scope.clone(),
            agent_ids: cfg.agent_ids.clone(),
            concurrency: cfg.max_concurrent_requests,
            poll_timeout: cfg.interactions.poll_timeout_for(cfg.request_timeout),
            rate,
            token: Mutex::new(None),
        }))
    }

    /// A valid bearer token, fetched when missing or about to expire.
    async fn bearer(&self) -> Result<Secret, SourceError> {
        let mut cached = self.token.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(c.token.clone());
        }
        let mut form = vec![("grant_type", "client_credentials".to_string())];
        if let Some(s) = &self.scope {
            form.push(("scope", s.clone()));
        }
        let req = self
            .http
            .client()
            .post(&self.token_url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .form(&form);
        let name = self.meta.name.clone();
        let resp: TokenResponse = self
            .http
            .fetch(TOKEN_ENDPOINT, req, move |r| {
                serde_json::from_reader(r).map_err(|e| SourceError::Parse {
                    source_name: name,
                    endpoint: TOKEN_ENDPOINT.into(),
                    field: "access_token".into(),
                    detail: e.to_string(),
                })
            })
            .await?;
        // Refresh a minute early (or at 80% of a short lifetime). The lifetime is the vendor's
        // number: at most a day is believed (a token is simply refreshed then).
        let said = resp.expires_in.unwrap_or(3600);
        if said > MAX_TOKEN_LIFE_S {
            tracing::warn!(
                expires_in_s = said,
                max_s = MAX_TOKEN_LIFE_S,
                "the token endpoint's expires_in is implausible; refreshing after a day instead"
            );
        }
        let life = Duration::from_secs(said.min(MAX_TOKEN_LIFE_S));
        let margin = Duration::from_secs(60).min(life / 5);
        let token = Secret::new(resp.access_token);
        let now = Instant::now();
        *cached = Some(CachedToken {
            token: token.clone(),
            refresh_at: now.checked_add(life - margin).unwrap_or(now),
        });
        metrics::counter!("ccdc_oauth_token_refreshes_total", "source" => self.meta.name.clone())
            .increment(1);
        tracing::debug!(expires_in_s = life.as_secs(), "obtained an access token");
        Ok(token)
    }

    /// Drop the cached token if it is still `failed` (another request may have refreshed it already).
    async fn invalidate(&self, failed: &Secret) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|c| &c.token == failed) {
            *cached = None;
        }
    }

    async fn latest(&self, agent: &str) -> Result<AgentResult, SourceError> {
        let url = format!("{}/agents/{agent}/latestInteractions", self.base);
        let (mut retried_401, mut retries_429) = (false, 0);
        loop {
            self.rate.acquire().await;
            let token = self.bearer().await?;
            let req = self
                .http
                .client()
                .get(&url)
                .bearer_auth(token.expose())
                .header("Accept", "application/json;version=1");
            let name = self.meta.name.clone();
            let res = self
                .http
                .fetch_answered(ENDPOINT, req, move |r| {
                    super::decode_json::<LatestBody>(&name, ENDPOINT, r)
                })
                .await;
            match res {
                Ok((body, answered)) => {
                    return wire::to_latest(body.interactions)
                        .map(|rows| AgentResult::Seen(rows, answered))
                        .map_err(|(i, detail)| SourceError::Parse {
                            source_name: self.meta.name.clone(),
                            endpoint: ENDPOINT.into(),
                            field: format!("agent {agent}: interactions[{i}].hasEnded"),
                            detail: detail.into(),
                        });
                }
                Err(SourceError::Http { status: 401, .. }) if !retried_401 => {
                    retried_401 = true;
                    self.invalidate(&token).await;
                }
                Err(SourceError::RateLimited { retry_after, .. })
                    if retries_429 < MAX_429_RETRIES =>
                {
                    retries_429 += 1;
                    // The vendor's whole wait (bounded by `MAX_RETRY_AFTER` when read): a poll
                    // that cannot wait so long times out, and the next one waits for the pause.
                    let wait = retry_after.unwrap_or(Duration::from_secs(1));
                    metrics::counter!("ccdc_rate_limited_total", "source" => self.meta.name.clone()).increment(1);
                    tracing::warn!(
                        agent,
                        wait_ms = wait.as_millis() as u64,
                        "rate limited (429); pausing the account's requests"
                    );
                    self.rate.pause(wait).await;
                }
                Err(SourceError::Http { status: 404, .. }) => return Ok(AgentResult::NotFound),
                Err(SourceError::Http {
                    status: 400,
                    detail,
                    source_name,
                    ..
                }) => {
                    let message = serde_json::from_str::<serde_json::Value>(&detail)
                        .ok()
                        .and_then(|v| {
                            v.get("message")
                                .and_then(|m| m.as_str())
                                .map(str::to_string)
                        })
                        .unwrap_or(detail);
                    return Err(SourceError::Config {
                        source_name,
                        endpoint: ENDPOINT.into(),
                        message: format!("agent {agent}: {message}"),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether `e`, met polling one agent, concerns that agent's answer alone (a server error, a
/// timeout, a body that does not decode, a 400 for its request): the agent keeps its previous
/// state for the poll and the others go on. Credentials, the account's rate limit and quota fail
/// the poll; so does a 400 for every agent (nothing answered).
fn agent_alone(e: &SourceError) -> bool {
    match e {
        SourceError::Http { status, .. } => *status >= 500,
        SourceError::Config { endpoint, .. } => endpoint == ENDPOINT,
        SourceError::Transport { .. }
        | SourceError::Parse { .. }
        | SourceError::TooLarge { .. }
        | SourceError::OverBound { .. } => true,
        _ => false,
    }
}

/// The interactions feed of one Vonage account.
pub struct VonageInteractions(pub Arc<VonageSource>);

#[async_trait]
impl SnapshotSource for VonageInteractions {
    type Snapshot = LatestSnapshot;
    fn name(&self) -> FeedName<'_> {
        FeedName {
            meta: &self.0.meta,
            endpoint: ENDPOINT,
            stream: "latest-interactions",
        }
    }
    async fn fetch(
        &self,
        observed_at: i64,
        previous: Option<&LatestSnapshot>,
    ) -> Result<LatestSnapshot, SourceError> {
        let src = &self.0;
        // The token first, once: a failing token endpoint fails the poll with one request, not
        // one per agent, and its 429 pauses the account like the API's own.
        if let Err(e) = src.bearer().await {
            if let SourceError::RateLimited { retry_after, .. } = &e {
                src.rate
                    .pause(retry_after.unwrap_or(Duration::from_secs(1)))
                    .await;
            }
            return Err(e);
        }
        let results: Vec<(String, Result<AgentResult, SourceError>)> =
            futures::stream::iter(src.agent_ids.iter().cloned())
                .map(|agent| async move {
                    let r = src.latest(&agent).await;
                    (agent, r)
                })
                .buffer_unordered(src.concurrency)
                .collect()
                .await;
        let (mut agents, mut listed, mut answers) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        let mut not_found = Vec::new();
        let (mut unanswered, mut answered) = (Vec::new(), 0usize);
        for (agent, r) in results {
            let failed = match r {
                Ok(AgentResult::Seen(rows, at)) => {
                    answered += 1;
                    // Not before the poll began (a clock step back).
                    answers.insert(agent.clone(), at.max(observed_at));
                    let mut rows = rows.into_iter();
                    agents.insert(agent.clone(), rows.next());
                    let rest: Vec<LatestInteraction> = rows.collect();
                    if !rest.is_empty() {
                        listed.insert(agent, rest);
                    }
                    continue;
                }
                Ok(AgentResult::NotFound) => {
                    answered += 1;
                    None
                }
                Err(e) if agent_alone(&e) => Some(e),
                Err(e) => return Err(e),
            };
            // Unknown is not "no interaction": keep what we knew, emit nothing for it.
            if let Some(prev) = previous.and_then(|p| p.agents.get(&agent)) {
                agents.insert(agent.clone(), prev.clone());
            }
            match failed {
                None => not_found.push(agent),
                Some(e) => unanswered.push((agent, e)),
            }
        }
        if answered == 0 && !unanswered.is_empty() {
            // Nothing answered at all: the account, not an agent, is failing.
            return Err(unanswered.swap_remove(0).1);
        }
        if !unanswered.is_empty() {
            metrics::counter!("ccdc_agents_unanswered_total", "source" => src.meta.name.clone())
                .increment(unanswered.len() as u64);
            for (agent, e) in &unanswered {
                tracing::warn!(agent = %agent, error = %e, "no answer for this agent: it keeps its previous state this poll, the others go on");
            }
        }
        let unobserved = not_found.iter().chain(unanswered.iter().map(|(a, _)| a));
        let unobserved: std::collections::BTreeSet<String> = unobserved.cloned().collect();
        if !not_found.is_empty() {
            metrics::counter!("ccdc_agents_not_found_total", "source" => src.meta.name.clone())
                .increment(not_found.len() as u64);
            tracing::warn!(agents = ?not_found, "the vendor does not know these agents (HTTP 404); check agent_ids");
        }
        let mut snap = LatestSnapshot {
            observed_at,
            not_found: unobserved,
            agents,
            listed,
            answered: answers,
            hidden: BTreeMap::new(),
            unobserved_since: BTreeMap::new(),
        };
        snap.settle(previous);
        Ok(snap)
    }
    fn poll_timeout(&self) -> Option<Duration> {
        Some(self.0.poll_timeout)
    }
    fn diff(&self, previous: Option<&LatestSnapshot>, current: &LatestSnapshot) -> Vec<Event> {
        diff_latest(&self.0.meta, previous, current)
    }
    fn size(&self, s: &LatestSnapshot) -> usize {
        s.agents.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rate_limiter_spaces_calls_and_429_pauses_everyone() {
        let r = RateLimiter::new(4.0);
        let t0 = tokio::time::Instant::now();
        for _ in 0..5 {
            r.acquire().await;
        }
        assert_eq!(
            t0.elapsed(),
            Duration::from_millis(1000),
            "5 calls at 4/s: the 5th waits 1 s"
        );
        r.pause(Duration::from_secs(3)).await;
        let t1 = tokio::time::Instant::now();
        r.acquire().await;
        assert!(
            t1.elapsed() >= Duration::from_secs(3) - Duration::from_millis(10),
            "{:?}",
            t1.elapsed()
        );
    }
}
