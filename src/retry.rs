//! The one retry policy of ccdc: jittered exponential back-off ("full jitter"), as a [`Backoff`]
//! for loops that keep their own state (the poller, the publisher) and as [`retry`] for "do this
//! until it works, unless the error is fatal or we are shutting down" (topics, schemas).

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

/// Delay before attempt `failures` (1 = after the first failure): uniform in
/// `[base/2, min(cap, base·2^(failures-1))]`.
pub fn jittered(failures: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let hi = exp.min(cap).max(Duration::from_millis(1));
    let lo = (base / 2).min(hi);
    let ms = rand::rng().random_range(lo.as_millis() as u64..=hi.as_millis() as u64);
    Duration::from_millis(ms)
}

/// Consecutive failures and the delay they call for.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            failures: 0,
        }
    }

    /// Count a failure; the delay before the next attempt.
    pub fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        jittered(self.failures, self.base, self.cap)
    }

    /// A success: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// Run `op` until it succeeds. A retryable error (per `is_retryable`) is logged as `what` and
/// retried after the back-off; any other error is returned at once. `Ok(None)`: `stop` was
/// cancelled before `op` succeeded.
pub async fn retry<T, E, Fut>(
    what: &str,
    mut backoff: Backoff,
    stop: &CancellationToken,
    is_retryable: impl Fn(&E) -> bool,
    mut op: impl FnMut() -> Fut,
) -> Result<Option<T>, E>
where
    E: Display,
    Fut: Future<Output = Result<T, E>>,
{
    loop {
        let attempt = tokio::select! {
            r = op() => r,
            _ = stop.cancelled() => return Ok(None),
        };
        match attempt {
            Ok(v) => return Ok(Some(v)),
            Err(e) if is_retryable(&e) => {
                let wait = backoff.fail();
                tracing::warn!(error = %e, failures = backoff.failures(), retry_in_ms = wait.as_millis() as u64, "{what}");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => return Ok(None),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_respects_the_cap() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(30);
        for _ in 0..200 {
            let d1 = jittered(1, base, cap);
            assert!(d1 >= Duration::from_millis(500) && d1 <= base, "{d1:?}");
            let d10 = jittered(10, base, cap);
            assert!(d10 >= Duration::from_millis(500) && d10 <= cap, "{d10:?}");
        }
        // With enough samples the upper range is used (the jitter is not constant).
        assert!((0..200).any(|_| jittered(6, base, cap) > Duration::from_secs(16)));
    }

    #[test]
    fn backoff_counts_failures_until_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        assert!(b.fail() <= Duration::from_millis(100));
        b.fail();
        b.fail();
        assert_eq!(b.failures(), 3);
        assert!((0..50).all(|_| b.clone().fail() <= Duration::from_millis(400)));
        b.reset();
        assert_eq!(b.failures(), 0);
        assert!(b.fail() <= Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_retries_retryable_errors_and_returns_fatal_ones() {
        let stop = CancellationToken::new();
        let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(20));
        let mut calls = 0;
        let got: Result<Option<u32>, String> = retry(
            "t",
            backoff.clone(),
            &stop,
            |e: &String| e == "later",
            || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 3 {
                        Err("later".to_string())
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await;
        assert_eq!(got, Ok(Some(3)));
        let fatal: Result<Option<u32>, String> = retry(
            "t",
            backoff.clone(),
            &stop,
            |e: &String| e == "later",
            || async { Err("never".to_string()) },
        )
        .await;
        assert_eq!(fatal, Err("never".to_string()));
        stop.cancel();
        let stopped: Result<Option<u32>, String> = retry(
            "t",
            backoff,
            &stop,
            |_: &String| true,
            || async { Err("later".to_string()) },
        )
        .await;
        assert_eq!(stopped, Ok(None));
    }
}
