use super::*;
use std::sync::atomic::Ordering;

fn put(k: &str, v: &[u8]) -> Write {
    Write::Put(k.into(), v.to_vec())
}

fn exercise(store: &dyn Store) {
    assert_eq!(store.get("a").unwrap(), None);
    let first = store
        .commit_numbered(
            vec![put("a", b"snap1")],
            vec![b"e1".to_vec(), b"e2".to_vec()],
        )
        .unwrap();
    store
        .commit(
            vec![
                put("b", b"snapB"),
                put("seen/x/1", b"1"),
                put("seen/x/2", b"2"),
                put("seen/y", b"3"),
            ],
            vec![],
        )
        .unwrap();
    let third = store
        .commit_numbered(
            vec![put("a", b"snap2"), Write::Delete("seen/x/2".into())],
            vec![b"e3".to_vec()],
        )
        .unwrap();
    assert_eq!(store.get("a").unwrap().as_deref(), Some(&b"snap2"[..]));
    assert_eq!(store.get("b").unwrap().as_deref(), Some(&b"snapB"[..]));
    assert_eq!(
        store.scan_prefix("seen/x/").unwrap(),
        vec![("seen/x/1".to_string(), b"1".to_vec())]
    );
    assert_eq!(
        (
            store.increment("quota/t", 2).unwrap(),
            store.increment("quota/t", 3).unwrap()
        ),
        (2, 5)
    );
    let all = store.outbox_after(None, 100).unwrap();
    assert_eq!(
        all.iter().map(|(_, v)| v.as_slice()).collect::<Vec<_>>(),
        vec![&b"e1"[..], b"e2", b"e3"]
    );
    assert!(
        all.windows(2).all(|w| w[0].0 < w[1].0),
        "sequence numbers increase"
    );
    // Each commit answered the sequence numbers its events were stored under.
    let seqs: Vec<u64> = all.iter().map(|(s, _)| *s).collect();
    assert_eq!(first, seqs[..2]);
    assert_eq!(third, seqs[2..]);
    assert_eq!(store.outbox_len(), 3);
    let tail = store.outbox_after(Some(all[0].0), 1).unwrap();
    assert_eq!(tail, vec![all[1].clone()]);
    store.outbox_remove(&[all[1].0, all[1].0]).unwrap();
    assert_eq!(store.outbox_len(), 2);
    let rest: Vec<_> = store
        .outbox_after(None, 100)
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(rest, vec![b"e1".to_vec(), b"e3".to_vec()]);
}

#[test]
fn many_events_span_segments_and_partial_delivery_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let events: Vec<Vec<u8>> = (0..2500).map(|i| format!("e{i}").into_bytes()).collect();
    let delivered: Vec<u64>;
    {
        let s = SledStore::open(&path).unwrap();
        let seqs = s.commit_numbered(vec![], events.clone()).unwrap();
        let all = s.outbox_after(None, usize::MAX).unwrap();
        assert_eq!(all.len(), 2500);
        assert_eq!(
            seqs,
            all.iter().map(|(q, _)| *q).collect::<Vec<_>>(),
            "the commit answered every event's sequence number, across segments"
        );
        assert!(
            all.windows(2).all(|w| w[0].0 < w[1].0),
            "strictly increasing"
        );
        // Deliver every third event, across all three segments, and a whole first segment.
        delivered = all
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 == 0 || *i < 1024)
            .map(|(_, (q, _))| *q)
            .collect();
        s.outbox_remove(&delivered).unwrap();
        s.outbox_remove(&delivered).unwrap();
        // Paging from the middle of a segment.
        let page = s.outbox_after(Some(all[1500].0), 2).unwrap();
        assert_eq!(page[0].1, b"e1501".to_vec());
        assert_eq!(page[1].1, b"e1502".to_vec(), "e1503 was delivered");
    }
    let s = SledStore::open(&path).unwrap();
    let left: Vec<Vec<u8>> = s
        .outbox_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let expected: Vec<Vec<u8>> = events
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0 && *i >= 1024)
        .map(|(_, e)| e.clone())
        .collect();
    assert_eq!(left, expected);
    assert_eq!(s.outbox_len(), expected.len());
    assert!(
        s.handle()
            .with_open(|o| o.tree.scan_prefix([SEGMENT_PREFIX]).count())
            == Some(2),
        "the fully delivered segment is gone"
    );
}

