use std::sync::atomic::Ordering;

use async_trait::async_trait;
use chrono::NaiveDate;

use super::*;
use crate::event::report::ReportKind;
use crate::feed::{Feed, FeedError, PollOutcome};
use crate::reports::{cursor_key, Mode};
use crate::store::{MemoryStore, Store};

fn at(h: u32, m: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 11, 21)
        .unwrap()
        .and_hms_opt(h, m, 0)
        .unwrap()
}

fn text(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn cp(source: &str, feed: &str, cursor: NaiveDateTime) -> Checkpoint {
    Checkpoint {
        version: VERSION,
        source: source.into(),
        feed: feed.into(),
        cursor: text(cursor),
        written_at: 1,
        replica: "0/1".into(),
    }
}

#[test]
fn checkpoint_keys_map_to_the_cursor_keys_of_live_and_backfill_feeds() {
    let live = cursor_key("wv", ReportKind::Chat1, Mode::Live);
    assert_eq!(feed_of(&live), Some(("wv".into(), "chat_1".into())));
    let range = Mode::Backfill {
        from: at(0, 0),
        to: at(12, 0),
    };
    let backfill = cursor_key("wv", ReportKind::Diagram9, range);
    let (source, feed) = feed_of(&backfill).unwrap();
    assert_eq!(
        (source.as_str(), feed.as_str()),
        ("wv", "diagram_9/backfill/20261121000000-20261121120000")
    );
    assert_eq!(state_key_of(&source, &feed), backfill);
    assert_eq!(state_key_of("wv", "chat_1"), live);
    assert_eq!(cp("wv", "chat_1", at(1, 0)).key(), "wv/chat_1");
    for other in [
        "wv/interactions",
        "report/wv/chat_1",
        "seen/wv/chat_1/x",
        "quota/1/cursor",
    ] {
        assert_eq!(feed_of(other), None, "{other}");
    }
}

#[test]
fn the_newest_cursor_per_key_wins_a_tombstone_forgets_and_garbage_is_skipped() {
    let rec = |c: &Checkpoint| (c.key(), Some(c.encode()));
    let records = vec![
        rec(&cp("a", "chat_1", at(10, 0))),
        rec(&cp("a", "chat_1", at(9, 0))), // an older one written late: not a step back
        rec(&cp("b", "chat_1", at(8, 0))),
        ("b/chat_1".into(), None),
        rec(&cp("c", "chat_1", at(7, 0))),
        ("c/chat_1".into(), Some(b"{not json".to_vec())),
        ("d/chat_1".into(), Some(cp("e", "chat_1", at(7, 0)).encode())),
        (
            "f/chat_1".into(),
            Some(br#"{"version":1,"source":"f","feed":"chat_1","cursor":"yesterday","written_at":1,"replica":"0/1"}"#.to_vec()),
        ),
    ];
    let map = newest("t", records);
    assert_eq!(map.keys().collect::<Vec<_>>(), ["a/chat_1", "c/chat_1"]);
    assert_eq!(map["a/chat_1"].cursor, "2026-11-21 10:00:00");
    assert_eq!(map["c/chat_1"].cursor, "2026-11-21 07:00:00");
}

#[test]
fn the_value_is_the_documented_json() {
    let v: serde_json::Value =
        serde_json::from_slice(&cp("wv", "chat_1", at(10, 5)).encode()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"version": 1, "source": "wv", "feed": "chat_1",
            "cursor": "2026-11-21 10:05:00", "written_at": 1, "replica": "0/1"})
    );
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../schemas/checkpoint.schema.json")).unwrap();
    let props = schema["properties"].as_object().unwrap();
    let fields: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        props.keys().collect::<Vec<_>>(),
        fields,
        "the schema lists every field"
    );
}

