//! Comm100 Live Chat real-time API (seed 004): `Agents` (paged) → agent-status events; `Queue`,
//! `Today`, `RightNow` → one metrics record per poll (per department for `Queue`).
//!
//! Paging: every page of one poll is fetched (`pageIndex` from 1 to `pageCount`); any failed page
//! fails the whole poll. The list can shift between pages (an agent logs out on page 1, and one
//! listed on page 2 slides onto page 1 after it was read): agents are deduplicated by `agentId`,
//! and no count can prove that a paged poll saw everyone, so an agent missing from a poll of
//! several pages is believed gone only when the next poll misses it too
//! ([`crate::diff::agents::Listing::Paged`]). A real logout is then reported one interval late,
//! with its time bounded by the last poll that listed the agent and the first that did not.
//!
//! Every agent of every page, and every `Queue` row and visitor, is counted against the poll's
//! decoding bound as it is read ([`crate::sources::bound`]): a poll whose pages add up to more than
//! `max_rows_per_poll` agents fails whole.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::bound::{self, decode_bounded, map_entry_bytes, text_len, PollBound, Rows, Tally};
use super::http::{token_limiter, SourceHttp};
use super::{decode_json, SourceError};
use crate::config::{Comm100Config, PollConfig};
use crate::diff::agents::{diff_agents, AgentSnapshot, AgentState, Listing};
use crate::event::SourceMeta;
use crate::event::{Comm100AgentDetails, Event};
use crate::secret::Secret;
use crate::sources::{FeedName, SnapshotSource};
use crate::vendor_time::parse_duration_ms;

pub const VENDOR: &str = "comm100";
pub const AGENTS_ENDPOINT: &str = "livechat/realTime/Agents";

pub struct Comm100Client {
    meta: SourceMeta,
    http: SourceHttp,
    base_url: String,
    token: Secret,
    site_id: Option<String>,
    tz: chrono_tz::Tz,
    page_size: Option<u32>,
    max_pages: u32,
    static_names: BTreeMap<String, String>,
    away_statuses_url: Option<String>,
    refresh: Duration,
    fetched_names: Mutex<(Option<Instant>, BTreeMap<String, String>)>,
    /// How much one poll of each endpoint may decode, and how long it may take.
    agents_limits: (PollBound, Duration),
    queue_limits: (PollBound, Duration),
    today_limits: (PollBound, Duration),
    right_now_limits: (PollBound, Duration),
}

impl Comm100Client {
    pub fn new(cfg: &Comm100Config) -> anyhow::Result<Arc<Self>> {
        // The bearer token goes to the away-status list too: never to another origin.
        if let Some(u) = &cfg.away_statuses_url {
            anyhow::ensure!(
                crate::config::same_origin(u, &cfg.base_url),
                "source {}: away_statuses_url must be on the origin of base_url (the bearer token is sent to it)",
                cfg.name
            );
        }
        let token = cfg.token.resolve()?;
        let limiter = token_limiter(&token, cfg.max_concurrent_requests);
        let limits = |poll: &PollConfig| {
            (
                PollBound::new(poll.max_rows_per_poll, cfg.max_response_bytes),
                poll.poll_timeout_for(cfg.request_timeout),
            )
        };
        Ok(Arc::new(Comm100Client {
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
            base_url: cfg.base_url.trim_end_matches('/').to_string(),
            token,
            site_id: cfg.site_id.clone(),
            tz: cfg
                .time_zone
                .parse()
                .map_err(|_| anyhow::anyhow!("bad time zone {}", cfg.time_zone))?,
            page_size: cfg.page_size,
            max_pages: cfg.max_pages,
            static_names: cfg.status_names.clone(),
            away_statuses_url: cfg.away_statuses_url.clone(),
            refresh: cfg.status_names_refresh,
            fetched_names: Mutex::new((None, BTreeMap::new())),
            agents_limits: limits(&cfg.agents),
            queue_limits: limits(&cfg.queue),
            today_limits: limits(&cfg.today),
            right_now_limits: limits(&cfg.right_now),
        }))
    }

