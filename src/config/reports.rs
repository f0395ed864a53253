//! A report pulled window by window (`[[sources.reports]]` of a Wolkvox source).

use std::time::Duration;

use serde::Deserialize;

use super::{invalid, limits, yes, ConfigError};
use crate::event::report::ReportKind;

/// One report pulled window by window (`[[sources.reports]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// `chat_1` or `diagram_9`.
    pub report: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "five_minutes", with = "humantime_serde")]
    pub interval: Duration,
    #[serde(default = "two_minutes", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Pull up to `now - settle_delay`: recent rows may still change.
    #[serde(default = "ten_minutes", with = "humantime_serde")]
    pub settle_delay: Duration,
    /// Every cycle also re-reads this much before the cursor for late or changed rows.
    #[serde(default = "hour", with = "humantime_serde")]
    pub lookback: Duration,
    /// Largest window per call (the vendor allows 31 days).
    #[serde(default = "day", with = "humantime_serde")]
    pub max_window: Duration,
    /// Smallest window a truncated window is split down to.
    #[serde(default = "minute", with = "humantime_serde")]
    pub min_window: Duration,
    /// Rows at which a response is assumed truncated (default: 60,000 for chat_1, 6,000 for diagram_9).
    pub row_limit: Option<u64>,
    /// Local date-time (`YYYY-MM-DD HH:MM:SS`) of the first pull; default: `lookback` before now.
    pub start_from: Option<String>,
    /// How long row identities and hashes are remembered for de-duplication.
    #[serde(default = "week", with = "humantime_serde")]
    pub dedupe_ttl: Duration,
}

fn five_minutes() -> Duration {
    Duration::from_secs(300)
}
fn two_minutes() -> Duration {
    Duration::from_secs(120)
}
fn ten_minutes() -> Duration {
    Duration::from_secs(600)
}
fn day() -> Duration {
    Duration::from_secs(86_400)
}
fn minute() -> Duration {
    Duration::from_secs(60)
}
fn week() -> Duration {
    Duration::from_secs(7 * 86_400)
}
fn hour() -> Duration {
    Duration::from_secs(3600)
}

impl ReportConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let kind = ReportKind::parse(&self.report).ok_or_else(|| {
            invalid(
                format!("{at}.report"),
                format!(
                    "`{}` is not a known report (chat_1, diagram_9)",
                    self.report
                ),
            )
        })?;
        if self.interval < Duration::from_millis(100) {
            return Err(invalid(format!("{at}.interval"), "must be at least 100ms"));
        }
        if self.max_window > limits::WOLKVOX_MAX_RANGE || self.max_window < Duration::from_secs(1) {
            return Err(invalid(
                format!("{at}.max_window"),
                "must be between 1s and 31 days (the vendor's limit)",
            ));
        }
        if self.min_window < Duration::from_secs(1) || self.min_window > self.max_window {
            return Err(invalid(
                format!("{at}.min_window"),
                "must be at least 1s and at most max_window",
            ));
        }
        match self.row_limit {
            Some(0) => return Err(invalid(format!("{at}.row_limit"), "must be at least 1")),
            Some(n) if n > limits::WOLKVOX_MAX_ROWS => {
                return Err(invalid(
                    format!("{at}.row_limit"),
                    "at most 60000 (the vendor's limit per call)",
                ))
            }
            _ => {}
        }
        if let Some(s) = &self.start_from {
            parse_local_start(s).map_err(|m| invalid(format!("{at}.start_from"), m.to_string()))?;
        }
        if self.dedupe_ttl < self.lookback {
            return Err(invalid(
                format!("{at}.dedupe_ttl"),
                "must be at least lookback (or late rows would be published again)",
            ));
        }
        let _ = kind;
        Ok(())
    }
}

/// A local time that is neither `YYYY-MM-DD HH:MM:SS` nor `YYYY-MM-DD`.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not YYYY-MM-DD[ HH:MM:SS]")]
pub struct BadLocalTime(String);

/// `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (midnight), local time.
pub fn parse_local_start(s: &str) -> Result<chrono::NaiveDateTime, BadLocalTime> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
        .map_err(|_| BadLocalTime(s.to_string()))
}
