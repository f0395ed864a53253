//! What polling can say about *when*: a moment is known only to lie between two observations, so
//! every time ccdc derives is an interval, with an estimate in its middle. All arithmetic is checked
//! (vendor times are vendor data): a sum or difference that would overflow is unknown (`None`).

use serde::{Deserialize, Serialize};

/// A moment known to lie in `[after, before]`; `None` on a side: unbounded there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Bounds {
    pub after: Option<i64>,
    pub before: Option<i64>,
}

impl Bounds {
    /// Exactly `t` (e.g. a start the vendor reports).
    pub fn exactly(t: i64) -> Bounds {
        Bounds {
            after: Some(t),
            before: Some(t),
        }
    }

    /// Between two polls.
    pub fn between(after: Option<i64>, before: i64) -> Bounds {
        Bounds {
            after,
            before: Some(before),
        }
    }

    /// The estimate: the middle when both sides are known, else the known side (`before` first:
    /// "at the latest then").
    pub fn estimate(&self) -> Option<i64> {
        match (self.after, self.before) {
            (Some(a), Some(b)) => midpoint(a, b),
            (None, b) => b,
            (a, None) => a,
        }
    }

    /// What both bounds allow; `None` when they do not meet.
    pub fn intersect(&self, other: &Bounds) -> Option<Bounds> {
        let pick = |a: Option<i64>, b: Option<i64>, f: fn(i64, i64) -> i64| match (a, b) {
            (Some(x), Some(y)) => Some(f(x, y)),
            (x, y) => x.or(y),
        };
        let after = pick(self.after, other.after, i64::max);
        let before = pick(self.before, other.before, i64::min);
        match (after, before) {
            (Some(a), Some(b)) if a > b => None,
            _ => Some(Bounds { after, before }),
        }
    }

    /// A vendor time given in whole seconds as `t`: the true moment lies in `[t, t + 999 ms]`.
    pub fn vendor_second(t: i64) -> Bounds {
        Bounds {
            after: Some(t),
            before: t.checked_add(VENDOR_TIME_RESOLUTION_MS),
        }
    }

    /// `t` moved inside these bounds.
    pub fn clamp(&self, t: i64) -> i64 {
        let t = self.after.map_or(t, |a| t.max(a));
        self.before.map_or(t, |b| t.min(b))
    }
}

/// The resolution of vendor times: Wolkvox and Vonage give whole seconds, so a start stamped `t`
/// lies in `[t, t + 999 ms]`.
pub const VENDOR_TIME_RESOLUTION_MS: i64 = 999;

/// When an interaction can have started *at this agent*: after the poll before the first one that
/// saw it there (`seen_after`; `None`: there from the source's first poll) and at the latest at
/// that one (`first_seen`; `None`: unknown, stored before ccdc kept it), and — when the vendor
/// gives a start (whole seconds) — not before it. The vendor's start is the interaction's, not
/// the agent's: after a transfer, or after time in a queue, the agent's part began later, and
/// the polls say when.
pub fn start_bounds(
    vendor_start: Option<i64>,
    first_seen: Option<i64>,
    seen_after: Option<i64>,
) -> Bounds {
    let vendor = vendor_start.map(Bounds::vendor_second);
    let Some(first) = first_seen else {
        return vendor.unwrap_or_default();
    };
    let polled = Bounds::between(seen_after, first);
    // A vendor clock that disagrees with the polls: believe the polls.
    vendor.and_then(|v| v.intersect(&polled)).unwrap_or(polled)
}

/// The middle of `[a, b]` without overflow.
pub fn midpoint(a: i64, b: i64) -> Option<i64> {
    let (lo, hi) = (a.min(b), a.max(b));
    hi.checked_sub(lo).map(|d| lo + d / 2)
}

/// How long something lasted that started within `start` and ended within `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// The middle of `[min, max]`, or `min` when no upper bound is known.
    pub estimate: Option<i64>,
    pub min: Option<i64>,
    pub max: Option<i64>,
}

