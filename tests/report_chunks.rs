//! A large report window is committed a chunk at a time, its rows kept in a temporary file
//! meanwhile; the cursor moves with the last chunk only, and a chunk that was not committed makes
//! the window be pulled again without publishing any row twice. The feed is driven by hand
//! against the simulator and an in-memory store (no broker: this is about what gets committed).

use std::collections::HashMap;
use std::sync::Arc;

use ccdc::event::report::ReportKind;
use ccdc::event::Event;
use ccdc::feed::{Feed, PollOutcome};
use ccdc::reports::{cursor_key, Mode, ReportFeed, ReportPlan, CHUNK_BYTES, CHUNK_ROWS};
use ccdc::simulator::{SimMode, SimServer, SimState};
use ccdc::sources::wolkvox::WolkvoxClient;
use ccdc::store::{MemoryStore, Store, Write};

/// Eight hours at one row per second: 28,800 rows, one window, three chunks.
const HOURS: i64 = 8;

struct Run {
    _sim: SimServer,
    feed: ReportFeed,
    store: Arc<MemoryStore>,
    spill: tempfile::TempDir,
    key: String,
}

async fn start(token_env: &str) -> Run {
    let state = SimState::new("chunk-token", SimMode::Scripted(vec![]));
    state.set_report_generation(1, 60_000);
    let sim = SimServer::start("127.0.0.1:0".parse().unwrap(), state)
        .await
        .unwrap();
    std::env::set_var(token_env, "chunk-token");
    let client = WolkvoxClient::new(&ccdc::simulator::wolkvox_source(
        "chunks",
        &sim.base_url(),
        token_env,
    ))
    .unwrap();
    let from = chrono::NaiveDate::from_ymd_opt(2026, 11, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap();
    let plan = ReportPlan::past_range(ReportKind::Chat1, chrono::Duration::hours(HOURS));
    let mode = Mode::Backfill {
        from,
        to: from + chrono::Duration::hours(HOURS),
    };
    let store = Arc::new(MemoryStore::default());
    let spill = tempfile::tempdir().unwrap();
    let feed = ReportFeed::new(client, store.clone(), plan, mode)
        .with_spill_dir(spill.path().to_path_buf());
    Run {
        _sim: sim,
        feed,
        store,
        spill,
        key: cursor_key("chunks", ReportKind::Chat1, mode),
    }
}

/// One poll: its events' row identities, whether it wrote the cursor, and `more`.
struct Chunk {
    writes: Vec<Write>,
    events: Vec<Event>,
    cursor: bool,
    more: bool,
}

async fn poll(run: &mut Run) -> Chunk {
    match run.feed.poll(0).await.unwrap() {
        PollOutcome::Commit {
            writes,
            events,
            more,
            ..
        } => Chunk {
            cursor: writes
                .iter()
                .any(|w| matches!(w, Write::Put(k, _) if *k == run.key)),
            writes,
            events,
            more,
        },
        PollOutcome::Hold { reason } => panic!("expected a commit, got a hold: {reason}"),
        PollOutcome::Idle { more } => panic!("expected a commit, got idle (more: {more})"),
    }
}

/// Commit `c` as the poller does, and tell the feed.
fn commit(run: &mut Run, c: Chunk) -> Vec<String> {
    let ids = identities(&c.events);
    let events = c
        .events
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap())
        .collect();
    run.store.commit(c.writes, events).unwrap();
    run.feed.committed();
    ids
}

fn identities(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Event::ReportRow(r) => r.identity.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

/// Every row of the range exactly once.
fn assert_each_row_once(published: &[String]) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in published {
        *counts.entry(id).or_default() += 1;
    }
    assert_eq!(published.len(), (HOURS * 3600) as usize);
    assert!(
        counts.values().all(|&n| n == 1),
        "a row was published twice"
    );
}

#[tokio::test]
async fn a_large_window_is_committed_in_chunks_and_the_cursor_moves_with_the_last() {
    let mut run = start("CHUNK_TOKEN_A").await;
    let mut published = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let c = poll(&mut run).await;
        let (cursor, more, n) = (c.cursor, c.more, c.events.len());
        assert_eq!(cursor, !more, "the cursor moves with the last chunk only");
        assert!(
            run.store.get(&run.key).unwrap().is_none(),
            "no cursor before the last chunk is committed"
        );
        published.extend(commit(&mut run, c));
        sizes.push(n);
        if !more {
            break;
        }
    }
    // Every chunk but the last at a bound: CHUNK_ROWS rows, or CHUNK_BYTES of row text
    // (the simulator's rows are about 500 bytes).
    let full = CHUNK_ROWS.min(CHUNK_BYTES / 600);
    assert!(sizes.len() >= 3, "{sizes:?}");
    let (last, rest) = sizes.split_last().unwrap();
    assert!(
        rest.iter().all(|&n| (full..=CHUNK_ROWS).contains(&n)),
        "{sizes:?}"
    );
    assert!(*last > 0 && *last <= CHUNK_ROWS);
    assert_each_row_once(&published);
    assert!(run.store.get(&run.key).unwrap().is_some());
    // Nothing is left in the spill directory (the 15 MB response was read whole, and its rows
    // kept in memory; a larger one goes through an unnamed temporary file).
    assert_eq!(std::fs::read_dir(run.spill.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn a_chunk_not_committed_makes_the_window_be_pulled_again_without_duplicates() {
    let mut run = start("CHUNK_TOKEN_B").await;
    let first = poll(&mut run).await;
    let mut published = commit(&mut run, first);
    // The second chunk's commit fails: the poller does not call `committed`.
    let lost = poll(&mut run).await;
    assert!(lost.more && !lost.cursor);
    drop(lost);
    // The window is pulled again: the first chunk's rows are known by their dedupe marks.
    let again = poll(&mut run).await;
    assert!(
        again.events.is_empty() && again.more,
        "{}",
        again.events.len()
    );
    commit(&mut run, again);
    loop {
        let c = poll(&mut run).await;
        let more = c.more;
        published.extend(commit(&mut run, c));
        if !more {
            break;
        }
    }
    assert_each_row_once(&published);
    assert!(run.store.get(&run.key).unwrap().is_some());
}
