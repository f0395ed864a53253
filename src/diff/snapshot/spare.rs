//! The buffers of the last large snapshot dropped, kept for the next one built.
//!
//! A feed holds two snapshots at its peak (the previous one and the one being read) and drops
//! the older once a commit succeeds. Handing that one's buffers to the next build keeps a large
//! source at two snapshots' memory; given back to the allocator (freed on the polling task,
//! allocated again on a blocking thread) a third piled up between back-to-back cycles (P1's peak
//! RSS 117–130 MB against 112–116 MB with them kept; BENCHMARKS.md). Small snapshots keep
//! nothing aside, so a process of many small sources holds no spare.

use std::sync::Mutex;

use super::Entry;

/// Buffers of fewer entries bytes than this are left to the allocator.
const LARGE: usize = 1 << 20;

/// At most one pair of buffers, cleared.
pub(super) struct Spare(Mutex<Option<(Vec<Entry>, String)>>);

/// The process's spare.
pub(super) static SPARE: Spare = Spare(Mutex::new(None));

impl Spare {
    /// Keep the buffers of a dropped snapshot if they are large (the larger pair wins).
    pub(super) fn keep(&self, entries: &mut Vec<Entry>, text: &mut String) {
        if entries.capacity() * std::mem::size_of::<Entry>() < LARGE {
            return;
        }
        let (mut e, mut t) = (std::mem::take(entries), std::mem::take(text));
        e.clear();
        t.clear();
        let mut spare = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if spare
            .as_ref()
            .is_none_or(|(kept, _)| kept.capacity() < e.capacity())
        {
            *spare = Some((e, t));
        }
    }

    /// The kept buffers, if they have room for `entries` interactions and `text` bytes.
    pub(super) fn take(&self, entries: usize, text: usize) -> Option<(Vec<Entry>, String)> {
        let mut spare = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let fits = spare
            .as_ref()
            .is_some_and(|(e, t)| entries > 0 && e.capacity() >= entries && t.capacity() >= text);
        fits.then(|| spare.take()).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<Entry> {
        Vec::with_capacity(n)
    }

    #[test]
    fn large_buffers_are_kept_cleared_and_taken_when_they_fit() {
        let spare = Spare(Mutex::new(None));
        let n = LARGE / std::mem::size_of::<Entry>() + 1;
        let (mut e, mut t) = (entries(n), String::with_capacity(1000));
        t.push_str("old text");
        let at = e.as_ptr();
        spare.keep(&mut e, &mut t);
        assert_eq!(
            (e.capacity(), t.capacity()),
            (0, 0),
            "taken from the snapshot"
        );
        assert!(
            spare.take(n + 1, 10).is_none(),
            "too small for more entries"
        );
        assert!(spare.take(n, 2000).is_none(), "too small for more text");
        let (e, t) = spare.take(n, 1000).expect("fits");
        assert_eq!(
            (e.as_ptr(), e.len(), t.len()),
            (at, 0, 0),
            "the same buffer, empty"
        );
        assert!(spare.take(1, 0).is_none(), "taken once");
    }

    #[test]
    fn small_buffers_are_left_and_the_larger_pair_wins() {
        let spare = Spare(Mutex::new(None));
        let n = LARGE / std::mem::size_of::<Entry>() + 1;
        let (mut small, mut t) = (entries(10), String::new());
        spare.keep(&mut small, &mut t);
        assert_eq!(small.capacity(), 10, "left to the allocator");
        assert!(spare.take(1, 0).is_none());
        let (mut big, mut bigger) = (entries(n), entries(2 * n));
        spare.keep(&mut bigger, &mut String::new());
        spare.keep(&mut big, &mut String::new());
        assert_eq!(
            spare.take(1, 0).map(|(e, _)| e.capacity() >= 2 * n),
            Some(true)
        );
    }
}
