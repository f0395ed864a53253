//! How one endpoint of a source is polled: its interval and back-off, the empty-snapshot guard, and
//! the bounds of one poll (time, rows).

use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError};

/// How one endpoint is polled.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PollConfig {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Ceiling of the jittered back-off after failed polls (never longer than `interval`).
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// An empty snapshot after a non-empty one is only believed after this many consecutive empty
    /// polls (guards against a vendor glitch ending every interaction or logging out every agent).
    pub confirm_empty_polls: u32,
    /// The longest one poll may take, every page and request (and the wait for the token's request
    /// slot) included: past it the poll is abandoned as failed (`kind="timeout"`), nothing
    /// committed, and polled again after the back-off. Unset: [`PollConfig::poll_timeout_for`].
    #[serde(with = "humantime_serde")]
    pub poll_timeout: Option<Duration>,
    /// The most rows (interactions, agents, list elements) one poll may decode: a response with
    /// more fails the poll whole (`kind="over_bound"`), never truncated.
    pub max_rows_per_poll: u64,
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            enabled: true,
            interval: Duration::from_secs(300),
            max_backoff: Duration::from_secs(120),
            confirm_empty_polls: 2,
            poll_timeout: None,
            max_rows_per_poll: DEFAULT_MAX_ROWS_PER_POLL,
        }
    }
}

impl PollConfig {
    pub(crate) fn every(interval: Duration) -> Self {
        PollConfig {
            interval,
            ..Default::default()
        }
    }

    pub(crate) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if self.interval < Duration::from_millis(100) {
            return Err(invalid(format!("{at}.interval"), "must be at least 100ms"));
        }
        if self.max_backoff.is_zero() {
            return Err(invalid(
                format!("{at}.max_backoff"),
                "must be greater than zero",
            ));
        }
        if self.confirm_empty_polls == 0 {
            return Err(invalid(
                format!("{at}.confirm_empty_polls"),
                "must be at least 1",
            ));
        }
        if self
            .poll_timeout
            .is_some_and(|t| t < Duration::from_millis(100) || t > MAX_POLL_TIMEOUT)
        {
            return Err(invalid(
                format!("{at}.poll_timeout"),
                "must be at least 100ms and at most 24h",
            ));
        }
        if !(1..=MAX_ROWS_PER_POLL).contains(&self.max_rows_per_poll) {
            return Err(invalid(
                format!("{at}.max_rows_per_poll"),
                format!("must be 1..={MAX_ROWS_PER_POLL}"),
            ));
        }
        Ok(())
    }

    /// The poll's time bound: `poll_timeout` when set, else the interval up to 5 minutes — but
    /// never under twice the source's `request_timeout` (one call may wait that long for the
    /// token's request slot, held by another feed's call, and then take that long itself).
    pub fn poll_timeout_for(&self, request_timeout: Duration) -> Duration {
        self.poll_timeout.unwrap_or_else(|| {
            self.interval
                .min(DEFAULT_POLL_TIMEOUT_CAP)
                .max(request_timeout.saturating_mul(2))
        })
    }
}

/// `max_rows_per_poll` unless set: well above the 60,000 records Wolkvox returns per call (at the
/// measured sizes ≈ 40 MB of decoded interactions, ≈ 160 MB of agents).
pub const DEFAULT_MAX_ROWS_PER_POLL: u64 = 100_000;
/// The default `poll_timeout` is the interval, up to this.
const DEFAULT_POLL_TIMEOUT_CAP: Duration = Duration::from_secs(300);
const MAX_POLL_TIMEOUT: Duration = Duration::from_secs(86_400);
const MAX_ROWS_PER_POLL: u64 = 10_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_default_poll_timeout_is_the_interval_up_to_5_minutes_and_at_least_two_calls() {
        let every = |s| PollConfig::every(secs(s));
        assert_eq!(every(60).poll_timeout_for(secs(10)), secs(60));
        assert_eq!(every(3600).poll_timeout_for(secs(60)), secs(300));
        assert_eq!(every(60).poll_timeout_for(secs(60)), secs(120));
        let set = PollConfig {
            poll_timeout: Some(secs(2)),
            ..every(60)
        };
        assert_eq!(set.poll_timeout_for(secs(60)), secs(2));
    }

    #[test]
    fn poll_bounds_are_read_and_validated_naming_the_key() {
        let p: PollConfig =
            serde_json::from_str(r#"{"poll_timeout":"2s","max_rows_per_poll":5}"#).unwrap();
        assert_eq!((p.poll_timeout, p.max_rows_per_poll), (Some(secs(2)), 5));
        let p: PollConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(
            (p.poll_timeout, p.max_rows_per_poll),
            (None, DEFAULT_MAX_ROWS_PER_POLL)
        );
        let bad = |p: PollConfig| p.validate("sources[0].agents").unwrap_err().to_string();
        let e = bad(PollConfig {
            poll_timeout: Some(Duration::from_millis(10)),
            ..Default::default()
        });
        assert!(e.contains("sources[0].agents.poll_timeout"), "{e}");
        let e = bad(PollConfig {
            max_rows_per_poll: 0,
            ..Default::default()
        });
        assert!(e.contains("sources[0].agents.max_rows_per_poll"), "{e}");
    }
}