    /// GET `url` with the bearer token (and `siteId` when set).
    fn request(&self, url: String, query: Vec<(&'static str, String)>) -> reqwest::RequestBuilder {
        let mut q = query;
        if let Some(site) = &self.site_id {
            q.push(("siteId", site.clone()));
        }
        self.http
            .client()
            .get(url)
            .query(&q)
            .bearer_auth(self.token.expose())
            .header("Accept", "application/json")
    }

    /// GET `url`; decode JSON of type `T`, naming the path of any problem.
    async fn get<T: DeserializeOwned + Send + 'static>(
        &self,
        endpoint: &'static str,
        url: String,
        query: Vec<(&'static str, String)>,
    ) -> Result<T, SourceError> {
        let req = self.request(url, query);
        let name = self.meta.name.clone();
        self.http
            .fetch(endpoint, req, move |r| decode_json(&name, endpoint, r))
            .await
    }

    /// [`Comm100Client::get`], every [`Rows`] list in `T` counted in `tally` (carried on from the
    /// poll's earlier requests); and when the vendor answered (UTC ms).
    async fn get_bounded<T: DeserializeOwned + Send + 'static>(
        &self,
        endpoint: &'static str,
        url: String,
        query: Vec<(&'static str, String)>,
        tally: Tally,
    ) -> Result<((T, Tally), i64), SourceError> {
        let req = self.request(url, query);
        let name = self.meta.name.clone();
        self.http
            .fetch_answered(endpoint, req, move |r| {
                decode_bounded(&name, endpoint, r, tally)
            })
            .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base_url)
    }

