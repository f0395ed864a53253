//! Vendor sources. One module per vendor; shared HTTP concerns live in [`http`].

pub mod http;
pub mod wolkvox;

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::diff::{InteractionSnapshot, SourceMeta};

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
}

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
            SourceError::Vendor { .. } => "vendor_code",
            SourceError::Parse { .. } => "parse",
        }
    }

    /// The vendor asked us to wait at least this long.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SourceError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A source of active-interaction snapshots. The snapshot's `observed_at` is set by the caller.
#[async_trait]
pub trait InteractionSource: Send + Sync {
    fn meta(&self) -> &SourceMeta;
    /// The endpoint label used in logs and metrics.
    fn endpoint(&self) -> &str;
    /// Fetch one complete snapshot, or fail as a whole.
    async fn fetch_interactions(
        &self,
        observed_at: i64,
    ) -> Result<InteractionSnapshot, SourceError>;
}

/// Scripted in-memory source for tests: returns the queued results in order, then repeats the last.
pub struct ScriptedSource {
    meta: SourceMeta,
    script: Mutex<std::collections::VecDeque<Result<InteractionSnapshot, String>>>,
    last: Mutex<Option<InteractionSnapshot>>,
}

impl ScriptedSource {
    pub fn new(meta: SourceMeta, script: Vec<Result<InteractionSnapshot, String>>) -> Self {
        ScriptedSource {
            meta,
            script: Mutex::new(script.into()),
            last: Mutex::new(None),
        }
    }
}

#[async_trait]
impl InteractionSource for ScriptedSource {
    fn meta(&self) -> &SourceMeta {
        &self.meta
    }
    fn endpoint(&self) -> &str {
        "scripted"
    }
    async fn fetch_interactions(
        &self,
        observed_at: i64,
    ) -> Result<InteractionSnapshot, SourceError> {
        let next = self
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let snap = match next {
            Some(Ok(s)) => s,
            Some(Err(detail)) => {
                return Err(SourceError::Http {
                    source_name: self.meta.name.clone(),
                    endpoint: "scripted".into(),
                    status: 500,
                    detail,
                })
            }
            None => last.clone().unwrap_or_default(),
        };
        *last = Some(snap.clone());
        Ok(InteractionSnapshot {
            observed_at,
            ..snap
        })
    }
}
