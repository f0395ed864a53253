//! Group commit: the pollers of one process hand their commits to one thread, which writes every
//! commit waiting at that moment as **one** store batch — one flush (one sled write and sync) for
//! all of them instead of one each, and one thread instead of a blocking thread per commit.
//!
//! Nothing about a single commit changes: each poller still waits until its commit is durable
//! before it moves on (hands its snapshot to other feeds, counts the poll a success), and the
//! publisher sees its events only once they are on disk. A group is one atomic batch, so a crash
//! keeps all of it or none of it; a failed group fails every commit in it, and each of those
//! pollers reloads its state from the store before its next diff, as after any failed commit.
//! Commits of different feeds write different keys, so merging them changes no value.
//!
//! Grouping is adaptive: groups start at most every [`MIN_GAP`], and the commits that arrive in
//! between wait and form the next group. A lone commit (the previous group started longer ago) is
//! written at once; a thousand sources polled every 10 s (≈ 230 commits a second) share at most
//! 20 flushes a second instead of queueing one each. A flush costs more than its write: sled
//! hands each one to its own thread pool, whose idle threads are all woken for it (P6's profile:
//! 30 % of the process's CPU went there with a flush per commit; with groups at most every 20 ms,
//! still 17 %; at most every 50 ms the process used 15 % of a core instead of 17 %;
//! BENCHMARKS.md). The price: a commit may wait up to 50 ms for its group, and its events become
//! visible to the publisher that much later. A large commit ([`AT_ONCE_BYTES`]) does not wait: it
//! starts its group at once, with whatever else is waiting.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::event::Event;
use crate::store::outbox::{self, recent, Recent};
use crate::store::{Store, StoreError, Write};

/// Groups start at least this far apart: a commit waits at most this long for the group it joins.
pub const MIN_GAP: Duration = Duration::from_millis(50);

/// A commit at least this large starts its group at once, without waiting out [`MIN_GAP`]: its
/// own write costs more than the flush that grouping saves (a thread pool's wake-ups), and a feed
/// committing a large window chunk by chunk would otherwise wait 50 ms per chunk (P2e: a one-day
/// backfill in chunks of 12,000 rows, ≈ 3.5 MB each, was paced to ≈ 190,000 rows a second by the
/// gap alone). Small commits (the many sources of P6: a few kilobytes each) still wait and group.
pub const AT_ONCE_BYTES: usize = 256 << 10;

/// The most commits in one group.
const MAX_GROUP: usize = 256;
/// The most bytes (state values and events) in one group, unless one commit alone is larger.
const MAX_GROUP_BYTES: usize = 32 << 20;

struct Job {
    writes: Vec<Write>,
    events: Vec<Vec<u8>>,
    /// Some of the events of `events`, by their index (increasing), each what its bytes decode to
    /// exactly: offered to [`Recent`] once committed.
    fresh: Fresh,
    done: oneshot::Sender<Result<(), StoreError>>,
}

impl Job {
    fn bytes(&self) -> usize {
        let writes: usize = self
            .writes
            .iter()
            .map(|w| match w {
                Write::Put(k, v) => k.len() + v.len(),
                Write::Delete(k) => k.len(),
            })
            .sum();
        writes + self.events.iter().map(Vec::len).sum::<usize>()
    }
}

/// Events to keep for the publisher: `(index in the commit's events, event)`, increasing indexes.
pub type Fresh = Vec<(usize, Event)>;

/// The outbox bytes of `events`, then of the heartbeat if any; and, for
/// [`GroupCommit::commit_keeping`], those of them whose bytes decode to them exactly — all of
/// them, or none if there are [`recent::MAX_KEPT_EVENTS`] or more, or together they take more than
/// `room` bytes ([`Recent::room`]; 0 keeps none) or [`recent::MAX_KEPT_PER_COMMIT`]. Every other
/// event is released here, once encoded: the first poll of a large source derives tens of
/// thousands, and keeping them alive through its commit would raise the process's peak.
pub fn encode(events: Vec<Event>, heartbeat: Option<Event>, room: usize) -> (Vec<Vec<u8>>, Fresh) {
    let mut encoded = Vec::with_capacity(events.len() + usize::from(heartbeat.is_some()));
    let mut fresh = Vec::new();
    let mut room = room.min(recent::MAX_KEPT_PER_COMMIT);
    // Decided before encoding whenever possible: events kept while their encodings are made, then
    // released because the commit turns out too large, raised P1's peak (103–108 MB against
    // 90–95 MB with the first poll's 60,000 events each released once encoded).
    let mut keeping = room > 0 && events.len() < recent::MAX_KEPT_EVENTS;
    for (i, event) in events.into_iter().chain(heartbeat).enumerate() {
        let (bytes, exact) = outbox::encode_exact(&event);
        if keeping && exact {
            if bytes.len() <= room {
                room -= bytes.len();
                fresh.push((i, event));
            } else {
                keeping = false;
                fresh = Vec::new();
            }
        }
        encoded.push(bytes);
    }
    (encoded, fresh)
}

