//! The limits of one Vonage account: its fair-use request rate and the requests in flight, shared
//! by every source of the process on that account (`base_url` and `account_key`), since the
//! vendor counts them per account ("a fair-use limit shared by all APIs of an account"; 429 past
//! it). Sources of one account must configure the same limits (checked with the configuration).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore};

/// The rate and in-flight limits of the account at `base_url` with `account_key`, made by the first
/// source that asks (later ones get the same).
pub fn account_limits(
    base_url: &str,
    account_key: &str,
    per_second: f64,
    in_flight: usize,
) -> (Arc<RateLimiter>, Arc<Semaphore>) {
    type Limits = (Arc<RateLimiter>, Arc<Semaphore>);
    static ACCOUNTS: OnceLock<std::sync::Mutex<HashMap<String, Limits>>> = OnceLock::new();
    let map = ACCOUNTS.get_or_init(Default::default);
    let mut g = map.lock().unwrap_or_else(|p| p.into_inner());
    g.entry(crate::config::vonage_account_id(base_url, account_key))
        .or_insert_with(|| {
            (
                Arc::new(RateLimiter::new(per_second)),
                Arc::new(Semaphore::new(in_flight)),
            )
        })
        .clone()
}

/// Requests per second for one account, shared by every call; a 429 pauses everyone.
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<tokio::time::Instant>,
    /// No call before this (a 429's `Retry-After`): checked again by a call that was given its
    /// slot before the pause.
    paused_until: Mutex<tokio::time::Instant>,
}

impl RateLimiter {
    pub fn new(per_second: f64) -> Self {
        let now = tokio::time::Instant::now();
        RateLimiter {
            interval: Duration::from_secs_f64(1.0 / per_second),
            next: Mutex::new(now),
            paused_until: Mutex::new(now),
        }
    }
    /// Wait for the next slot, and past any pause.
    pub async fn acquire(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(tokio::time::Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
        loop {
            let until = *self.paused_until.lock().await;
            if tokio::time::Instant::now() >= until {
                return;
            }
            tokio::time::sleep_until(until).await;
        }
    }
    /// Nobody calls before `d` from now.
    pub async fn pause(&self, d: Duration) {
        let until = tokio::time::Instant::now() + d;
        let mut paused = self.paused_until.lock().await;
        *paused = (*paused).max(until);
        let mut next = self.next.lock().await;
        *next = (*next).max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_back_calls_already_given_their_slot() {
        let r = Arc::new(RateLimiter::new(1.0));
        r.acquire().await;
        let t0 = tokio::time::Instant::now();
        // Given the slot at +1 s, then a 429 pauses the account for 5 s.
        let waiting = tokio::spawn({
            let r = r.clone();
            async move {
                r.acquire().await;
                tokio::time::Instant::now()
            }
        });
        tokio::task::yield_now().await;
        r.pause(Duration::from_secs(5)).await;
        let went = waiting.await.unwrap();
        assert!(went - t0 >= Duration::from_secs(5), "{:?}", went - t0);
    }

    #[test]
    fn sources_of_one_account_share_its_limits_and_other_accounts_do_not() {
        let (rate, in_flight) = account_limits("https://x.test/", "limits-a", 2.0, 4);
        let (same_rate, same_in_flight) = account_limits("https://X.test", "limits-a", 2.0, 4);
        assert!(Arc::ptr_eq(&rate, &same_rate) && Arc::ptr_eq(&in_flight, &same_in_flight));
        let (other, _) = account_limits("https://x.test", "limits-b", 2.0, 4);
        assert!(!Arc::ptr_eq(&rate, &other));
        assert_eq!(in_flight.available_permits(), 4);
    }
}