#[test]
fn a_one_entry_per_event_outbox_of_an_earlier_version_is_migrated_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    {
        let s = SledStore::open(&path).unwrap();
        s.handle().with_open(|o| {
            for (seq, e) in [(3u64, "old-1"), (7, "old-2"), (9, "old-3")] {
                o.tree
                    .insert(id_key(LEGACY_OUTBOX_PREFIX, seq), e.as_bytes())
                    .unwrap();
            }
            o.db.flush().unwrap();
        });
    }
    let s = SledStore::open(&path).unwrap();
    assert_eq!(s.outbox_len(), 3);
    s.commit(vec![], vec![b"new".to_vec()]).unwrap();
    let all: Vec<Vec<u8>> = s
        .outbox_after(None, 10)
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(all, [&b"old-1"[..], b"old-2", b"old-3", b"new"]);
    assert_eq!(
        s.handle()
            .with_open(|o| o.tree.scan_prefix([LEGACY_OUTBOX_PREFIX]).count()),
        Some(0)
    );
}

#[test]
fn memory_store_semantics() {
    exercise(&MemoryStore::default());
}

#[test]
fn sled_store_semantics_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    {
        let s = SledStore::open(&path).unwrap();
        exercise(&s);
    }
    let s = SledStore::open(&path).unwrap();
    assert_eq!(s.outbox_len(), 2, "outbox survives reopen");
    assert_eq!(s.get("a").unwrap().as_deref(), Some(&b"snap2"[..]));
    assert_eq!(
        s.increment("quota/t", 1).unwrap(),
        6,
        "counters survive reopen"
    );
    let before = s.outbox_after(None, 10).unwrap();
    s.commit(vec![put("a", b"snap3")], vec![b"e4".to_vec()])
        .unwrap();
    let after = s.outbox_after(None, 10).unwrap();
    assert!(
        after.last().unwrap().0 > before.last().unwrap().0,
        "sequence keeps increasing after reopen"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}

/// Many feeds commit while the publisher removes what it sees, at once: the count must never
/// wrap below zero (a removal seen before the commit's own add), nor drift. An acceptance run
/// with 300 sources saw `outbox=18446744073709551551` and pollers paused.
#[test]
fn the_outbox_count_is_exact_under_concurrent_commits_and_removals() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
    const FEEDS: usize = 16;
    const COMMITS: usize = 60;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let max_seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let remover = {
        let (store, done, max_seen) = (store.clone(), done.clone(), max_seen.clone());
        std::thread::spawn(move || {
            let mut removed = 0;
            loop {
                // Read before looking: once every feed is done, an empty read means all is seen.
                let finished = done.load(Ordering::SeqCst);
                max_seen.fetch_max(store.outbox_len(), Ordering::SeqCst);
                let seqs: Vec<u64> = store
                    .outbox_after(None, 1000)
                    .unwrap()
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect();
                removed += seqs.len();
                store.outbox_remove(&seqs).unwrap();
                if finished && seqs.is_empty() {
                    break;
                }
            }
            removed
        })
    };
    let feeds: Vec<_> = (0..FEEDS)
        .map(|f| {
            let store = store.clone();
            std::thread::spawn(move || {
                for c in 0..COMMITS {
                    let key = format!("feed/{f}");
                    let events = (0..3)
                        .map(|i| format!("{f}-{c}-{i}").into_bytes())
                        .collect();
                    store.commit(vec![put(&key, b"s")], events).unwrap();
                }
            })
        })
        .collect();
    for f in feeds {
        f.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let removed = remover.join().unwrap();
    let total = FEEDS * COMMITS * 3;
    assert!(
        max_seen.load(Ordering::SeqCst) <= total,
        "the count wrapped: {}",
        max_seen.load(Ordering::SeqCst)
    );
    assert_eq!(removed, total);
    assert_eq!(store.outbox_len(), 0);
    assert!(store.outbox_after(None, 10).unwrap().is_empty());
}

/// Vendor-call counts are incremented without a flush each: counted at once, and on disk once any
/// commit has flushed (a copy of the directory taken then, as a crash would leave it, has them).
#[test]
fn a_lazy_count_counts_at_once_and_is_durable_with_the_next_commit() {
    fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let s = SledStore::open(&path).unwrap();
    assert_eq!(s.increment_lazily("quota/t", 2).unwrap(), 2);
    assert_eq!(s.increment_lazily("quota/t", 1).unwrap(), 3);
    s.commit(vec![put("a", b"x")], vec![]).unwrap();
    let crashed = dir.path().join("crashed");
    copy_dir(&path, &crashed);
    let reopened = SledStore::open(&crashed).unwrap();
    assert_eq!(
        reopened.get("quota/t").unwrap(),
        Some(3u64.to_be_bytes().to_vec())
    );
    assert_eq!(MemoryStore::default().increment_lazily("q", 4).unwrap(), 4);
}