/// The committer of one store, shared by its pollers. Its thread ends when the last handle goes.
pub struct GroupCommit {
    tx: mpsc::Sender<Job>,
    /// Where committed events are kept for the publisher (`None`: none kept).
    recent: Option<Arc<Recent>>,
}

impl GroupCommit {
    /// Start the committer thread of `store`, keeping no events.
    pub fn start(store: Arc<dyn Store>) -> std::io::Result<Arc<GroupCommit>> {
        Self::spawn(store, None)
    }

    /// [`GroupCommit::start`], keeping the events it commits in `recent` (the publisher's).
    pub fn start_with(
        store: Arc<dyn Store>,
        recent: Arc<Recent>,
    ) -> std::io::Result<Arc<GroupCommit>> {
        Self::spawn(store, Some(recent))
    }

    fn spawn(
        store: Arc<dyn Store>,
        recent: Option<Arc<Recent>>,
    ) -> std::io::Result<Arc<GroupCommit>> {
        let (tx, rx) = mpsc::channel::<Job>();
        let kept = recent.clone();
        std::thread::Builder::new()
            .name("ccdc-commit".into())
            .spawn(move || {
                let mut last: Option<Instant> = None;
                while let Ok(first) = rx.recv() {
                    let mut bytes = first.bytes();
                    if bytes < AT_ONCE_BYTES {
                        if let Some(wait) =
                            last.and_then(|l| (l + MIN_GAP).checked_duration_since(Instant::now()))
                        {
                            std::thread::sleep(wait);
                        }
                    }
                    last = Some(Instant::now());
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP && bytes < MAX_GROUP_BYTES {
                        match rx.try_recv() {
                            Ok(job) => {
                                bytes = bytes.saturating_add(job.bytes());
                                group.push(job);
                            }
                            Err(_) => break,
                        }
                    }
                    write(&*store, group, kept.as_deref());
                }
            })?;
        Ok(Arc::new(GroupCommit { tx, recent }))
    }

    /// How many outbox bytes' worth of events a commit may hand over to be kept now (0 when this
    /// committer keeps none).
    pub fn room(&self) -> usize {
        self.recent.as_ref().map_or(0, |r| r.room())
    }

    /// [`Store::commit`] of `writes` and `events`, in a group with whatever else is waiting;
    /// durable when it returns `Ok`.
    pub async fn commit(&self, writes: Vec<Write>, events: Vec<Vec<u8>>) -> Result<(), StoreError> {
        self.commit_keeping(writes, events, Vec::new()).await
    }

    /// [`GroupCommit::commit`]; `fresh` are some of the events of `events` by index (each what
    /// its bytes decode to: [`outbox::encode_exact`]), kept for the publisher once committed.
    pub async fn commit_keeping(
        &self,
        writes: Vec<Write>,
        events: Vec<Vec<u8>>,
        fresh: Fresh,
    ) -> Result<(), StoreError> {
        debug_assert!(
            fresh.windows(2).all(|w| w[0].0 < w[1].0)
                && fresh.iter().all(|(i, e)| {
                    events
                        .get(*i)
                        .is_some_and(|b| outbox::decode(b).is_ok_and(|d| d == *e))
                }),
            "a kept event differs from what its outbox bytes decode to"
        );
        let (done, result) = oneshot::channel();
        let job = Job {
            writes,
            events,
            fresh,
            done,
        };
        let gone = || StoreError::Task {
            what: "commit",
            reason: "the committer thread is gone".into(),
        };
        self.tx.send(job).map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }
}