/// The duration between a start in `start` and an end in `end`: at least `end.after −
/// start.before` (never below 0), at most `end.before − start.after`.
pub fn span(start: Bounds, end: Bounds) -> Span {
    let diff = |end: Option<i64>, start: Option<i64>| -> Option<i64> {
        end?.checked_sub(start?).map(|d| d.max(0))
    };
    let min = diff(end.after, start.before);
    let max = diff(end.before, start.after);
    let min = match (min, max) {
        (Some(lo), Some(hi)) => Some(lo.min(hi)),
        (lo, _) => lo,
    };
    let estimate = match (min, max) {
        (Some(lo), Some(hi)) => midpoint(lo, hi),
        (lo, None) => lo,
        (None, hi) => hi,
    };
    Span { estimate, min, max }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_start_is_the_vendor_start_within_the_polls() {
        // Started at 1,000 (vendor, whole seconds), first seen at 5,000 after a poll at 0.
        let second = Bounds {
            after: Some(1_000),
            before: Some(1_999),
        };
        assert_eq!(start_bounds(Some(1_000), Some(5_000), Some(0)), second);
        // Transferred in (or queued): the vendor's start is before the previous poll, which did
        // not see it at this agent; the polls bound the agent's part.
        let polled = Bounds::between(Some(5_000), 9_000);
        assert_eq!(start_bounds(Some(1_000), Some(9_000), Some(5_000)), polled);
        // No vendor start; there from the first poll; a vendor clock ahead of the polls.
        assert_eq!(start_bounds(None, Some(9_000), Some(5_000)), polled);
        assert_eq!(start_bounds(Some(1_000), Some(9_000), None), second);
        assert_eq!(start_bounds(Some(20_000), Some(9_000), Some(5_000)), polled);
    }

    #[test]
    fn a_known_start_and_a_polled_end() {
        // Started at 1,000 (vendor), seen at 5,000, gone at 9,000.
        let s = span(Bounds::exactly(1_000), Bounds::between(Some(5_000), 9_000));
        assert_eq!(
            s,
            Span {
                estimate: Some(6_000),
                min: Some(4_000),
                max: Some(8_000)
            }
        );
    }

    #[test]
    fn a_polled_start_and_end() {
        // First seen at 2,000 (not at 1,000), last seen at 5,000, gone at 6,000.
        let s = span(
            Bounds::between(Some(1_000), 2_000),
            Bounds::between(Some(5_000), 6_000),
        );
        assert_eq!(
            (s.min, s.max, s.estimate),
            (Some(3_000), Some(5_000), Some(4_000))
        );
        // There from the first poll: no upper bound, the estimate is the lower bound.
        let s = span(
            Bounds::between(None, 2_000),
            Bounds::between(Some(5_000), 6_000),
        );
        assert_eq!((s.min, s.max, s.estimate), (Some(3_000), None, Some(3_000)));
    }

    #[test]
    fn skewed_clocks_and_extreme_values_never_go_negative_or_overflow() {
        // A vendor start after the end (clock skew): 0, never negative.
        let s = span(Bounds::exactly(10_000), Bounds::between(Some(5_000), 6_000));
        assert_eq!((s.min, s.max), (Some(0), Some(0)));
        let s = span(
            Bounds::exactly(i64::MIN),
            Bounds::between(Some(i64::MAX), i64::MAX),
        );
        assert_eq!((s.min, s.max, s.estimate), (None, None, None));
        assert_eq!(midpoint(i64::MIN, i64::MAX), None);
        assert_eq!(midpoint(3, 9), Some(6));
    }

    #[test]
    fn bounds_estimate_and_clamp() {
        let b = Bounds::between(Some(10), 20);
        assert_eq!(b.estimate(), Some(15));
        assert_eq!((b.clamp(5), b.clamp(15), b.clamp(25)), (10, 15, 20));
        assert_eq!(Bounds::between(None, 20).estimate(), Some(20));
        assert_eq!(Bounds::default().estimate(), None);
    }
}
