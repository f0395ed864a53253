//! Source configuration: one struct per vendor, tagged by `vendor = "..."` in each `[[sources]]`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{invalid, limits, ConfigError, PollConfig, ReportConfig};
use crate::secret::SecretRef;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "vendor", rename_all = "lowercase")]
pub enum SourceConfig {
    Wolkvox(WolkvoxConfig),
    Comm100(Comm100Config),
    Vonage(VonageConfig),
}

impl SourceConfig {
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::Wolkvox(c) => &c.name,
            SourceConfig::Comm100(c) => &c.name,
            SourceConfig::Vonage(c) => &c.name,
        }
    }

    pub(crate) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        validate_name(at, self.name())?;
        match self {
            SourceConfig::Wolkvox(c) => c.validate(at),
            SourceConfig::Comm100(c) => c.validate(at),
            SourceConfig::Vonage(c) => c.validate(at),
        }
    }
}

fn validate_name(at: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            format!("{at}.name"),
            "1-100 characters of [A-Za-z0-9._-]",
        ))
    }
}

/// A vendor URL: https, or http only when explicitly allowed (a local simulator).
fn validate_url(key: &str, url: &str, allow_insecure_http: bool) -> Result<(), ConfigError> {
    let u = reqwest::Url::parse(url).map_err(|e| invalid(key, format!("not a URL: {e}")))?;
    match u.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http => Ok(()),
        "http" => Err(invalid(
            key,
            "plain http is refused (credentials would travel in clear); set allow_insecure_http = true only for a local simulator",
        )),
        other => Err(invalid(key, format!("unsupported scheme `{other}`"))),
    }
}

/// Whether two absolute URLs share scheme, host and port (unparsable: no).
pub fn same_origin(a: &str, b: &str) -> bool {
    match (reqwest::Url::parse(a), reqwest::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin().is_tuple() && a.origin() == b.origin(),
        _ => false,
    }
}

fn origin_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

fn validate_tz(key: &str, tz: &str) -> Result<chrono_tz::Tz, ConfigError> {
    tz.parse::<chrono_tz::Tz>().map_err(|_| {
        invalid(
            key,
            format!("`{tz}` is not an IANA time zone (e.g. America/Bogota)"),
        )
    })
}

