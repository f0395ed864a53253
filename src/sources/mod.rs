//! Vendor sources: the [`SnapshotSource`] boundary and its [`SourceError`], one module per vendor
//! (each turns its wire types into the domain types of [`crate::event`] and [`crate::diff`]),
//! shared HTTP concerns in [`http`], and [`scripted::Scripted`], the in-memory source that tests
//! give a pipeline.

pub mod agent_state;
pub mod bound;
pub mod comm100;
pub mod http;
pub mod scripted;
pub mod vonage;
pub mod wolkvox;

use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::event::{Event, SourceMeta};
use crate::store::{decode_state, encode_state, Store, StoreError, Write};

/// What names one polled endpoint of a source.
#[derive(Debug, Clone, Copy)]
pub struct FeedName<'a> {
    pub meta: &'a SourceMeta,
    /// The endpoint label for logs and metrics (e.g. `real_time.php?api=interactions`).
    pub endpoint: &'a str,
    /// The stream the feed's state is stored under (`interactions`, `agents`, ...).
    pub stream: &'a str,
}

/// One endpoint that yields complete snapshots, and the pure diff between two of them.
#[async_trait]
pub trait SnapshotSource: Send + Sync + 'static {
    type Snapshot: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// Which source, endpoint and stream this is.
    fn name(&self) -> FeedName<'_>;
    /// Fetch one complete snapshot, or fail as a whole. `previous` lets a source carry over what it
    /// could not observe this time (e.g. an agent the vendor answered 404 for).
    async fn fetch(
        &self,
        observed_at: i64,
        previous: Option<&Self::Snapshot>,
    ) -> Result<Self::Snapshot, SourceError>;
    /// The longest one [`SnapshotSource::fetch`] may take, all its requests included; past it the
    /// poll is abandoned as failed ([`SourceError::PollTimeout`]). `None`: no bound of its own.
    fn poll_timeout(&self) -> Option<Duration> {
        None
    }
    /// The events that lead from `previous` to `current` (no IO).
    fn diff(&self, previous: Option<&Self::Snapshot>, current: &Self::Snapshot) -> Vec<Event>;
    /// Entities in a snapshot (for logs, metrics and the empty-snapshot guard).
    fn size(&self, snapshot: &Self::Snapshot) -> usize;
    /// The writes that store `current` under `key`, given what is stored now (`None`: nothing in
    /// this source's layout). By default the whole snapshot is one value; a source with large
    /// snapshots stores it in parts and writes only the parts that changed ([`crate::store::buckets`]).
    fn state_writes(
        &self,
        key: &str,
        stored: Option<&Self::Snapshot>,
        current: &Self::Snapshot,
    ) -> Vec<Write> {
        let _ = stored;
        vec![Write::Put(key.to_string(), encode_state(current))]
    }
    /// `snapshot` is durable: its commit succeeded, or it was restored at start-up. What the source
    /// shares with other feeds follows it (the interactions a Wolkvox agent-state join reads,
    /// [`agent_state::PublishInteractions`]). By default nothing.
    fn committed(&self, snapshot: &Self::Snapshot) {
        let _ = snapshot;
    }
    /// The snapshot stored under `key`, and whether it is in this source's current layout.
    fn load_state(
        &self,
        store: &dyn Store,
        key: &str,
    ) -> Result<Option<(Self::Snapshot, bool)>, StoreError> {
        match store.get(key)? {
            None => Ok(None),
            Some(bytes) => Ok(Some((decode_state(key, &bytes)?, true))),
        }
    }
}

/// Why a poll failed. Every variant names the source and the endpoint; none carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{source_name} {endpoint}: request failed: {detail}")]
    Transport {
        source_name: String,
        endpoint: String,
        detail: String,
        timeout: bool,
    },
    #[error("{source_name} {endpoint}: HTTP {status}: {detail}")]
    Http {
        source_name: String,
        endpoint: String,
        status: u16,
        detail: String,
    },
    #[error("{source_name} {endpoint}: rate limited (HTTP 429){}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        source_name: String,
        endpoint: String,
        retry_after: Option<Duration>,
    },
    #[error("{source_name} {endpoint}: response exceeds {limit} bytes; refused")]
    TooLarge {
        source_name: String,
        endpoint: String,
        limit: u64,
    },
    #[error("{source_name} {endpoint}: vendor error code {code}: {message}")]
    Vendor {
        source_name: String,
        endpoint: String,
        code: String,
        message: String,
    },
    #[error("{source_name} {endpoint}: bad response at `{field}`: {detail}")]
    Parse {
        source_name: String,
        endpoint: String,
        field: String,
        detail: String,
    },
    /// A response within `max_response_bytes` whose rows go past the poll's decoding bound
    /// ([`bound`]): refused whole as soon as it is over — an incomplete observation is never diffed.
    #[error("{source_name} {endpoint}: the response has more than {limit} {unit} ({setting}); refused whole, nothing of this poll is used")]
    OverBound {
        source_name: String,
        endpoint: String,
        limit: u64,
        unit: &'static str,
        setting: &'static str,
    },
    /// The whole poll (every page and request, the waits for the token's request slot included)
    /// took longer than the endpoint's `poll_timeout`: abandoned, nothing committed.
    #[error("{source_name} {endpoint}: the poll took longer than poll_timeout ({}); abandoned, nothing committed", humantime::format_duration(*limit))]
    PollTimeout {
        source_name: String,
        endpoint: String,
        limit: Duration,
    },
    /// The vendor says the request itself is wrong (e.g. HTTP 400): fix the configuration.
    #[error("{source_name} {endpoint}: configuration error, the vendor says: {message}")]
    Config {
        source_name: String,
        endpoint: String,
        message: String,
    },
    /// A report window still reaches the row limit at the minimum span: not published, loudly.
    #[error("{source_name} {endpoint}: window {window} still returns {limit} rows or more at the minimum span; not published (lower min_window or ask the vendor)")]
    Overflow {
        source_name: String,
        endpoint: String,
        window: String,
        limit: usize,
    },
    /// A real-time answer holding as many rows as the vendor sends per call at most (Wolkvox:
    /// 60,000 records): rows beyond it may have been left out, and a row left out would read as an
    /// interaction ended or an agent logged out. Nothing of the poll is used.
    #[error("{source_name} {endpoint}: the answer holds {rows} rows, the vendor's limit per call: it may be cut short; refused whole, nothing of this poll is used")]
    AtRowLimit {
        source_name: String,
        endpoint: String,
        rows: u64,
    },
    /// A report window's rows could not be kept on local disk (the spill file in `state_dir`).
    #[error("{source_name} {endpoint}: keeping the response on local disk failed: {detail}")]
    Spill {
        source_name: String,
        endpoint: String,
        detail: String,
    },
    /// ccdc's own handling of a response failed (e.g. its parser task panicked): a bug to report,
    /// not the vendor's fault; the poll is retried.
    #[error("{source_name} {endpoint}: internal error: {detail}")]
    Internal {
        source_name: String,
        endpoint: String,
        detail: String,
    },
    /// ccdc's state store refused an operation the poll needs (e.g. counting the token's daily
    /// calls while the disk is full): not the vendor's fault; retried.
    #[error("{source_name} {endpoint}: state store: {detail}")]
    Store {
        source_name: String,
        endpoint: String,
        detail: String,
    },
    /// The token's daily consumption budget is spent.
    #[error("{source_name} {endpoint}: daily call limit reached ({used} of {limit} today); waiting for tomorrow")]
    Quota {
        source_name: String,
        endpoint: String,
        used: u64,
        limit: u64,
    },
}