fn writer(store: &Arc<MemoryStore>, log: &Arc<MemoryLog>, sources: &[&str]) -> Writer {
    Writer::new(
        store.clone(),
        log.clone(),
        Replica::new(1, 3).unwrap(),
        sources.iter().map(|s| s.to_string()).collect(),
    )
}

fn put_cursor(store: &MemoryStore, source: &str, t: NaiveDateTime, events: usize) {
    let key = cursor_key(source, ReportKind::Chat1, Mode::Live);
    store
        .commit(
            vec![Write::Put(key, text(t).into_bytes())],
            vec![b"event".to_vec(); events],
        )
        .unwrap();
}

/// Acknowledge every outbox entry (as the publisher does on the broker's ack).
fn ack_all(store: &MemoryStore) {
    let seqs: Vec<u64> = store
        .outbox_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    store.outbox_remove(&seqs).unwrap();
}

#[tokio::test]
async fn a_cursor_is_written_only_once_its_window_events_are_acknowledged() {
    let store = Arc::new(MemoryStore::default());
    let log = Arc::new(MemoryLog::default());
    let mut w = writer(&store, &log, &["wv"]);
    put_cursor(&store, "wv", at(10, 0), 3);
    assert_eq!(
        w.tick(5).await.unwrap(),
        0,
        "its 3 events are still in the outbox"
    );
    // A later window commits meanwhile: the noted cursor still waits for the first 3 only.
    put_cursor(&store, "wv", at(11, 0), 2);
    assert_eq!(w.tick(6).await.unwrap(), 0);
    store.outbox_remove(&[0, 1]).unwrap();
    assert_eq!(
        w.tick(7).await.unwrap(),
        0,
        "one of them is not acknowledged"
    );
    store.outbox_remove(&[2]).unwrap();
    assert_eq!(w.tick(8).await.unwrap(), 1);
    assert_eq!(log.newest()["wv/chat_1"].cursor, "2026-11-21 10:00:00");
    assert_eq!(log.newest()["wv/chat_1"].replica, "1/3");
    // The 11:00 cursor: noted now, written once its own events are acknowledged.
    assert_eq!(w.tick(9).await.unwrap(), 0);
    ack_all(&store);
    assert_eq!(w.tick(10).await.unwrap(), 1);
    assert_eq!(log.newest()["wv/chat_1"].cursor, "2026-11-21 11:00:00");
    assert_eq!(w.tick(11).await.unwrap(), 0, "nothing new: nothing written");
    assert_eq!(log.records.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn only_this_replicas_sources_and_only_cursors_newer_than_the_topic_are_written() {
    let store = Arc::new(MemoryStore::default());
    let log = Arc::new(MemoryLog::default());
    let mut w = writer(&store, &log, &["mine", "behind"]);
    w.seed([&cp("behind", "chat_1", at(12, 0))]);
    put_cursor(&store, "mine", at(10, 0), 0);
    put_cursor(&store, "behind", at(10, 0), 0); // stale: another replica checkpointed 12:00
    put_cursor(&store, "theirs", at(10, 0), 0); // a source another replica owns now
    let backfill = Mode::Backfill {
        from: at(0, 0),
        to: at(6, 0),
    };
    store
        .commit(
            vec![Write::Put(
                cursor_key("mine", ReportKind::Diagram9, backfill),
                text(at(3, 0)).into_bytes(),
            )],
            vec![],
        )
        .unwrap();
    assert_eq!(w.tick(1).await.unwrap(), 2);
    let written = log.newest();
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        [
            "mine/chat_1",
            "mine/diagram_9/backfill/20261121000000-20261121060000"
        ]
    );
}

#[tokio::test]
async fn a_failed_write_is_retried_with_the_same_cursors() {
    let store = Arc::new(MemoryStore::default());
    let log = Arc::new(MemoryLog::default());
    let mut w = writer(&store, &log, &["wv"]);
    put_cursor(&store, "wv", at(10, 0), 0);
    log.fail_next.store(1, Ordering::SeqCst);
    assert!(w.tick(1).await.unwrap_err().is_retryable());
    assert_eq!(w.tick(2).await.unwrap(), 1);
    assert_eq!(log.newest()["wv/chat_1"].cursor, "2026-11-21 10:00:00");
}

/// A report feed stand-in: its state is a cursor under a report cursor key.
struct CursorFeed {
    key: String,
    cursor: Option<String>,
}

#[async_trait]
impl Feed for CursorFeed {
    fn source(&self) -> &str {
        "wv"
    }
    fn vendor(&self) -> &str {
        "wolkvox"
    }
    fn endpoint(&self) -> &str {
        "reports_manager.php?api=chat_1"
    }
    fn state_key(&self) -> String {
        self.key.clone()
    }
    fn restore(&mut self, store: &dyn Store) -> Result<(), StoreError> {
        self.cursor = store
            .get(&self.key)?
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        Ok(())
    }
    async fn poll(&mut self, _: i64) -> Result<PollOutcome, FeedError> {
        Ok(PollOutcome::Idle { more: false })
    }
    fn committed(&mut self) {}
}

fn poller(store: &Arc<MemoryStore>) -> Poller {
    let feed = CursorFeed {
        key: cursor_key("wv", ReportKind::Chat1, Mode::Live),
        cursor: None,
    };
    Poller::new(
        Box::new(feed),
        store.clone(),
        Arc::new(tokio::sync::Notify::new()),
        Duration::from_secs(1),
        Duration::from_secs(1),
    )
}

fn stored(store: &MemoryStore) -> Option<String> {
    store
        .get(&cursor_key("wv", ReportKind::Chat1, Mode::Live))
        .unwrap()
        .map(|b| String::from_utf8(b).unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_feed_without_a_cursor_resumes_from_the_checkpoint_once_the_topic_answers() {
    let log = Arc::new(MemoryLog::default());
    log.records.lock().unwrap().push((
        "wv/chat_1".into(),
        Some(cp("wv", "chat_1", at(10, 0)).encode()),
    ));
    log.fail_next.store(2, Ordering::SeqCst); // the topic is unreachable twice
    let stop = CancellationToken::new();
    let checkpoints = Checkpoints::start(log.clone(), Replica::SINGLE, &stop);
    let store = Arc::new(MemoryStore::default());
    let mut p = poller(&store);
    p.load().unwrap();
    assert!(checkpoints.resume(&mut p, &stop).await.unwrap());
    assert_eq!(stored(&store).as_deref(), Some("2026-11-21 10:00:00"));

    // A newer local cursor is kept; an older one is moved forward.
    put_cursor(&store, "wv", at(11, 0), 0);
    assert!(checkpoints.resume(&mut p, &stop).await.unwrap());
    assert_eq!(stored(&store).as_deref(), Some("2026-11-21 11:00:00"));
    put_cursor(&store, "wv", at(9, 0), 0);
    assert!(checkpoints.resume(&mut p, &stop).await.unwrap());
    assert_eq!(stored(&store).as_deref(), Some("2026-11-21 10:00:00"));
}

#[tokio::test(start_paused = true)]
async fn without_the_topic_a_report_feed_waits_and_shutdown_ends_the_wait() {
    let log = Arc::new(MemoryLog::default());
    log.fail_next.store(u32::MAX, Ordering::SeqCst);
    let stop = CancellationToken::new();
    let checkpoints = Checkpoints::start(log, Replica::SINGLE, &stop);
    let store = Arc::new(MemoryStore::default());
    let mut p = poller(&store);
    let waited = tokio::time::timeout(Duration::from_secs(120), checkpoints.resume(&mut p, &stop));
    assert!(
        waited.await.is_err(),
        "it must not start without the checkpoints"
    );
    stop.cancel();
    assert!(!checkpoints.resume(&mut p, &stop).await.unwrap());
    assert_eq!(stored(&store), None);
}