fn validate_http_limits(
    at: &str,
    timeout: Duration,
    max_timeout: Duration,
    max_bytes: u64,
    max_bytes_limit: u64,
) -> Result<(), ConfigError> {
    if timeout.is_zero() || timeout > max_timeout {
        return Err(invalid(
            format!("{at}.request_timeout"),
            format!(
                "must be > 0 and at most {}",
                humantime::format_duration(max_timeout)
            ),
        ));
    }
    if max_bytes == 0 || max_bytes > max_bytes_limit {
        return Err(invalid(
            format!("{at}.max_response_bytes"),
            format!("must be > 0 and at most {max_bytes_limit}"),
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WolkvoxConfig {
    /// Unique name of this source; part of every event, key and event id.
    pub name: String,
    /// e.g. `https://wv0123.wolkvox.com/api/v2`
    pub base_url: String,
    pub token: SecretRef,
    /// IANA zone of the operation (Wolkvox dates are local and carry no offset).
    pub time_zone: String,
    /// Simultaneous requests with this token (vendor maximum 2), shared by every feed and source.
    #[serde(default = "one")]
    pub max_concurrent_requests: usize,
    #[serde(default = "wolkvox_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    #[serde(default = "wolkvox_max_bytes")]
    pub max_response_bytes: u64,
    /// Plain `http://` is refused unless this is set (the simulator needs it).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// `real_time.php?api=interactions`
    #[serde(default)]
    pub interactions: PollConfig,
    /// `real_time.php?api=agents`
    #[serde(default)]
    pub agents: PollConfig,
    /// Report pulls (`reports_manager.php`), one block per report.
    #[serde(default)]
    pub reports: Vec<ReportConfig>,
    /// Calls allowed per day with this token (licenses × 1000). Every call is counted (persisted per
    /// day); past the limit calls wait for the next day. Unset: counted, not limited.
    pub daily_call_limit: Option<u64>,
    /// `agent-state` records from the `agents` feed, joined with the `interactions` feed.
    #[serde(default)]
    pub agent_state: super::AgentStateConfig,
}

fn one() -> usize {
    1
}
fn wolkvox_timeout() -> Duration {
    limits::WOLKVOX_MAX_CALL_TIME
}
fn wolkvox_max_bytes() -> u64 {
    limits::WOLKVOX_MAX_RESPONSE_BYTES
}

impl WolkvoxConfig {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        validate_url(
            &format!("{at}.base_url"),
            &self.base_url,
            self.allow_insecure_http,
        )?;
        self.token
            .resolve()
            .map_err(|e| invalid(format!("{at}.token"), e.to_string()))?;
        validate_tz(&format!("{at}.time_zone"), &self.time_zone)?;
        if self.max_concurrent_requests == 0
            || self.max_concurrent_requests > limits::WOLKVOX_MAX_CONCURRENT_PER_TOKEN
        {
            return Err(invalid(
                format!("{at}.max_concurrent_requests"),
                format!(
                    "must be 1..={} (Wolkvox allows 2 simultaneous requests per token)",
                    limits::WOLKVOX_MAX_CONCURRENT_PER_TOKEN
                ),
            ));
        }
        validate_http_limits(
            at,
            self.request_timeout,
            limits::WOLKVOX_MAX_CALL_TIME,
            self.max_response_bytes,
            limits::WOLKVOX_MAX_RESPONSE_BYTES,
        )?;
        self.interactions.validate(&format!("{at}.interactions"))?;
        self.agents.validate(&format!("{at}.agents"))?;
        self.agent_state.validate(at, true)?;
        if self.daily_call_limit == Some(0) {
            return Err(invalid(
                format!("{at}.daily_call_limit"),
                "must be at least 1",
            ));
        }
        for (i, r) in self.reports.iter().enumerate() {
            r.validate(&format!("{at}.reports[{i}]"))?;
            if self.reports[..i].iter().any(|o| o.report == r.report) {
                return Err(invalid(
                    format!("{at}.reports[{i}].report"),
                    format!("`{}` is configured twice", r.report),
                ));
            }
        }
        Ok(())
    }

    pub fn tz(&self) -> Result<chrono_tz::Tz, ConfigError> {
        self.time_zone.parse::<chrono_tz::Tz>().map_err(|_| {
            invalid(
                "time_zone",
                format!("`{}` is not an IANA time zone", self.time_zone),
            )
        })
    }
}

/// Comm100 Live Chat real-time API (seed 004).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comm100Config {
    pub name: String,
    /// e.g. `https://api11.comm100.io/v4`
    pub base_url: String,
    /// Bearer access token.
    pub token: SecretRef,
    /// Sent as `siteId` on every call when set.
    pub site_id: Option<String>,
    /// Zone of the site: `Today` is asked from local midnight.
    #[serde(default = "utc")]
    pub time_zone: String,
    /// Sent as `pageSize` to `Agents` when set (the vendor's default otherwise).
    pub page_size: Option<u32>,
    /// The most `Agents` pages read in one poll (the vendor's `pageCount` is vendor data: a
    /// larger one is clamped, with a warning, and agents beyond are not judged that poll).
    #[serde(default = "comm100_max_pages")]
    pub max_pages: u32,
    /// Status id → name, e.g. `{ "00000000-0000-0000-0000-000000000002" = "Away" }`.
    #[serde(default)]
    pub status_names: BTreeMap<String, String>,
    /// Optional URL of the site's agent away-status list (`[{id, name, ...}]`), fetched at start and
    /// every `status_names_refresh`; static `status_names` win over fetched ones.
    pub away_statuses_url: Option<String>,
    #[serde(default = "hour", with = "humantime_serde")]
    pub status_names_refresh: Duration,
    #[serde(default = "one")]
    pub max_concurrent_requests: usize,
    #[serde(default = "comm100_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    #[serde(default = "small_max_bytes")]
    pub max_response_bytes: u64,
    #[serde(default)]
    pub allow_insecure_http: bool,
    #[serde(default = "minute_poll")]
    pub agents: PollConfig,
    #[serde(default = "minute_poll")]
    pub queue: PollConfig,
    #[serde(default = "minute_poll")]
    pub today: PollConfig,
    #[serde(default = "minute_poll")]
    pub right_now: PollConfig,
    /// `agent-state` records from the `agents` feed.
    #[serde(default)]
    pub agent_state: super::AgentStateConfig,
}

fn utc() -> String {
    "UTC".into()
}
fn hour() -> Duration {
    Duration::from_secs(3600)
}
fn comm100_timeout() -> Duration {
    Duration::from_secs(30)
}
fn small_max_bytes() -> u64 {
    64 * 1024 * 1024
}
fn comm100_max_pages() -> u32 {
    100
}
fn minute_poll() -> PollConfig {
    PollConfig::every(Duration::from_secs(60))
}

impl Comm100Config {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        validate_url(
            &format!("{at}.base_url"),
            &self.base_url,
            self.allow_insecure_http,
        )?;
        if let Some(u) = &self.away_statuses_url {
            let key = format!("{at}.away_statuses_url");
            validate_url(&key, u, self.allow_insecure_http)?;
            if !same_origin(u, &self.base_url) {
                return Err(invalid(
                    key,
                    format!(
                        "must be on the origin of base_url ({}): the bearer token is sent to it",
                        origin_of(&self.base_url)
                    ),
                ));
            }
        }
        self.token
            .resolve()
            .map_err(|e| invalid(format!("{at}.token"), e.to_string()))?;
        validate_tz(&format!("{at}.time_zone"), &self.time_zone)?;
        if self.max_concurrent_requests == 0 || self.max_concurrent_requests > 8 {
            return Err(invalid(
                format!("{at}.max_concurrent_requests"),
                "must be 1..=8",
            ));
        }
        if self.page_size == Some(0) {
            return Err(invalid(format!("{at}.page_size"), "must be at least 1"));
        }
        if !(1..=10_000).contains(&self.max_pages) {
            return Err(invalid(format!("{at}.max_pages"), "must be 1..=10000"));
        }
        validate_http_limits(
            at,
            self.request_timeout,
            Duration::from_secs(300),
            self.max_response_bytes,
            limits::WOLKVOX_MAX_RESPONSE_BYTES,
        )?;
        for (k, p) in [
            ("agents", &self.agents),
            ("queue", &self.queue),
            ("today", &self.today),
            ("right_now", &self.right_now),
        ] {
            p.validate(&format!("{at}.{k}"))?;
        }
        self.agent_state.validate(at, true)?;
        Ok(())
    }
}

/// Which Vonage account a source polls: its host (as configured, without a trailing `/`, in
/// lower case) and its account key. Sources of one account share its limits.
pub fn vonage_account_id(base_url: &str, account_key: &str) -> String {
    format!(
        "{} {}",
        base_url.trim_end_matches('/').to_ascii_lowercase(),
        account_key
    )
}

/// Vonage Contact Center `latestInteractions` (seed 003), OAuth2 client credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VonageConfig {
    pub name: String,
    /// e.g. `https://emea.newvoicemedia.com`; calls go to `{base_url}/v{api_version}/{account_key}/...`
    pub base_url: String,
    #[serde(default)]
    pub api_version: u32,
    pub account_key: String,
    /// e.g. `https://emea.newvoicemedia.com/Auth/connect/token`
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretRef,
    pub scope: Option<String>,
    /// The agents whose latest interaction is polled.
    pub agent_ids: Vec<String>,
    /// Requests in flight at once for this account.
    #[serde(default = "four")]
    pub max_concurrent_requests: usize,
    /// Fair-use budget for this account, shared by every call (conservative by default).
    #[serde(default = "two")]
    pub requests_per_second: f64,
    #[serde(default = "comm100_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    #[serde(default = "tiny_max_bytes")]
    pub max_response_bytes: u64,
    #[serde(default)]
    pub allow_insecure_http: bool,
    #[serde(default = "minute_poll")]
    pub interactions: PollConfig,
    /// `agent-state` records from the `interactions` feed (each agent's latest interaction; Vonage
    /// reports no agent status).
    #[serde(default)]
    pub agent_state: super::AgentStateConfig,
}

