//! The report feed's dedupe marks: one store entry per committed chunk (not one per row), read
//! back by a feed that starts again on the same store, and marks written one per row by earlier
//! versions still recognised (and moved into the grouped layout) after an upgrade. Driven by hand
//! against the simulator and an in-memory store, as the poller drives it.

use std::collections::HashSet;
use std::sync::Arc;

use ccdc::event::report::ReportKind;
use ccdc::event::Event;
use ccdc::feed::{Feed, PollOutcome};
use ccdc::reports::{Mode, ReportFeed, ReportPlan};
use ccdc::simulator::reports::generated_row;
use ccdc::simulator::{SimMode, SimServer, SimState};
use ccdc::sources::wolkvox::WolkvoxClient;
use ccdc::store::{MemoryStore, Store, Write};
use chrono::NaiveDateTime;

/// Eight hours at one row per second: 28,800 rows, one window, three chunks.
const HOURS: i64 = 8;

fn from() -> NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(2026, 11, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap()
}

async fn simulator(token_env: &str) -> SimServer {
    let state = SimState::new("marks-token", SimMode::Scripted(vec![]));
    state.set_report_generation(1, 60_000);
    std::env::set_var(token_env, "marks-token");
    SimServer::start("127.0.0.1:0".parse().unwrap(), state)
        .await
        .unwrap()
}

/// A backfill feed of the four hours on `store`, restored from it as the poller does.
fn feed(sim: &SimServer, token_env: &str, store: &Arc<MemoryStore>) -> ReportFeed {
    let client = WolkvoxClient::new(&ccdc::simulator::wolkvox_source(
        "marks",
        &sim.base_url(),
        token_env,
    ))
    .unwrap();
    let plan = ReportPlan::past_range(ReportKind::Chat1, chrono::Duration::hours(HOURS));
    let mode = Mode::Backfill {
        from: from(),
        to: from() + chrono::Duration::hours(HOURS),
    };
    let mut feed = ReportFeed::new(client, store.clone(), plan, mode);
    feed.restore(&**store).unwrap();
    feed
}

