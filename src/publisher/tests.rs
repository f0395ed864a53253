use super::*;
use crate::config::TopicsConfig as Topics;
use crate::encode::JsonEncoder;
use crate::sink::MemorySink;
use crate::store::MemoryStore;

fn ev(i: usize) -> Vec<u8> {
    let e = crate::event::started_for_tests(&format!("id-{i}"), &format!("c{i}"));
    crate::store::outbox::encode(&e)
}

fn setup(n: usize) -> (Arc<MemoryStore>, MemorySink, Publisher) {
    let store = Arc::new(MemoryStore::default());
    store
        .commit(vec![], (0..n).map(ev).collect::<Vec<_>>())
        .unwrap();
    let sink = MemorySink::default();
    let p = publisher(&store, &sink, None);
    (store, sink, p)
}

fn ids(sink: &MemorySink) -> Vec<String> {
    sink.delivered()
        .iter()
        .map(|r| r.header("ce_id").unwrap_or_default().to_string())
        .collect()
}

async fn drain(p: Publisher) -> PublisherReport {
    let stop = CancellationToken::new();
    stop.cancel();
    tokio::time::timeout(
        Duration::from_secs(10),
        p.run(stop, CancellationToken::new()),
    )
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test]
async fn delivers_everything_in_order_and_empties_the_outbox() {
    let (store, sink, p) = setup(50);
    let report = drain(p).await;
    assert_eq!(
        report,
        PublisherReport {
            delivered: 50,
            left_in_outbox: 0
        }
    );
    assert_eq!(
        ids(&sink),
        (0..50).map(|i| format!("id-{i}")).collect::<Vec<_>>()
    );
    assert_eq!(store.outbox_len(), 0);
}

#[tokio::test]
async fn failed_delivery_is_resent_and_nothing_is_lost() {
    let (store, sink, p) = setup(20);
    sink.fail_next(3);
    let report = drain(p).await;
    assert_eq!(report.left_in_outbox, 0);
    assert_eq!(store.outbox_len(), 0);
    let got = ids(&sink);
    // Every id arrives; the failed ones arrive (once) after the retry.
    let mut uniq = got.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 20);
    assert_eq!(
        got.len(),
        20,
        "failed sends were not delivered, so no duplicates here"
    );
    // The first three failed: they come after the rest of the first batch.
    assert_eq!(got[0], "id-3");
}

