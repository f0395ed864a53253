//! Jittered exponential back-off ("full jitter").

use std::time::Duration;

use rand::Rng;

/// Delay before attempt `failures` (1 = after the first failure): uniform in
/// `[base/2, min(cap, base·2^(failures-1))]`.
pub fn jittered(failures: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let hi = exp.min(cap).max(Duration::from_millis(1));
    let lo = (base / 2).min(hi);
    let ms = rand::rng().random_range(lo.as_millis() as u64..=hi.as_millis() as u64);
    Duration::from_millis(ms)
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
}