/// One poll committed as the poller commits it: the identities it published, and `more`.
async fn step(feed: &mut ReportFeed, store: &MemoryStore, commit: bool) -> (Vec<String>, bool) {
    let PollOutcome::Commit {
        writes,
        events,
        more,
        ..
    } = feed.poll(1_800_000_000_000).await.unwrap()
    else {
        panic!("expected a commit")
    };
    let ids = events
        .iter()
        .map(|e| match e {
            Event::ReportRow(r) => r.identity.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    if commit {
        let events = events.iter().map(ccdc::store::outbox::encode).collect();
        store.commit(writes, events).unwrap();
        feed.committed();
    }
    (ids, more)
}

async fn drain(feed: &mut ReportFeed, store: &MemoryStore) -> Vec<String> {
    let mut published = Vec::new();
    loop {
        let (ids, more) = step(feed, store, true).await;
        published.extend(ids);
        if !more {
            return published;
        }
    }
}

fn unique(ids: &[String]) -> HashSet<&str> {
    let set: HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(set.len(), ids.len(), "a row was published twice");
    set
}

#[tokio::test]
async fn a_chunks_marks_are_one_entry_and_a_restarted_feed_knows_them() {
    let sim = simulator("MARKS_TOKEN_A").await;
    let store = Arc::new(MemoryStore::default());
    let mut first = feed(&sim, "MARKS_TOKEN_A", &store);
    let (mut published, more) = step(&mut first, &store, true).await;
    assert!(more);
    let groups = store.scan_prefix("marks/marks/chat_1/").unwrap();
    assert_eq!(groups.len(), 1, "one entry for the chunk's marks");
    assert!(
        store.scan_prefix("seen/").unwrap().is_empty(),
        "none per row"
    );
    // The process ends before the next chunk; a new one pulls the window again.
    drop(first);
    let mut again = feed(&sim, "MARKS_TOKEN_A", &store);
    let mut chunks = 0;
    loop {
        let (ids, more) = step(&mut again, &store, true).await;
        if chunks == 0 {
            assert!(
                ids.is_empty(),
                "the first chunk's rows are known by their marks"
            );
        }
        chunks += 1;
        published.extend(ids);
        if !more {
            break;
        }
    }
    assert!(chunks >= 3, "{chunks}");
    assert_eq!(unique(&published).len(), (HOURS * 3600) as usize);
    assert_eq!(
        store.scan_prefix("marks/marks/chat_1/").unwrap().len(),
        chunks,
        "one entry per chunk with new rows (the repeated first chunk had none)"
    );
    // The range pulled once more (as a look-back would): nothing new.
    let mode = Mode::Backfill {
        from: from(),
        to: from() + chrono::Duration::hours(HOURS),
    };
    let cursor = ccdc::reports::cursor_key("marks", ReportKind::Chat1, mode);
    store.commit(vec![Write::Delete(cursor)], vec![]).unwrap();
    let mut third = feed(&sim, "MARKS_TOKEN_A", &store);
    assert!(drain(&mut third, &store).await.is_empty());
}

#[tokio::test]
async fn rows_marked_one_by_one_by_an_earlier_version_are_not_published_again() {
    let sim = simulator("MARKS_TOKEN_B").await;
    let store = Arc::new(MemoryStore::default());
    // The first three hours' rows, marked as earlier versions marked them: one JSON entry per
    // row (more than the first chunk holds: marks of rows in later chunks are found too).
    let tz: chrono_tz::Tz = "America/Bogota".parse().unwrap();
    let legacy: Vec<Write> = (0..3 * 3600)
        .map(|s| {
            let row = generated_row("chat_1", from() + chrono::Duration::seconds(s));
            let text = serde_json::to_string(&row).unwrap();
            let d = ccdc::sources::wolkvox::report_rows::decode(ReportKind::Chat1, &text, tz);
            Write::Put(
                format!("seen/marks/chat_1/{}", d.identity.unwrap()),
                format!(r#"{{"hash":"{}","at":1799999999000}}"#, d.hash).into_bytes(),
            )
        })
        .collect();
    store.commit(legacy, vec![]).unwrap();
    let mut feed = feed(&sim, "MARKS_TOKEN_B", &store);
    assert!(
        store.scan_prefix("seen/").unwrap().is_empty(),
        "moved at restore"
    );
    let published = drain(&mut feed, &store).await;
    let set = unique(&published);
    assert_eq!(
        set.len(),
        (HOURS as usize - 3) * 3600,
        "only the hours not marked before"
    );
    assert!(!set.contains("c-20261101025959") && set.contains("c-20261101030000"));
}

#[tokio::test]
async fn rows_sharing_a_conn_id_are_each_published_once_however_often_pulled() {
    // A chat handled by two agents (transferred), listed once per agent under one conn_id.
    let sim = simulator("MARKS_TOKEN_C").await;
    sim.state.set_report_generation(0, 60_000);
    for (agent, at) in [("1001", 60), ("1002", 300)] {
        let at = from() + chrono::Duration::seconds(at);
        let mut row = generated_row("chat_1", at);
        row.insert("conn_id".into(), "shared-7".into());
        row.insert("agent_id".into(), agent.into());
        sim.state.add_report_row("chat_1", at, row);
    }
    let store = Arc::new(MemoryStore::default());
    let mut first = feed(&sim, "MARKS_TOKEN_C", &store);
    assert_eq!(drain(&mut first, &store).await, ["shared-7", "shared-7"]);
    // The range pulled again, twice (as look-backs would): each row is known by its mark.
    let mode = Mode::Backfill {
        from: from(),
        to: from() + chrono::Duration::hours(HOURS),
    };
    let cursor = ccdc::reports::cursor_key("marks", ReportKind::Chat1, mode);
    for _ in 0..2 {
        store
            .commit(vec![Write::Delete(cursor.clone())], vec![])
            .unwrap();
        let mut again = feed(&sim, "MARKS_TOKEN_C", &store);
        assert!(drain(&mut again, &store).await.is_empty());
    }
}

/// The vendor refuses a window for its size (diagram_9's page: "if your query exceeds 6000
/// records, reduce the date range", as an error envelope): the window is split and its halves
/// pulled, every row once, instead of the same window asked again at every poll.
#[tokio::test]
async fn a_window_the_vendor_refuses_for_its_size_is_split() {
    let sim = simulator("MARKS_TOKEN_R").await;
    sim.state.inject_at(
        ccdc::simulator::Route::WolkvoxReports,
        ccdc::simulator::Fault::RangeTooLarge,
        1,
    );
    let store = Arc::new(MemoryStore::default());
    let mut feed = feed(&sim, "MARKS_TOKEN_R", &store);
    let first = feed.poll(1_800_000_000_000).await.unwrap();
    assert!(
        matches!(first, PollOutcome::Idle { more: true }),
        "split, not failed"
    );
    let published = drain(&mut feed, &store).await;
    assert_eq!(unique(&published).len(), (HOURS * 3600) as usize);
    assert_eq!(
        sim.state
            .requests_on(ccdc::simulator::Route::WolkvoxReports),
        3,
        "the refused window, then its two halves"
    );
}