#[tokio::test]
async fn queue_full_is_back_pressure_not_loss() {
    let (_store, sink, p) = setup(30);
    sink.queue_full_next(5);
    let report = drain(p).await;
    assert_eq!(report.delivered, 30);
    assert_eq!(
        ids(&sink),
        (0..30).map(|i| format!("id-{i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        sink.sends(),
        35,
        "each QueueFull was retried with the same record"
    );
}

#[tokio::test]
async fn abort_leaves_undelivered_entries_in_the_outbox() {
    let (store, _sink, p) = setup(5);
    let abort = CancellationToken::new();
    abort.cancel();
    let r = p.run(CancellationToken::new(), abort).await.unwrap();
    assert_eq!(
        r,
        PublisherReport {
            delivered: 0,
            left_in_outbox: 5
        }
    );
    assert_eq!(store.outbox_len(), 5);
}

fn huge(i: usize) -> Vec<u8> {
    let mut e = crate::event::started_for_tests(&format!("id-{i}"), &format!("c{i}"));
    if let Event::Interaction(x) = &mut e {
        x.subject = Some("x".repeat(50_000));
    }
    crate::store::outbox::encode(&e)
}

fn publisher(
    store: &Arc<MemoryStore>,
    sink: &MemorySink,
    health: Option<Arc<Health>>,
) -> Publisher {
    Publisher {
        store: store.clone(),
        recent: None,
        encoder: Arc::new(JsonEncoder::new(Topics::default())),
        sink: Arc::new(sink.clone()),
        notify: Arc::new(Notify::new()),
        max_in_flight: 7,
        max_backoff: Duration::from_millis(20),
        health,
    }
}

fn on(sink: &MemorySink, topic: &str) -> Vec<serde_json::Value> {
    sink.delivered()
        .iter()
        .filter(|r| r.topic == topic)
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect()
}

#[tokio::test]
async fn a_record_the_broker_refuses_goes_to_the_dead_letter_topic_and_the_rest_flows() {
    let store = Arc::new(MemoryStore::default());
    store
        .commit(vec![], vec![ev(0), huge(1), ev(2), ev(3)])
        .unwrap();
    let sink = MemorySink::default();
    sink.reject_larger_than(40_000);
    let report = drain(publisher(&store, &sink, None)).await;
    assert_eq!(report.left_in_outbox, 0);
    let topics = Topics::default();
    let ids: Vec<String> = on(&sink, &topics.interactions)
        .iter()
        .map(|v| v["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["id-0", "id-2", "id-3"], "the others, in order");
    let dead = on(&sink, &topics.dead_letter);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["original_event_id"], "id-1");
    assert_eq!(dead[0]["original_topic"], topics.interactions.as_str());
    assert_eq!(dead[0]["original_key"], "s/c1");
    assert_eq!(dead[0]["report"], "interaction-started");
    assert!(dead[0]["error"].as_str().unwrap().contains("too large"));
    let raw = dead[0]["raw"].as_str().unwrap();
    assert!(
        raw.contains("xxxx") && raw.ends_with("more bytes]"),
        "cut to fit"
    );
}

#[tokio::test]
async fn refused_on_both_topics_or_unreadable_it_is_kept_aside_and_reported() {
    let store = Arc::new(MemoryStore::default());
    let unreadable = vec![9, b'{'];
    store
        .commit(vec![], vec![ev(0), unreadable, ev(2)])
        .unwrap();
    let topics = Topics::default();
    let sink = MemorySink::default();
    sink.refuse_topic(&topics.dead_letter);
    sink.reject_larger_than(40_000);
    store.commit(vec![], vec![huge(3), ev(4)]).unwrap();
    let health = Health::new(store.clone(), 1_000, 3);
    let report = drain(publisher(&store, &sink, Some(health.clone()))).await;
    assert_eq!(report.left_in_outbox, 0, "nothing blocks the outbox");
    let ids: Vec<String> = on(&sink, &topics.interactions)
        .iter()
        .map(|v| v["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["id-0", "id-2", "id-4"]);
    let aside = store
        .scan_prefix(crate::store::outbox::ASIDE_PREFIX)
        .unwrap();
    assert_eq!(
        aside.len(),
        2,
        "the unreadable entry and the twice-refused one"
    );
    let reasons: Vec<String> = aside
        .iter()
        .map(|(_, v)| {
            serde_json::from_slice::<crate::store::outbox::Aside>(v)
                .unwrap()
                .reason
        })
        .collect();
    assert!(
        reasons[0].contains("unknown encoding version 9"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("dead letter"), "{reasons:?}");
    let not_ready = health.readiness().unwrap_err().join("; ");
    assert!(not_ready.contains("2 outbox entries"), "{not_ready}");
}

/// While the store is closed after an I/O error (a full disk), the publisher waits for it instead
/// of stopping ccdc, and delivers everything once it is back.
#[tokio::test]
async fn a_failing_store_is_waited_for_and_everything_is_delivered_after() {
    let (store, sink, p) = setup(10);
    store.set_health(crate::store::StoreHealth::Failing(
        "state store: write failed: No space left on device".into(),
    ));
    let stop = CancellationToken::new();
    let task = tokio::spawn(p.run(stop.clone(), CancellationToken::new()));
    // It meets the failing store several times (back-off of 100 ms and up)...
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !task.is_finished(),
        "the publisher stopped on a retryable store error"
    );
    assert!(sink.delivered().is_empty());
    // ...and delivers all once the store is back.
    store.set_health(crate::store::StoreHealth::Ok);
    stop.cancel();
    let report = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(report.left_in_outbox, 0);
    assert_eq!(
        ids(&sink),
        (0..10).map(|i| format!("id-{i}")).collect::<Vec<_>>()
    );
}

/// A store unusable in this process is fatal: the publisher stops, and ccdc exits with the reason.
#[tokio::test]
async fn an_unusable_store_stops_the_publisher_with_the_reason() {
    let (store, _sink, p) = setup(3);
    store.set_health(crate::store::StoreHealth::Unusable("cannot close".into()));
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        p.run(CancellationToken::new(), CancellationToken::new()),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(matches!(err, StoreError::Unusable(_)), "{err}");
}

/// Entries `0..n` committed, with the events a committer would have kept for them, except that
/// the kept event of entry `i` says `kept-i` where its bytes say `id-i`: which one is published
/// shows where the publisher took it from.
fn with_kept(n: usize) -> (Arc<MemoryStore>, Arc<Recent>) {
    let store = Arc::new(MemoryStore::default());
    let seqs = store
        .commit_numbered(vec![], (0..n).map(ev).collect())
        .unwrap();
    let recent = Arc::new(Recent::default());
    recent.offer(seqs.into_iter().enumerate().map(|(i, seq)| {
        let kept = crate::event::started_for_tests(&format!("kept-{i}"), &format!("c{i}"));
        (seq, kept, 100)
    }));
    (store, recent)
}

#[tokio::test]
async fn kept_events_are_published_in_place_of_their_bytes_by_exact_entry() {
    let (store, recent) = with_kept(6);
    // Entry 2 was delivered meanwhile (e.g. by an earlier round): its kept event is skipped.
    store.outbox_remove(&[2]).unwrap();
    let sink = MemorySink::default();
    let mut p = publisher(&store, &sink, None);
    p.recent = Some(recent.clone());
    let report = drain(p).await;
    assert_eq!(report.delivered, 5);
    assert_eq!(
        ids(&sink),
        ["kept-0", "kept-1", "kept-3", "kept-4", "kept-5"]
    );
    assert!(recent.is_empty(), "every kept event taken or dropped");
}

#[tokio::test]
async fn entries_not_kept_are_decoded_and_a_resend_decodes_what_was_taken_before() {
    let (store, recent) = with_kept(4);
    // Committed after the kept ones, without keeping: decoded from their bytes.
    store.commit(vec![], vec![ev(4), ev(5)]).unwrap();
    let sink = MemorySink::default();
    sink.fail_next(1);
    let mut p = publisher(&store, &sink, None);
    p.recent = Some(recent.clone());
    let report = drain(p).await;
    assert_eq!(report.left_in_outbox, 0);
    // Entry 0's send failed, the others of the first pass were delivered; entry 0 is resent, and
    // decoded from the store this time (its kept event was taken on the first pass).
    assert_eq!(
        ids(&sink),
        ["kept-1", "kept-2", "kept-3", "id-4", "id-5", "id-0"]
    );
    assert!(recent.is_empty());
}

/// A store whose outbox counts an entry that cannot be read yet (a commit being made durable),
/// counting the publisher's reads of it.
#[derive(Default)]
struct Flushing {
    reads: std::sync::atomic::AtomicUsize,
}

impl crate::store::Store for Flushing {
    fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
    fn commit_numbered(
        &self,
        _: Vec<crate::store::Write>,
        _: Vec<Vec<u8>>,
    ) -> Result<Vec<u64>, StoreError> {
        Ok(vec![])
    }
    fn scan_prefix(&self, _: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(vec![])
    }
    fn increment(&self, _: &str, by: u64) -> Result<u64, StoreError> {
        Ok(by)
    }
    fn outbox_after(
        &self,
        _: Option<u64>,
        _: usize,
    ) -> Result<Vec<crate::store::OutboxEntry>, StoreError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(vec![])
    }
    fn outbox_remove(&self, _: &[u64]) -> Result<(), StoreError> {
        Ok(())
    }
    fn outbox_len(&self) -> usize {
        1
    }
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

// Two workers: a spinning publisher would starve a single-threaded runtime's timer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_not_readable_yet_is_waited_for_not_spun_on() {
    let store = Arc::new(Flushing::default());
    let sink = MemorySink::default();
    let p = Publisher {
        store: store.clone(),
        ..publisher(&Arc::new(MemoryStore::default()), &sink, None)
    };
    let abort = CancellationToken::new();
    let task = tokio::spawn(p.run(CancellationToken::new(), abort.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    abort.cancel();
    task.await.unwrap().unwrap();
    let reads = store.reads.load(std::sync::atomic::Ordering::SeqCst);
    // It waits for new work (a second at most) between reads; spinning read thousands of times.
    assert!(reads <= 10, "{reads} reads in 300 ms");
}

/// A refused record whose dead letter fails retryably is dead-lettered again on the resend, not
/// set aside as if its dead letter had been refused.
#[tokio::test]
async fn a_dead_letter_that_failed_for_now_is_sent_again() {
    let (store, sink, p) = setup(1);
    let topics = Topics::default();
    sink.refuse_topic(&topics.interactions);
    // The next delivery that is not refused, the dead letter's, fails retryably once.
    sink.fail_next(1);
    let report = drain(p).await;
    assert_eq!(report.left_in_outbox, 0);
    assert_eq!(on(&sink, &topics.dead_letter).len(), 1);
    assert!(store
        .scan_prefix(crate::store::outbox::ASIDE_PREFIX)
        .unwrap()
        .is_empty());
}
