//! P2, the service's whole report path: the report feed pulls chat_1 windows from the simulator,
//! decodes and de-duplicates the rows, commits them with their dedupe marks and the cursor to the
//! sled outbox, and the publisher encodes and sends them until every one is acknowledged. No
//! target applies to this figure (the P2 is the conversion and producer path); it shows
//! what durability costs on top.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ccdc::config::{KafkaConfig, TopicsConfig};
use ccdc::encode::AvroEncoder;
use ccdc::event::report::ReportKind;
use ccdc::event::Stream;
use ccdc::kafka::KafkaSink;
use ccdc::poller::CycleOutcome;
use ccdc::reports::{Mode, ReportFeed, ReportPlan};
use ccdc::simulator::{SimMode, SimServer, SimState};
use ccdc::sources::wolkvox::WolkvoxClient;
use ccdc::store::{SledStore, Store};
use tokio::sync::Notify;

/// What one run measured.
pub struct Measured {
    pub rows: usize,
    pub rows_per_s: f64,
    /// Pulling (the simulator serving included), de-duplicating and committing.
    pub polled_s: f64,
    pub all_s: f64,
    /// The simulator generating and serving one window alone (body read and dropped).
    pub serve_window_s: f64,
}

/// Pull `hours` of chat_1 rows, one per second, in windows of `window_hours`.
pub async fn run(k: &KafkaConfig, hours: i64, window_hours: i64) -> Measured {
    let state = SimState::new("bench-token", SimMode::Random { seed: 1, agents: 1 });
    state.set_report_generation(1, 60_000);
    let sim = SimServer::start("127.0.0.1:0".parse().expect("addr"), state)
        .await
        .expect("simulator");
    let cfg = super::bench_source("bench-rep", &sim.base_url());
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("state")).expect("sled"));
    ccdc::kafka::ensure_topics(k, &["bench.chat_1s", "bench.dlq"])
        .await
        .expect("topics");
    let topics = TopicsConfig {
        wolkvox_chat_1: "bench.chat_1s".into(),
        dead_letter: "bench.dlq".into(),
        ..Default::default()
    };
    let sink = KafkaSink::new(k).expect("producer");
    super::warm_up(&sink, "bench.chat_1s").await;
    let notify = Arc::new(Notify::new());
    let (stop, task) = super::start_publisher(
        &store,
        AvroEncoder::new(
            topics,
            &[(Stream::WolkvoxChat1, 2), (Stream::DeadLetter, 3)],
        )
        .expect("encoder"),
        sink,
        &notify,
    );

    let from = super::range_start();
    let plan = ReportPlan::past_range(ReportKind::Chat1, chrono::Duration::hours(window_hours));
    let feed = ReportFeed::new(
        WolkvoxClient::new(&cfg).expect("client"),
        store.clone(),
        plan,
        Mode::Backfill {
            from,
            to: from + chrono::Duration::hours(hours),
        },
    );
    let mut poller = super::driven_poller(Box::new(feed), &store, notify);
    let t = Instant::now();
    let mut rows = 0;
    loop {
        match poller
            .cycle(chrono::Utc::now().timestamp_millis())
            .await
            .expect("cycle")
        {
            CycleOutcome::Committed { events, more, .. } => {
                rows += events;
                if !more {
                    break;
                }
            }
            CycleOutcome::Idle { more: true } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let polled = t.elapsed().as_secs_f64();
    while store.outbox_len() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let all = t.elapsed().as_secs_f64();
    stop.cancel();
    let _ = task.await;
    assert_eq!(rows as i64, hours * 3600, "every row published once");
    // The simulator's share: the first window again, body read and dropped.
    let end = from + chrono::Duration::hours(window_hours) - chrono::Duration::seconds(1);
    let req = reqwest::Client::new()
        .get(format!("{}/reports_manager.php", sim.base_url()))
        .query(&[
            ("api", "chat_1"),
            ("date_ini", &from.format("%Y%m%d%H%M%S").to_string()),
            ("date_end", &end.format("%Y%m%d%H%M%S").to_string()),
        ]);
    let (serve_window_s, len) = super::timed_get(req).await;
    assert!(len > 1000, "the window has rows");
    sim.stop().await;
    Measured {
        rows,
        rows_per_s: rows as f64 / all,
        polled_s: polled,
        all_s: all,
        serve_window_s,
    }
}