/// Write `group` as one batch, keep its fresh events in `recent`, and answer every commit in it.
fn write(store: &dyn Store, group: Vec<Job>, recent: Option<&Recent>) {
    let (mut writes, mut events, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
    // Per job: its fresh events with their place in the group's events and their sizes.
    let mut fresh = Vec::new();
    for job in group {
        let start = events.len();
        let kept: Vec<(usize, Event, usize)> = job
            .fresh
            .into_iter()
            .filter_map(|(i, e)| Some((start + i, e, job.events.get(i)?.len())))
            .collect();
        fresh.push(kept);
        writes.extend(job.writes);
        events.extend(job.events);
        waiting.push(job.done);
    }
    match store.commit_numbered(writes, events) {
        Ok(seqs) => {
            // Before the answers: a poller wakes the publisher once its commit is answered.
            if let Some(recent) = recent {
                for kept in fresh {
                    recent.offer(
                        kept.into_iter()
                            .filter_map(|(i, e, n)| Some((*seqs.get(i)?, e, n))),
                    );
                }
            }
            for done in waiting {
                let _ = done.send(Ok(()));
            }
        }
        Err(e) => {
            for done in waiting {
                let _ = done.send(Err(same(&e)));
            }
        }
    }
}

/// An error that says what `e` says, equally retryable or not (every commit of a failed group
/// gets one).
fn same(e: &StoreError) -> StoreError {
    let text = e.to_string();
    match e {
        StoreError::Corrupt { key, reason } => StoreError::Corrupt {
            key: key.clone(),
            reason: reason.clone(),
        },
        StoreError::Unavailable(r) => StoreError::Unavailable(r.clone()),
        StoreError::Unusable(r) => StoreError::Unusable(r.clone()),
        StoreError::Task { what, reason } => StoreError::Task {
            what,
            reason: reason.clone(),
        },
        _ if e.is_retryable() => StoreError::Io(text),
        _ => StoreError::Task {
            what: "commit",
            reason: text,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    /// A store that counts its commits and holds each until released.
    #[derive(Default)]
    struct Held {
        inner: MemoryStore,
        entered: std::sync::atomic::AtomicUsize,
        gate: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    }

    impl Store for Held {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key)
        }
        fn commit_numbered(
            &self,
            writes: Vec<Write>,
            events: Vec<Vec<u8>>,
        ) -> Result<Vec<u64>, StoreError> {
            self.entered
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if let Some(gate) = self.gate.lock().unwrap().as_ref() {
                let _ = gate.recv();
            }
            self.inner.commit_numbered(writes, events)
        }
        fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
            self.inner.scan_prefix(prefix)
        }
        fn increment(&self, key: &str, by: u64) -> Result<u64, StoreError> {
            self.inner.increment(key, by)
        }
        fn outbox_after(
            &self,
            after: Option<u64>,
            limit: usize,
        ) -> Result<Vec<crate::store::OutboxEntry>, StoreError> {
            self.inner.outbox_after(after, limit)
        }
        fn outbox_remove(&self, seqs: &[u64]) -> Result<(), StoreError> {
            self.inner.outbox_remove(seqs)
        }
        fn outbox_len(&self) -> usize {
            self.inner.outbox_len()
        }
        fn flush(&self) -> Result<(), StoreError> {
            self.inner.flush()
        }
    }

    fn put(k: &str) -> Vec<Write> {
        vec![Write::Put(k.into(), k.as_bytes().to_vec())]
    }

    #[tokio::test]
    async fn commits_waiting_together_are_written_as_one_batch_and_each_is_answered() {
        use std::sync::atomic::Ordering::SeqCst;
        let store = Arc::new(Held::default());
        let (open, gate) = std::sync::mpsc::channel();
        *store.gate.lock().unwrap() = Some(gate);
        let group = GroupCommit::start(store.clone()).unwrap();
        // The first commit is held inside the store...
        let first = tokio::spawn({
            let g = group.clone();
            async move { g.commit(put("a"), vec![b"a".to_vec()]).await }
        });
        while store.entered.load(SeqCst) == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        // ...while three more are handed over (each sends on its first poll).
        let rest = futures::future::join_all(
            ["b", "c", "d"].map(|k| group.commit(put(k), vec![k.as_bytes().to_vec()])),
        );
        tokio::pin!(rest);
        assert!(futures::poll!(&mut rest).is_pending());
        open.send(()).unwrap();
        open.send(()).unwrap();
        drop(open); // any further batch goes through at once (and is counted)
        first.await.unwrap().unwrap();
        for r in rest.await {
            r.unwrap();
        }
        assert_eq!(
            store.entered.load(SeqCst),
            2,
            "the three commits that waited went in one batch"
        );
        for k in ["a", "b", "c", "d"] {
            assert_eq!(store.get(k).unwrap(), Some(k.as_bytes().to_vec()));
        }
        assert_eq!(store.outbox_len(), 4);
    }

    #[tokio::test]
    async fn small_commits_in_a_row_are_spaced_by_the_gap_and_large_ones_are_not() {
        let store = Arc::new(MemoryStore::default());
        let group = GroupCommit::start(store.clone()).unwrap();
        let started = Instant::now();
        for i in 0..5 {
            group.commit(put(&format!("s{i}")), vec![]).await.unwrap();
        }
        // Each commit after the first waits for the gap since the one before.
        assert!(started.elapsed() >= 4 * MIN_GAP, "{:?}", started.elapsed());
        let started = Instant::now();
        for i in 0..5 {
            let big = vec![Write::Put(format!("l{i}"), vec![7; AT_ONCE_BYTES])];
            group.commit(big, vec![]).await.unwrap();
        }
        // No gap at all: four gaps would be 200 ms; five in-memory commits take microseconds.
        assert!(started.elapsed() < 4 * MIN_GAP, "{:?}", started.elapsed());
        assert_eq!(
            store.get("l4").unwrap().map(|v| v.len()),
            Some(AT_ONCE_BYTES)
        );
    }

    #[tokio::test]
    async fn a_failed_group_fails_every_commit_in_it_alike() {
        let store = Arc::new(MemoryStore::default());
        let group = GroupCommit::start(store.clone()).unwrap();
        store.set_health(crate::store::StoreHealth::Failing("disk full".into()));
        let e = group.commit(put("a"), vec![]).await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert!(e.to_string().contains("disk full"), "{e}");
        store.set_health(crate::store::StoreHealth::Ok);
        group.commit(put("a"), vec![]).await.unwrap();
        assert_eq!(store.get("a").unwrap(), Some(b"a".to_vec()));
        let unusable = StoreError::Unusable("x".into());
        assert!(!same(&unusable).is_retryable());
        let corrupt = StoreError::Corrupt {
            key: "k".into(),
            reason: "r".into(),
        };
        assert_eq!(same(&corrupt).to_string(), corrupt.to_string());
    }

    fn started(i: usize) -> Event {
        crate::event::started_for_tests(&format!("id-{i}"), &format!("c{i}"))
    }

    #[tokio::test]
    async fn committed_events_are_kept_under_their_entries_and_failed_ones_are_not() {
        let store = Arc::new(MemoryStore::default());
        let recent = Arc::new(Recent::default());
        assert_eq!(
            GroupCommit::start(store.clone()).unwrap().room(),
            0,
            "a committer without a reader keeps nothing"
        );
        let group = GroupCommit::start_with(store.clone(), recent.clone()).unwrap();
        // Three events, the first two kept; then a commit that fails after being applied.
        let (bytes, fresh) = encode(
            (0..2).map(started).collect(),
            Some(started(2)),
            group.room(),
        );
        assert_eq!(fresh.len(), 3, "all three exact and within the budget");
        let fresh = fresh.into_iter().take(2).collect();
        group.commit_keeping(vec![], bytes, fresh).await.unwrap();
        store.fail_next_commit_after_applying();
        let (bytes, fresh) = encode(vec![started(3)], None, group.room());
        assert!(group.commit_keeping(vec![], bytes, fresh).await.is_err());
        assert_eq!(
            store.outbox_len(),
            4,
            "the failed commit's entry is there all the same"
        );
        assert_eq!(
            recent.take_all([0, 1, 2, 3].into_iter()),
            vec![Some(started(0)), Some(started(1)), None, None]
        );
    }

    #[test]
    fn the_events_kept_are_the_exact_ones_all_or_none_within_the_room() {
        let (bytes, fresh) = encode((0..3).map(started).collect(), None, 0);
        assert_eq!((bytes.len(), fresh.len()), (3, 0), "no room");
        // An event stored with its long values cut is not what its bytes decode to: not kept,
        // the ones around it are.
        let mut cut = started(1);
        if let Event::Interaction(x) = &mut cut {
            x.subject = Some("x".repeat(crate::event::bound::MAX_EVENT_BYTES));
        }
        let (bytes, fresh) = encode(
            vec![started(0), cut, started(2)],
            None,
            recent::BUDGET_BYTES,
        );
        assert_eq!(bytes.len(), 3);
        assert_eq!(
            fresh.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [0, 2],
            "the cut one is not kept"
        );
        assert_eq!(fresh[1].1, started(2));
        // All or none: a commit whose events take more than the room keeps none of them. Events
        // of about 1 KB, so that the limit in bytes comes before the limit in events.
        let sized = |i: usize| {
            let mut e = started(i);
            if let Event::Interaction(x) = &mut e {
                x.subject = Some("s".repeat(1000));
            }
            e
        };
        let (mut n, mut total) = (0, 0);
        while total + outbox::encode(&sized(n)).len() <= recent::MAX_KEPT_PER_COMMIT {
            total += outbox::encode(&sized(n)).len();
            n += 1;
        }
        assert!(n < recent::MAX_KEPT_EVENTS);
        let (bytes, fresh) = encode((0..n).map(sized).collect(), None, recent::BUDGET_BYTES);
        assert_eq!(
            (bytes.len(), fresh.len()),
            (n, n),
            "within the limit: all kept"
        );
        let (bytes, fresh) = encode((0..n).map(sized).collect(), None, total - 1);
        assert_eq!((bytes.len(), fresh.len()), (n, 0), "one byte over the room");
        let (_, fresh) = encode((0..n + 1).map(sized).collect(), None, usize::MAX);
        assert!(fresh.is_empty(), "over the limit per commit");
        let many = recent::MAX_KEPT_EVENTS;
        let (bytes, fresh) = encode((0..many).map(started).collect(), None, usize::MAX);
        assert_eq!(
            (bytes.len(), fresh.len()),
            (many, 0),
            "too many events to keep"
        );
    }
}