    /// The status-name mapping: static names over names fetched from the away-status list.
    async fn status_names(&self) -> BTreeMap<String, String> {
        let stale = {
            let g = self.fetched_names.lock().unwrap_or_else(|p| p.into_inner());
            g.0.is_none_or(|t| t.elapsed() >= self.refresh)
        };
        if let (true, Some(url)) = (stale, self.away_statuses_url.clone()) {
            #[derive(Deserialize)]
            struct Away {
                id: String,
                name: String,
            }
            match self
                .get::<Vec<Away>>("agentAwayStatuses", url, vec![])
                .await
            {
                Ok(list) => {
                    let mut g = self.fetched_names.lock().unwrap_or_else(|p| p.into_inner());
                    *g = (
                        Some(Instant::now()),
                        list.into_iter().map(|a| (a.id, a.name)).collect(),
                    );
                }
                Err(e) => {
                    metrics::counter!("ccdc_status_names_refresh_failures_total", "source" => self.meta.name.clone()).increment(1);
                    tracing::warn!(error = %e, "cannot refresh the away-status names; keeping the previous ones");
                }
            }
        }
        let mut names = self
            .fetched_names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone();
        names.extend(self.static_names.clone());
        names
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentsPage {
    /// Counts as any number (`7`, `7.0`, `1e20`, saturating); `null`, absent or unreadable: not
    /// said (then the page cannot show the list is whole).
    #[serde(default, deserialize_with = "wire::opt_count")]
    total: Option<u64>,
    #[serde(default, deserialize_with = "wire::opt_count")]
    page_count: Option<u64>,
    /// `null` or absent: no rows.
    #[serde(default)]
    list: Option<Rows<AgentRow>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentRow {
    /// `None` (null, absent): the row cannot be told apart from any agent's; it is left out, and
    /// the poll judges no one absent.
    #[serde(default)]
    agent_id: Option<String>,
    display_name: Option<String>,
    current_status_id: Option<String>,
    // Integers that may arrive as `1.0`, as the metrics' do (seed 004).
    #[serde(default)]
    ongoing_chats: wire::Counter,
    #[serde(default)]
    max_concurrent_chats: wire::Counter,
    #[serde(default)]
    intraday_chats: wire::Counter,
    intraday_linear_chat_time: Option<String>,
}

impl bound::DecodedSize for AgentRow {
    /// Its entry in the poll's map of rows, then in the snapshot, with their strings.
    fn decoded_bytes(&self) -> usize {
        let text = text_len(&self.agent_id)
            + text_len(&self.display_name)
            + text_len(&self.current_status_id)
            + text_len(&self.intraday_linear_chat_time);
        map_entry_bytes::<String, AgentRow>() + map_entry_bytes::<String, AgentState>() + 3 * text
    }
}

/// Every page of one poll of `Agents`, the agents deduplicated by id (the first row wins).
#[derive(Default)]
struct Pages {
    /// Each agent's row, and when the vendor answered the page it was on (UTC ms).
    rows: BTreeMap<String, (AgentRow, i64)>,
    /// When the vendor answered the last page.
    answered: i64,
    pages: u32,
    /// The largest `total` a page said (`None`: none said it).
    total: Option<u64>,
    /// Pages disagreed on `total` or `pageCount`: the list changed while it was read.
    disagreed: bool,
    duplicates: usize,
    /// Rows without an `agentId`.
    anonymous: usize,
    /// The vendor said there were more pages than `max_pages`: the rest were not read.
    clamped: bool,
}

impl Pages {
    /// Whether the pages may have missed a listed agent: the vendor said more pages than were
    /// read, a row had no id, or the list moved while it was read (an agent on two pages, fewer
    /// agents than `total` or no `total` at all, pages that disagree). An agent missing from such
    /// a poll proves nothing: the poll is [`Listing::Partial`].
    fn incomplete(&self) -> bool {
        self.clamped || self.anonymous > 0 || self.moved() || self.total.is_none()
    }

    /// Whether the list moved while its pages were read: an agent on two pages, fewer agents
    /// than `total`, pages that disagree.
    fn moved(&self) -> bool {
        self.duplicates > 0
            || self.disagreed
            || self.total.is_some_and(|t| (self.rows.len() as u64) < t)
    }
}

impl Comm100Client {
    /// Read `Agents` page by page (`pageIndex` 1..`pageCount`, the largest any page says, at
    /// most `max_pages`); any failed page fails the whole poll, and so do more rows than the
    /// poll's bound, over all pages.
    async fn agent_pages(&self) -> Result<Pages, SourceError> {
        let mut tally = self.agents_limits.0.tally();
        let mut out = Pages::default();
        let (mut page_count, mut said) = (1u32, None::<(Option<u64>, Option<u64>)>);
        while out.pages < page_count {
            let page = out.pages + 1;
            let mut q = vec![("pageIndex", page.to_string())];
            if let Some(size) = self.page_size {
                q.push(("pageSize", size.to_string()));
            }
            let ((p, counted), answered): ((AgentsPage, Tally), i64) = self
                .get_bounded(AGENTS_ENDPOINT, self.url(AGENTS_ENDPOINT), q, tally)
                .await?;
            tally = counted;
            out.answered = out.answered.max(answered);
            match said {
                None => said = Some((p.total, p.page_count)),
                Some(first) => out.disagreed |= first != (p.total, p.page_count),
            }
            out.total = out.total.max(p.total);
            let claimed = p.page_count.unwrap_or(1);
            let max = u64::from(self.max_pages);
            page_count = page_count.max(u32::try_from(claimed.min(max)).unwrap_or(self.max_pages));
            if claimed > max && !out.clamped {
                out.clamped = true;
                metrics::counter!("ccdc_vendor_values_clamped_total", "source" => self.meta.name.clone(), "field" => "pageCount").increment(1);
                tracing::warn!(
                    endpoint = AGENTS_ENDPOINT,
                    page_count = claimed,
                    max_pages = self.max_pages,
                    "the vendor's pageCount is over max_pages: reading max_pages pages; agents beyond them are not judged this poll"
                );
            }
            for row in p.list.unwrap_or_default().0 {
                match &row.agent_id {
                    None => out.anonymous += 1,
                    Some(id) if out.rows.contains_key(id) => out.duplicates += 1,
                    Some(id) => {
                        out.rows.insert(id.clone(), (row, answered));
                    }
                }
            }
            out.pages = page;
        }
        Ok(out)
    }
}

/// The agent-status feed of one Comm100 site.
pub struct Comm100Agents(pub Arc<Comm100Client>);

#[async_trait]
impl SnapshotSource for Comm100Agents {
    type Snapshot = AgentSnapshot;
    fn name(&self) -> FeedName<'_> {
        FeedName {
            meta: &self.0.meta,
            endpoint: AGENTS_ENDPOINT,
            stream: "agents",
        }
    }
    async fn fetch(
        &self,
        observed_at: i64,
        previous: Option<&AgentSnapshot>,
    ) -> Result<AgentSnapshot, SourceError> {
        let c = &self.0;
        let names = c.status_names().await;
        let pages = c.agent_pages().await?;
        let listing = match (pages.incomplete(), pages.pages > 1) {
            (true, _) => Listing::Partial,
            (false, true) => Listing::Paged,
            (false, false) => Listing::Whole,
        };
        if pages.moved() {
            metrics::counter!("ccdc_list_shifts_total", "source" => c.meta.name.clone(), "endpoint" => AGENTS_ENDPOINT).increment(1);
            tracing::warn!(
                duplicates = pages.duplicates,
                seen = pages.rows.len(),
                total = pages.total,
                "the agent list moved while its pages were read; no agent missing from this poll is judged absent"
            );
        }
        unreadable_values(
            &c.meta.name,
            AGENTS_ENDPOINT,
            "agentId",
            pages.anonymous,
            "agent rows without an agentId left out; no agent missing from this poll is judged absent",
        );
        // The poll is complete when its last page is answered; each agent was seen when its own
        // page was (both not before the poll began: a clock step back).
        let mut snap = AgentSnapshot {
            observed_at: pages.answered.max(observed_at),
            agents: BTreeMap::new(),
        };
        let (mut unknown, mut unreadable) = (Vec::new(), 0usize);
        for (id, (r, seen)) in pages.rows {
            let [ongoing_chats, max_concurrent_chats, intraday_chats] =
                [r.ongoing_chats, r.max_concurrent_chats, r.intraday_chats].map(|c| {
                    let (v, bad) = c.read();
                    unreadable += usize::from(bad);
                    v
                });
            let status = match r.current_status_id.as_deref().map(str::trim) {
                Some(s) if !s.is_empty() => s.to_string(),
                _ => {
                    unknown.push(id);
                    continue;
                }
            };
            snap.agents.insert(
                id,
                AgentState {
                    name: r.display_name.clone(),
                    status_name: names.get(&status).cloned(),
                    status,
                    comm100: Some(Comm100AgentDetails {
                        display_name: r.display_name,
                        ongoing_chats,
                        max_concurrent_chats,
                        intraday_chats,
                        intraday_linear_chat_time_ms: r
                            .intraday_linear_chat_time
                            .as_deref()
                            .and_then(parse_duration_ms),
                        intraday_linear_chat_time_raw: r.intraday_linear_chat_time,
                    }),
                    seen_hint: Some(seen.max(observed_at)),
                    ..AgentState::default()
                },
            );
        }
        unreadable_values(
            &c.meta.name,
            AGENTS_ENDPOINT,
            "agent_counters",
            unreadable,
            "agent counters (ongoingChats, maxConcurrentChats, intradayChats) that are not integers are published as null",
        );
        if !unknown.is_empty() {
            metrics::counter!("ccdc_field_parse_failures_total", "source" => c.meta.name.clone(), "field" => "currentStatusId").increment(unknown.len() as u64);
            tracing::warn!(
                endpoint = AGENTS_ENDPOINT,
                agents = ?unknown.iter().take(20).collect::<Vec<_>>(),
                count = unknown.len(),
                "agents listed without a currentStatusId keep their previous state this poll"
            );
        }
        // Several pages are several moments: an agent missing from them may have slid between
        // pages; it is believed gone only when the next poll misses it too.
        snap.settle_keeping_unknown(unknown, previous, listing);
        Ok(snap)
    }
    fn poll_timeout(&self) -> Option<Duration> {
        Some(self.0.agents_limits.1)
    }
    fn diff(&self, previous: Option<&AgentSnapshot>, current: &AgentSnapshot) -> Vec<Event> {
        diff_agents(&self.0.meta, previous, current)
    }
    fn size(&self, s: &AgentSnapshot) -> usize {
        s.present()
    }
}

/// Count `n` vendor values of `field` that could not be read (`ccdc_field_parse_failures_total`)
/// and say in one warning what was done with them; nothing when `n` is 0.
fn unreadable_values(source: &str, endpoint: &str, field: &'static str, n: usize, done: &str) {
    if n == 0 {
        return;
    }
    metrics::counter!("ccdc_field_parse_failures_total", "source" => source.to_string(), "field" => field).increment(n as u64);
    tracing::warn!(endpoint, field, values = n, "{done}");
}

mod metric_feeds;
mod wire;
pub use metric_feeds::{Comm100Metrics, MetricsEndpoint, MetricsSnapshot};