fn four() -> usize {
    4
}
fn two() -> f64 {
    2.0
}
fn tiny_max_bytes() -> u64 {
    1024 * 1024
}

impl VonageConfig {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        validate_url(
            &format!("{at}.base_url"),
            &self.base_url,
            self.allow_insecure_http,
        )?;
        validate_url(
            &format!("{at}.token_url"),
            &self.token_url,
            self.allow_insecure_http,
        )?;
        self.client_secret
            .resolve()
            .map_err(|e| invalid(format!("{at}.client_secret"), e.to_string()))?;
        let path_safe = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !path_safe(&self.account_key) {
            return Err(invalid(
                format!("{at}.account_key"),
                "must be non-empty [A-Za-z0-9._-]",
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(invalid(format!("{at}.client_id"), "must not be empty"));
        }
        if self.agent_ids.is_empty() {
            return Err(invalid(
                format!("{at}.agent_ids"),
                "list at least one agent id",
            ));
        }
        if let Some(bad) = self.agent_ids.iter().find(|a| !path_safe(a)) {
            return Err(invalid(
                format!("{at}.agent_ids"),
                format!("`{bad}` is not a valid agent id ([A-Za-z0-9._-])"),
            ));
        }
        if self.max_concurrent_requests == 0 || self.max_concurrent_requests > 32 {
            return Err(invalid(
                format!("{at}.max_concurrent_requests"),
                "must be 1..=32",
            ));
        }
        if !(self.requests_per_second > 0.0 && self.requests_per_second <= 100.0) {
            return Err(invalid(
                format!("{at}.requests_per_second"),
                "must be > 0 and at most 100",
            ));
        }
        validate_http_limits(
            at,
            self.request_timeout,
            Duration::from_secs(300),
            self.max_response_bytes,
            64 * 1024 * 1024,
        )?;
        self.agent_state.validate(at, false)?;
        self.interactions.validate(&format!("{at}.interactions"))
    }
}
