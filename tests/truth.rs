//! The truth benchmark (issue 14), as a test: the whole service in-process ([`run_with`] on the
//! in-memory store and sink, JSON records) against a simulated Wolkvox operation whose ground truth
//! is known to the millisecond ([`TruthWorld`]), its output scored against that truth
//! ([`score::score`]).
//!
//! Asserted: precision (every event names a chat, agent and status that truly were, with bounds that
//! hold the true moment as of the vendor's answer), recall (every stretch of a chat at an agent
//! longer than two poll intervals has its `STARTED` and `ENDED`), and reconciliation (every chat
//! the report listed has its `in_report` record with the report's duration; no `in_report =
//! false` record for a chat the report had). Timing errors are printed, never asserted.
//!
//! Chats last at most 8 intervals, shorter than `settle_delay` minus two intervals: a report pull
//! then always comes after polling committed the chat's end (see the bench for longer chats).
//! One test keeps a fixed ccdc bug fixed: a `settle_delay` that is not a whole number of seconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ccdc::app::{run_with, Parts};
use ccdc::config::Config;
use ccdc::simulator::truth::score::{score, unreconciled, Observed, Score};
use ccdc::simulator::truth::{TruthSpec, TruthWorld};
use ccdc::simulator::{SimMode, SimServer, SimState};
use ccdc::sink::MemorySink;
use ccdc::store::MemoryStore;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "truth-token-5d1a";
const INTERVAL_MS: i64 = 500;

/// The spec of both tests: 12 agents, 10 s of warm-up, 20 s of chats up to 4 s, polled every
/// 500 ms, reports settled after `settle_ms`.
fn spec(settle_ms: i64) -> TruthSpec {
    let now = chrono::Utc::now().timestamp_millis();
    let mut spec = TruthSpec::new(14, 12, now, INTERVAL_MS);
    spec.warmup_ms = 10_000;
    spec.horizon_ms = 20_000;
    spec.max_chat_ms = 8 * INTERVAL_MS;
    spec.settle_ms = settle_ms;
    spec.report_interval_ms = 1_000;
    spec
}

/// Run ccdc against the world of `spec` until every chat is reconciled (or a deadline), and
/// score what it delivered.
async fn run(spec: TruthSpec) -> (Arc<TruthWorld>, Observed, Score) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let world = TruthWorld::new(spec.clone());
    let sim = SimServer::start(
        "127.0.0.1:0".parse().unwrap(),
        SimState::new(TOKEN, SimMode::Truth(world.clone())),
    )
    .await
    .expect("simulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).expect("token file");
    let config = Config::from_toml_str(&spec.ccdc_config(
        &sim.base_url(),
        &token_file.display().to_string(),
        &dir.path().join("state").display().to_string(),
    ))
    .expect("the truth configuration is valid");
    let sink = MemorySink::default();
    let parts = Parts {
        store: Arc::new(MemoryStore::default()),
        sink: Arc::new(sink.clone()),
        registry: None,
        create_topics: None,
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_with(config.clone(), parts, shutdown.clone()));

    // Every chat has ended `max_chat_ms` after the horizon and is settled `settle_delay` later.
    let now = spec.start_ms;
    let last_end = world
        .truth()
        .chats
        .iter()
        .map(|c| c.end_ms)
        .max()
        .unwrap_or(now);
    let deadline = Instant::now()
        + Duration::from_millis((last_end - now + spec.settle_ms + 15_000).max(0) as u64);
    loop {
        let observed = Observed::from_records(&sink.delivered(), &config.topics);
        let waiting = unreconciled(&world, &observed);
        if waiting == 0 && chrono::Utc::now().timestamp_millis() > last_end + 2 * INTERVAL_MS {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("deadline: {waiting} chats not reconciled");
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("ccdc stops in time")
        .expect("task")
        .expect("ccdc ran without error");
    sim.stop().await;

    let observed = Observed::from_records(&sink.delivered(), &config.topics);
    let s = score(&world, &observed);
    let truth = world.truth();
    println!(
        "TRUTH test: {} agents, {} chats ({} transferred), {} status changes",
        spec.agents,
        truth.chats.len(),
        truth.chats.iter().filter(|c| c.segments.len() > 1).count(),
        truth.statuses.values().map(Vec::len).sum::<usize>()
    );
    println!("{}", s.report());
    for v in s.strict_violations.iter().take(5) {
        println!("  at ccdc's own stamp: {v}");
    }
    (world, observed, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccdc_against_a_known_truth() {
    let (world, observed, s) = run(spec(6_000)).await;
    assert_eq!(observed.undecodable, 0, "every record decodes");
    assert!(s.interaction_events > 50 && s.status_events > 50, "{s:#?}");
    assert!(s.violations.is_empty(), "precision: {:#?}", s.violations);
    assert_eq!(s.conflicting_ids, 0, "{:?}", observed.conflicting_ids);
    assert!(s.recall_eligible > 20, "{s:#?}");
    assert!(
        s.recall_missing.is_empty(),
        "recall: {:#?}",
        s.recall_missing
    );
    assert_eq!(
        s.reported,
        world.truth().chats.len(),
        "every chat was reported"
    );
    assert!(
        s.reconciliation_problems.is_empty(),
        "reconciliation: {:#?}",
        s.reconciliation_problems
    );
    assert!(
        s.false_only_polling.is_empty() && s.premature_only_polling.is_empty(),
        "in_report = false for chats the report has: {:#?}, or still going on: {:#?}",
        s.false_only_polling,
        s.premature_only_polling
    );
}

/// ccdc plans report windows from `now − settle_delay` without rounding to the second, so a
/// `settle_delay` of 6.5 s gives windows such as `[10:00:02.5, 10:00:07.5)`; the vendor is asked
/// for `date_ini=…100002&date_end=…100006` (the text is truncated: `[02.0, 07.0)`), while the
/// reconciliation judges the sightings against `[02.5, 07.5)`: a chat that started in
/// `[07.0, 07.5)` is "seen by polling, not in the report" (`in_report = false`, a warning), and the
/// next window lists it. ccdc now plans its windows on whole seconds (this failed before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settle_delay_with_a_fraction_of_a_second_flags_no_reported_chat() {
    let (_, _, s) = run(spec(6_500)).await;
    assert!(s.reported > 50, "{s:#?}");
    assert!(
        s.false_only_polling.is_empty(),
        "in_report = false for chats the report has: {:#?}",
        s.false_only_polling
    );
}