/// How long a report feed waits after a window still overflows at its minimum span. A settled
/// window answers the same again, and each try repeats the chain of splits that leads to it
/// (several calls); at the poll back-off's pace that spent thousands of the token's daily calls,
/// which the real-time feeds share. Lowering `min_window` or raising `row_limit` needs a restart,
/// which tries at once.
pub const OVERFLOW_RETRY_AFTER: Duration = Duration::from_secs(3600);

impl SourceError {
    /// A short label for metrics (`ccdc_poll_failures_total{kind=...}`).
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::Transport { timeout: true, .. } => "timeout",
            SourceError::Transport { .. } => "transport",
            SourceError::Http { status, .. } if *status >= 500 => "http_5xx",
            SourceError::Http {
                status: 401 | 403, ..
            } => "auth",
            SourceError::Http { .. } => "http_4xx",
            SourceError::RateLimited { .. } => "rate_limited",
            SourceError::TooLarge { .. } => "too_large",
            SourceError::OverBound { .. } => "over_bound",
            SourceError::PollTimeout { .. } => "timeout",
            SourceError::Vendor { .. } => "vendor_code",
            SourceError::Parse { .. } => "parse",
            SourceError::Config { .. } => "config",
            SourceError::Overflow { .. } => "overflow",
            SourceError::AtRowLimit { .. } => "row_limit",
            SourceError::Quota { .. } => "quota",
            SourceError::Spill { .. } => "disk",
            SourceError::Store { .. } => "store",
            SourceError::Internal { .. } => "internal",
        }
    }

    /// May the same request succeed later without anyone changing the configuration? `false` for
    /// what only an operator can fix: a request the vendor calls malformed (HTTP 400, e.g. a wrong
    /// account key) and refused credentials (HTTP 401/403, after the source's own token refresh).
    /// Everything else (5xx, timeouts, 429, bad bodies, overflows, lists over the poll's bound, the
    /// daily quota, local disk) is worth retrying.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            SourceError::Config { .. }
                | SourceError::Http {
                    status: 401 | 403,
                    ..
                }
        )
    }

    /// The vendor asked us to wait at least this long; or, for a report window that overflows at
    /// its minimum span, [`OVERFLOW_RETRY_AFTER`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SourceError::RateLimited { retry_after, .. } => *retry_after,
            SourceError::Overflow { .. } => Some(OVERFLOW_RETRY_AFTER),
            _ => None,
        }
    }
}

impl SourceError {
    /// A serde_json failure while decoding `endpoint`'s body: an I/O error underneath is a transport
    /// failure (timeout, reset, size limit); anything else names the JSON path of the problem.
    pub fn from_json(
        source: &str,
        endpoint: &str,
        path: Option<String>,
        e: serde_json::Error,
    ) -> SourceError {
        if e.is_io() {
            return SourceError::Transport {
                source_name: source.into(),
                endpoint: endpoint.into(),
                timeout: e.io_error_kind() == Some(std::io::ErrorKind::TimedOut),
                detail: format!("reading the body: {e}"),
            };
        }
        let field = path.filter(|p| p != ".").unwrap_or_else(|| "<body>".into());
        SourceError::Parse {
            source_name: source.into(),
            endpoint: endpoint.into(),
            field,
            detail: e.to_string(),
        }
    }
}

/// Stream-decode a JSON body into `T`; errors name the JSON path of the problem.
pub fn decode_json<T: serde::de::DeserializeOwned>(
    source: &str,
    endpoint: &str,
    body: &mut dyn std::io::Read,
) -> Result<T, SourceError> {
    // A concrete buffered reader: serde_json reads byte by byte, which must not be a virtual call.
    let mut de =
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(64 * 1024, body));
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        SourceError::from_json(source, endpoint, Some(path), e.into_inner())
    })
}
