//! The poll loop's tests: commits, failures, restarts, panics, the start delay.

use super::*;
use crate::diff::{
    diff_interactions_events, ActiveInteraction, InteractionKey, InteractionSnapshot,
};
use crate::event::InteractionEventType::{self, *};
use crate::event::SourceMeta;
use crate::feed::SnapshotFeed;
use crate::sources::scripted::{Scripted, Step};
use crate::store::outbox;
use crate::store::MemoryStore;

fn snap(pairs: &[(&str, &str)]) -> InteractionSnapshot {
    InteractionSnapshot {
        held: Default::default(),
        observed_at: 0,
        interactions: pairs
            .iter()
            .map(|(a, c)| {
                (
                    InteractionKey {
                        interaction_id: c.to_string(),
                        agent_id: a.to_string(),
                    },
                    ActiveInteraction::default(),
                )
            })
            .collect(),
    }
}

fn outbox(store: &MemoryStore) -> Vec<(InteractionEventType, String)> {
    store
        .outbox_after(None, 1000)
        .unwrap()
        .into_iter()
        .map(|(_, b)| match outbox::decode(&b).unwrap() {
            Event::Interaction(e) => (e.event_type, e.interaction_id),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn poller(script: Vec<Step<InteractionSnapshot>>, store: Arc<MemoryStore>) -> Poller {
    let meta = SourceMeta {
        name: "s".into(),
        vendor: "wolkvox".into(),
    };
    let source = Scripted::new(
        meta,
        script,
        diff_interactions_events,
        |s: &InteractionSnapshot| s.interactions.len(),
        |s, at| s.observed_at = at,
    );
    let feed = SnapshotFeed::new(Arc::new(source), 2);
    Poller::new(
        Box::new(feed),
        store,
        Arc::new(Notify::new()),
        Duration::from_secs(1),
        Duration::from_secs(1),
    )
}

#[tokio::test]
async fn failed_poll_commits_nothing_and_next_poll_diffs_against_last_good() {
    let store = Arc::new(MemoryStore::default());
    let mut p = poller(
        vec![
            Step::Snapshot(snap(&[("a", "c1"), ("a", "c2")])),
            Step::Fail("boom"),
            Step::Snapshot(snap(&[("a", "c2")])),
        ],
        store.clone(),
    );
    p.cycle(1).await.unwrap();
    let stored_before = store.get("s/scripted").unwrap();
    assert!(stored_before.is_some());
    assert!(matches!(p.cycle(2).await, Err(FeedError::Source(_))));
    assert_eq!(
        store.get("s/scripted").unwrap(),
        stored_before,
        "state untouched"
    );
    assert_eq!(outbox(&store).len(), 2, "no events from the failed poll");
    p.cycle(3).await.unwrap();
    assert_eq!(
        outbox(&store),
        vec![
            (Started, "c1".into()),
            (Started, "c2".into()),
            (Ended, "c1".into())
        ]
    );
}

#[tokio::test]
async fn after_a_failed_commit_the_feed_diffs_against_what_the_store_holds() {
    let store = Arc::new(MemoryStore::default());
    let meta = SourceMeta {
        name: "s".into(),
        vendor: "wolkvox".into(),
    };
    let source = Scripted::new(
        meta,
        vec![
            Step::Snapshot(snap(&[("a", "c1")])),
            Step::Snapshot(snap(&[("a", "c1")])),
            Step::Snapshot(snap(&[("a", "c1"), ("a", "c2")])),
        ],
        diff_interactions_events,
        |s: &InteractionSnapshot| s.interactions.len(),
        |s, at| s.observed_at = at,
    );
    let health = Health::new(store.clone(), 1_000, 1_000);
    health.set_publishing(true);
    let mut p = Poller::new(
        Box::new(SnapshotFeed::new(Arc::new(source), 2)),
        store.clone(),
        Arc::new(Notify::new()),
        Duration::from_secs(1),
        Duration::from_secs(1),
    )
    .observe(health.clone(), 0);
    // Applied, then reported failed: a flush that failed although the batch reached the disk.
    store.fail_next_commit_after_applying();
    assert!(matches!(p.cycle(1).await, Err(FeedError::Store(_))));
    let reasons = health.readiness().unwrap_err().join(" ");
    assert!(
        reasons.contains("no successful poll yet"),
        "a poll whose commit failed is no success: {reasons}"
    );
    // The store holds c1 (the commit was applied): the same observation derives nothing.
    p.cycle(2).await.unwrap();
    assert_eq!(health.readiness(), Ok(()));
    p.cycle(3).await.unwrap();
    assert_eq!(
        outbox(&store),
        vec![(Started, "c1".into()), (Started, "c2".into())],
        "c1 not started twice"
    );
}

#[tokio::test]
async fn empty_snapshot_must_be_confirmed_before_ending_everything() {
    let store = Arc::new(MemoryStore::default());
    let mut p = poller(
        vec![
            Step::Snapshot(snap(&[("a", "c1")])),
            Step::Snapshot(snap(&[])),
            Step::Snapshot(snap(&[("a", "c1")])),
            Step::Snapshot(snap(&[])),
            Step::Snapshot(snap(&[])),
        ],
        store.clone(),
    );
    p.cycle(1).await.unwrap();
    assert!(matches!(
        p.cycle(2).await.unwrap(),
        CycleOutcome::Held { .. }
    ));
    // The glitch healed: nothing happened.
    p.cycle(3).await.unwrap();
    assert_eq!(outbox(&store).len(), 1);
    // Two empty polls in a row: believed.
    assert!(matches!(
        p.cycle(4).await.unwrap(),
        CycleOutcome::Held { .. }
    ));
    assert_eq!(
        p.cycle(5).await.unwrap(),
        CycleOutcome::Committed {
            size: 0,
            events: 1,
            more: false
        }
    );
    assert_eq!(
        outbox(&store),
        vec![(Started, "c1".into()), (Ended, "c1".into())]
    );
}

#[tokio::test(start_paused = true)]
async fn the_first_poll_waits_for_the_start_delay_and_no_longer() {
    let store = Arc::new(MemoryStore::default());
    let p = poller(vec![Step::Snapshot(snap(&[("a", "c1")]))], store.clone())
        .start_after(Duration::from_secs(5));
    let stop = CancellationToken::new();
    let task = tokio::spawn(p.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(4_900)).await;
    assert!(outbox(&store).is_empty(), "not before its delay");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(outbox(&store), vec![(Started, "c1".into())]);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn restart_resumes_from_the_stored_state() {
    let store = Arc::new(MemoryStore::default());
    let mut p = poller(vec![Step::Snapshot(snap(&[("a", "c1")]))], store.clone());
    p.cycle(1).await.unwrap();
    let mut p2 = poller(
        vec![Step::Snapshot(snap(&[("a", "c1"), ("b", "c9")]))],
        store.clone(),
    );
    p2.load().unwrap();
    p2.cycle(2).await.unwrap();
    let evs: Vec<Event> = store
        .outbox_after(None, 10)
        .unwrap()
        .into_iter()
        .map(|(_, b)| outbox::decode(&b).unwrap())
        .collect();
    assert_eq!(evs.len(), 2);
    let Event::Interaction(last) = &evs[1] else {
        panic!("{:?}", evs[1])
    };
    assert_eq!(
        (
            last.interaction_id.as_str(),
            last.initial,
            last.previous_observed_at
        ),
        ("c9", false, Some(1))
    );
}

#[tokio::test]
async fn a_panicking_poll_is_a_reported_failure_and_the_feed_goes_on() {
    fn diff_or_panic(
        meta: &SourceMeta,
        previous: Option<&InteractionSnapshot>,
        current: &InteractionSnapshot,
    ) -> Vec<Event> {
        let boom = InteractionKey {
            interaction_id: "boom".into(),
            agent_id: "a".into(),
        };
        assert!(
            !current.interactions.contains_key(&boom),
            "a bug met odd data"
        );
        diff_interactions_events(meta, previous, current)
    }
    let store = Arc::new(MemoryStore::default());
    let meta = SourceMeta {
        name: "s".into(),
        vendor: "wolkvox".into(),
    };
    // A few polls in a row meet the odd data, then it is gone.
    let mut script = vec![Step::Snapshot(snap(&[("a", "c1")]))];
    script.extend((0..10).map(|_| Step::Snapshot(snap(&[("a", "boom")]))));
    script.push(Step::Snapshot(snap(&[("a", "c2")])));
    let source = Scripted::new(
        meta,
        script,
        diff_or_panic,
        |s| s.interactions.len(),
        |s, at| s.observed_at = at,
    );
    let health = Health::new(store.clone(), 1_000, 1_000);
    health.set_publishing(true);
    let poller = Poller::new(
        Box::new(SnapshotFeed::new(Arc::new(source), 1)),
        store.clone(),
        Arc::new(Notify::new()),
        Duration::from_millis(20),
        Duration::from_millis(20),
    )
    .observe(health.clone(), 0);
    let stop = CancellationToken::new();
    let task = tokio::spawn(poller.run(stop.clone()));
    // The panic is reported on readiness...
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let panicked = |h: &Health| {
        h.readiness()
            .is_err_and(|r| r.join(" ").contains("panicked"))
    };
    while !panicked(&health) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            health.readiness()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // ...and the feed goes on: the next snapshot is diffed against the last good one.
    while outbox(&store).len() < 3 {
        assert!(std::time::Instant::now() < deadline, "the feed stopped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    task.await.unwrap();
    assert_eq!(
        outbox(&store),
        vec![
            (Started, "c1".into()),
            (Ended, "c1".into()),
            (Started, "c2".into())
        ]
    );
    assert!(health.readiness().is_ok(), "cleared by the next success");
}

#[tokio::test(start_paused = true)]
async fn a_report_window_overflowing_at_its_minimum_span_is_tried_again_only_an_hour_later() {
    let store = Arc::new(MemoryStore::default());
    let p = poller(
        vec![Step::Overflow, Step::Snapshot(snap(&[("a", "c1")]))],
        store.clone(),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(p.run(stop.clone()));
    // Not at the back-off's pace (a second here): the same window would overflow again, and each
    // try spends vendor calls.
    tokio::time::sleep(Duration::from_secs(3_590)).await;
    assert!(outbox(&store).is_empty(), "not tried again within the hour");
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(outbox(&store), vec![(Started, "c1".into())]);
    stop.cancel();
    task.await.unwrap();
}
