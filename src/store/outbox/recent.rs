//! Events this process has just committed, kept in memory for the publisher, so that an entry it
//! reads right after its commit is not decoded again from its outbox bytes (P2e's profile: reading
//! entries back into `Event`s was ≈ 8 % of the whole report path, most of it decoding).
//!
//! Only a shortcut: the store stays the authority on which entries exist and in which order. The
//! publisher still lists them from the store, and takes an event from here only for the exact
//! sequence number the store gave it; anything not here (not offered, over the budget, after a
//! restart, a commit that failed) is decoded from its bytes as before. An event is offered only if
//! its outbox bytes decode to it exactly ([`super::encode_exact`]).
//!
//! Entries are offered in commit order by the one committer of the process
//! ([`crate::poller::GroupCommit`]), so sequence numbers increase from front to back; the
//! publisher reads in the same order, and whatever is in front of the entry it asks for was
//! skipped for good (acknowledged, set aside, or read from the store meanwhile) and is dropped.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::event::Event;

/// At most this many outbox bytes' worth of events are kept (their decoded form takes about three
/// times more). An event offered beyond it is not kept: the publisher decodes it from the store.
pub const BUDGET_BYTES: usize = 8 << 20;

/// A commit's events are kept only if they take at most this many outbox bytes (a report chunk of
/// 12,000 chat rows takes ≈ 3.5 MB); those of a larger one, such as the first poll of a
/// 60,000-interaction source, are released as soon as they are encoded, as they always were.
pub const MAX_KEPT_PER_COMMIT: usize = 4 << 20;

/// A commit of this many events or more keeps none (whatever their size): known before they are
/// encoded, so that each can be released as soon as it is.
pub const MAX_KEPT_EVENTS: usize = 16_384;

#[derive(Default)]
pub struct Recent {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// `(sequence number, event, its outbox bytes)`, increasing sequence numbers.
    entries: VecDeque<(u64, Event, usize)>,
    bytes: usize,
}

impl Recent {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Plain data; a panic while holding it cannot leave it inconsistent in a way that matters
        // (at worst an entry is missing and decoded from the store).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keep `events` (each with its sequence number and outbox size), in commit order, while they
    /// fit in the budget. An offer that does not follow the last entry kept is refused.
    pub fn offer(&self, events: impl IntoIterator<Item = (u64, Event, usize)>) {
        let mut g = self.lock();
        for (seq, event, bytes) in events {
            if g.bytes.saturating_add(bytes) > BUDGET_BYTES
                || g.entries.back().is_some_and(|(s, ..)| *s >= seq)
            {
                break;
            }
            g.bytes += bytes;
            g.entries.push_back((seq, event, bytes));
        }
    }

    /// The event committed as entry `seq`, if it is kept (taken out). Entries before it are
    /// dropped: the publisher reads in order and will not ask for them.
    pub fn take(&self, seq: u64) -> Option<Event> {
        let mut g = self.lock();
        g.take(seq)
    }

    /// [`Recent::take`] for every entry of `seqs` (increasing) under one lock: `None` where an
    /// entry is not kept.
    pub fn take_all(&self, seqs: impl Iterator<Item = u64>) -> Vec<Option<Event>> {
        let mut g = self.lock();
        seqs.map(|s| g.take(s)).collect()
    }

    /// Outbox bytes' worth of events that may still be offered.
    pub fn room(&self) -> usize {
        BUDGET_BYTES.saturating_sub(self.lock().bytes)
    }

    /// Events kept now.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn take(&mut self, seq: u64) -> Option<Event> {
        while let Some((front, ..)) = self.entries.front() {
            if *front > seq {
                return None;
            }
            let (front, event, bytes) = self.entries.pop_front()?;
            self.bytes = self.bytes.saturating_sub(bytes);
            if front == seq {
                return Some(event);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str) -> Event {
        crate::event::started_for_tests(id, "c1")
    }

    #[test]
    fn taken_by_exact_sequence_number_and_in_order() {
        let r = Recent::default();
        r.offer([(3, ev("a"), 10), (5, ev("b"), 10), (9, ev("c"), 10)]);
        assert_eq!(
            r.take(2),
            None,
            "before the first: nothing, nothing dropped"
        );
        assert_eq!(r.len(), 3);
        assert_eq!(r.take(4), None, "3 is skipped for good");
        assert_eq!(r.len(), 2);
        assert_eq!(r.take(5), Some(ev("b")));
        assert_eq!(r.take(5), None, "taken once");
        assert_eq!(
            r.take_all([7, 9, 11].into_iter()),
            vec![None, Some(ev("c")), None]
        );
        assert!(r.is_empty());
    }

    #[test]
    fn kept_within_the_budget_and_in_order_only() {
        let r = Recent::default();
        r.offer([
            (1, ev("a"), BUDGET_BYTES / 2),
            (2, ev("b"), BUDGET_BYTES / 2),
            (3, ev("c"), 1),
        ]);
        assert_eq!(r.len(), 2, "the third is over the budget");
        assert_eq!(r.room(), 0);
        assert_eq!(r.take(1), Some(ev("a")));
        assert_eq!(r.room(), BUDGET_BYTES / 2);
        // Room again, but an offer behind the last entry kept is refused.
        r.offer([(2, ev("x"), 1), (4, ev("d"), 1)]);
        assert_eq!(r.len(), 1);
        r.offer([(4, ev("d"), 1)]);
        assert_eq!(
            r.take_all([2, 4].into_iter()),
            vec![Some(ev("b")), Some(ev("d"))]
        );
    }
}
