//! P2e, the service's whole report path for `chat_1`: the report feed pulls windows over HTTP,
//! decodes and de-duplicates the rows, commits them with their dedupe marks and the cursor to the
//! sled outbox, and the publisher encodes and sends them until every one is acknowledged; against
//! librdkafka alone sending the same records, in the same run.
//!
//! Fair to ccdc: the simulator's own work (generating each window's rows as JSON maps and
//! serializing them) is done before the clock starts. Each window's response body is fetched from
//! the in-process simulator once, kept, and served as it is by a replay server (its only work:
//! copying the bytes to the socket), so the clock sees what the service sees from a vendor: the
//! bytes arriving over HTTP. The records librdkafka alone sends are the ones ccdc's own pipeline
//! made from those windows in an untimed pass into an in-memory sink (same keys, headers and
//! payloads; sent to a topic of the same layout).
//!
//! As in `ccdc run`: the service's report feed (a backfill of one day), poller with the process's
//! group committer, sled store (a fresh one per pass) and publisher with its default settings and
//! ccdc's producer settings. The process's CPU time (`getrusage`, every thread) and the broker's
//! (from /proc) are printed per row beside the rates; a last pass starts the publisher only once
//! every row is committed, to show each side's rate alone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use ccdc::config::{KafkaConfig, TopicsConfig, WolkvoxConfig};
use ccdc::encode::AvroEncoder;
use ccdc::event::report::ReportKind;
use ccdc::event::Stream;
use ccdc::kafka::KafkaSink;
use ccdc::poller::CycleOutcome;
use ccdc::reports::{Mode, ReportFeed, ReportPlan};
use ccdc::simulator::{SimMode, SimServer, SimState};
use ccdc::sink::{EventSink, MemorySink, OutRecord};
use ccdc::sources::wolkvox::WolkvoxClient;
use ccdc::store::outbox::Recent;
use ccdc::store::{SledStore, Store};
use tokio::sync::Notify;

use measure::{broker_cpu_s, cpu_s, thread_cpu_s, Timed};

mod measure;

/// The target (issue #17): rows per second end to end...
pub const TARGET_ROWS_PER_S: f64 = 150_000.0;
/// ...and this fraction of librdkafka alone sending the same records.
pub const TARGET_RATIO: f64 = 0.4;

/// What one run measured (medians over its rounds).
pub struct Measured {
    pub rows: usize,
    pub rounds: usize,
    /// End to end: the first request until the last ack.
    pub rows_per_s: f64,
    /// librdkafka alone sending the same records, each pass right after a ccdc pass.
    pub alone_per_s: f64,
    /// Each round's ccdc rate over the librdkafka-alone rate right after it, median.
    pub ratio: f64,
    /// Process CPU (user + sys, every thread: feed, store, publisher, librdkafka, the replay
    /// server) per row.
    pub cpu_us_per_row: f64,
    /// The broker's CPU per row during ccdc's passes, and during librdkafka alone's (it shares the
    /// two cores).
    pub broker_us_per_row: f64,
    pub broker_alone_us_per_row: f64,
    /// This process's CPU per record while librdkafka alone sends them (librdkafka's own share).
    pub alone_cpu_us_per_row: f64,
    /// One more pass with the publisher started only once every row is committed: rows per second
    /// of pulling + de-duplicating + committing alone, and of publishing alone (the outbox drained).
    pub polling_alone_per_s: f64,
    pub publishing_alone_per_s: f64,
    /// Pulling, de-duplicating and committing (the publisher runs meanwhile)...
    pub polled_s: f64,
    /// ...of which the store's commits (wall time).
    pub commit_s: f64,
    /// CPU per row of the commits, and of the poller's thread (see [`Pass`]).
    pub commit_cpu_us: f64,
    pub poller_cpu_us: f64,
    /// The simulator generating and serving one window (done before the clock; not counted).
    pub generate_window_s: f64,
    /// The replay server serving one window alone (body read and dropped; counted).
    pub serve_window_s: f64,
}

impl Measured {
    /// Each part of the target, and the whole.
    pub fn verdict(&self) -> &'static str {
        match (
            self.rows_per_s >= TARGET_ROWS_PER_S,
            self.ratio >= TARGET_RATIO,
        ) {
            (true, true) => "met",
            (true, false) => "rate met, ratio NOT met",
            (false, true) => "ratio met, rate NOT met",
            (false, false) => "NOT met",
        }
    }
}

type Bodies = Arc<HashMap<(String, String), bytes::Bytes>>;

#[derive(serde::Deserialize)]
struct WindowQuery {
    date_ini: String,
    date_end: String,
}

/// Serves the kept bodies by their window; anything else is a 404.
async fn replay(
    State(bodies): State<Bodies>,
    Query(q): Query<WindowQuery>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match bodies.get(&(q.date_ini, q.date_end)) {
        Some(b) => ([("content-type", "application/json")], b.clone()).into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

/// Every window of the range from the simulator, kept: the replay server's base URL (and the
/// seconds the simulator took for the first window).
async fn replay_server(
    from: chrono::NaiveDateTime,
    hours: i64,
    window_hours: i64,
) -> (String, f64, tokio_util::sync::CancellationToken) {
    let state = SimState::new("bench-token", SimMode::Random { seed: 1, agents: 1 });
    state.set_report_generation(1, 60_000);
    let sim = SimServer::start("127.0.0.1:0".parse().expect("addr"), state)
        .await
        .expect("simulator");
    let windows = ccdc::window::plan(
        from,
        from + chrono::Duration::hours(hours),
        chrono::Duration::hours(window_hours),
    );
    let client = reqwest::Client::new();
    let mut bodies = HashMap::new();
    let mut generate_s = Vec::new();
    for w in windows {
        let (ini, end) = (w.date_ini(), w.date_end());
        let t = Instant::now();
        let body = client
            .get(format!("{}/reports_manager.php", sim.base_url()))
            .query(&[("api", "chat_1"), ("date_ini", &ini), ("date_end", &end)])
            .header("wolkvox-token", "bench-token")
            .send()
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body");
        generate_s.push(t.elapsed().as_secs_f64());
        bodies.insert((ini, end), body);
    }
    sim.stop().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new()
        .route("/api/v2/reports_manager.php", axum::routing::get(replay))
        .with_state(Arc::new(bodies));
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await;
    });
    (
        format!("http://{addr}/api/v2"),
        super::percentile(generate_s, 0.5),
        stop,
    )
}

/// The service's publisher with its default settings on `sink`, until the token is cancelled.
fn start_publisher(
    store: &Arc<dyn Store>,
    recent: Arc<Recent>,
    encoder: AvroEncoder,
    sink: Arc<dyn EventSink>,
    notify: &Arc<Notify>,
) -> (
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<Result<ccdc::publisher::PublisherReport, ccdc::store::StoreError>>,
) {
    let publisher = ccdc::publisher::Publisher {
        store: store.clone(),
        recent: Some(recent),
        encoder: Arc::new(encoder),
        sink,
        notify: notify.clone(),
        max_in_flight: ccdc::config::PublisherConfig::default().max_in_flight,
        max_backoff: Duration::from_secs(1),
        health: None,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let task =
        tokio::spawn(publisher.run(stop.clone(), tokio_util::sync::CancellationToken::new()));
    (stop, task)
}

/// The service's report path over `hours` from `from`, into `sink`, until every record is
/// acknowledged.
async fn service_pass(
    cfg: &WolkvoxConfig,
    sink: Arc<dyn EventSink>,
    from: chrono::NaiveDateTime,
    hours: i64,
    window_hours: i64,
    apart: bool,
) -> Pass {
    let dir = tempfile::tempdir().expect("tempdir");
    let timed = Arc::new(Timed {
        inner: SledStore::open(&dir.path().join("state")).expect("sled"),
        commit_ns: Default::default(),
        commit_cpu_ns: Default::default(),
    });
    let store: Arc<dyn Store> = timed.clone();
    let topics = TopicsConfig {
        wolkvox_chat_1: "bench.chat_1s".into(),
        dead_letter: "bench.dlq".into(),
        ..Default::default()
    };
    let notify = Arc::new(Notify::new());
    let encoder = AvroEncoder::new(
        topics,
        &[(Stream::WolkvoxChat1, 2), (Stream::DeadLetter, 3)],
    )
    .expect("encoder");
    // As `ccdc run` commits: through the process's group committer, which keeps the events it
    // commits for the publisher.
    let recent = Arc::new(Recent::default());
    let group =
        ccdc::poller::GroupCommit::start_with(store.clone(), recent.clone()).expect("committer");
    let mut publisher = Some((encoder, sink));
    let mut started = None;
    if !apart {
        started = publisher
            .take()
            .map(|(e, s)| start_publisher(&store, recent.clone(), e, s, &notify));
    }
    let plan = ReportPlan::past_range(ReportKind::Chat1, chrono::Duration::hours(window_hours));
    let feed = ReportFeed::new(
        WolkvoxClient::new(cfg).expect("client"),
        store.clone(),
        plan,
        Mode::Backfill {
            from,
            to: from + chrono::Duration::hours(hours),
        },
    )
    .with_spill_dir(dir.path().to_path_buf());
    let mut poller =
        super::driven_poller(Box::new(feed), &store, notify.clone()).group_commit(group);
    let (t, cpu) = (Instant::now(), thread_cpu_s());
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
    let poller_cpu_s = thread_cpu_s() - cpu;
    let drain_from = Instant::now();
    if let Some((e, s)) = publisher.take() {
        started = Some(start_publisher(&store, recent, e, s, &notify));
    }
    while store.outbox_len() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let all = t.elapsed().as_secs_f64();
    let drain = drain_from.elapsed().as_secs_f64();
    if let Some((stop, task)) = started {
        stop.cancel();
        let _ = task.await;
    }
    let s = |n: &std::sync::atomic::AtomicU64| {
        n.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9
    };
    Pass {
        rows,
        polled,
        all,
        drain_s: apart.then_some(drain),
        commit_s: s(&timed.commit_ns),
        commit_cpu_s: s(&timed.commit_cpu_ns),
        poller_cpu_s,
    }
}

/// One pass of the service's report path.
struct Pass {
    rows: usize,
    /// Seconds pulling, de-duplicating and committing; of which committing; in all.
    polled: f64,
    commit_s: f64,
    all: f64,
    /// Seconds the publisher took to drain the outbox, when it started only once everything was
    /// committed.
    drain_s: Option<f64>,
    /// CPU seconds of the commits, and of the poller's own thread (decoding, de-duplicating,
    /// encoding for the outbox; not the body's parse or the commits, on blocking threads).
    commit_cpu_s: f64,
    poller_cpu_s: f64,
}

/// Pull `hours` of chat_1 rows, one per second, in windows of `window_hours`; `rounds` ccdc
/// passes, each followed by librdkafka alone sending the same records.
pub async fn run(k: &KafkaConfig, hours: i64, window_hours: i64, rounds: usize) -> Measured {
    let from = super::range_start();
    let (base_url, generate_window_s, replay_stop) = replay_server(from, hours, window_hours).await;
    let cfg = super::bench_source("bench-rep", &base_url);
    ccdc::topics::ensure_topics(
        k,
        &[
            (Stream::WolkvoxChat1, "bench.chat_1s"),
            (Stream::WolkvoxChat1, "bench.chat_1s-alone"),
            (Stream::DeadLetter, "bench.dlq"),
        ],
    )
    .await
    .expect("topics");
    // The records ccdc makes, from an untimed pass into memory: librdkafka alone sends them.
    let memory = MemorySink::default();
    service_pass(
        &cfg,
        Arc::new(memory.clone()),
        from,
        hours,
        window_hours,
        false,
    )
    .await;
    let records: Vec<OutRecord> = memory
        .delivered()
        .into_iter()
        .map(|r| OutRecord {
            topic: "bench.chat_1s-alone".into(),
            ..r
        })
        .collect();
    assert_eq!(records.len() as i64, hours * 3600, "every row made once");
    let alone = super::throughput::Alone::new(k);
    alone.send_all(&[super::warm_up_record("bench.chat_1s-alone")]);

    let (mut commit_cpu, mut poller_cpu) = (Vec::new(), Vec::new());
    let (mut broker, mut broker_alone, mut alone_cpu) = (Vec::new(), Vec::new(), Vec::new());
    let (mut rates, mut alone_rates, mut ratios, mut cpus, mut polled, mut commits) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut rows = 0;
    for _ in 0..rounds {
        let sink = KafkaSink::new(k).expect("producer");
        super::warm_up(&sink, "bench.chat_1s").await;
        let (cpu, b) = (cpu_s(), broker_cpu_s());
        let pass = service_pass(&cfg, Arc::new(sink), from, hours, window_hours, false).await;
        let n = pass.rows;
        cpus.push((cpu_s() - cpu) * 1e6 / n as f64);
        broker.push((broker_cpu_s() - b) * 1e6 / n as f64);
        assert_eq!(n as i64, hours * 3600, "every row published once");
        rows = n;
        let rate = n as f64 / pass.all;
        let (b, cpu) = (broker_cpu_s(), cpu_s());
        let a = alone.send_all(&records);
        broker_alone.push((broker_cpu_s() - b) * 1e6 / n as f64);
        alone_cpu.push((cpu_s() - cpu) * 1e6 / n as f64);
        rates.push(rate);
        alone_rates.push(a);
        ratios.push(rate / a);
        polled.push(pass.polled);
        commits.push(pass.commit_s);
        commit_cpu.push(pass.commit_cpu_s * 1e6 / n as f64);
        poller_cpu.push(pass.poller_cpu_s * 1e6 / n as f64);
    }
    // Each side alone: the publisher started only once everything is committed.
    let sink = KafkaSink::new(k).expect("producer");
    super::warm_up(&sink, "bench.chat_1s").await;
    let apart = service_pass(&cfg, Arc::new(sink), from, hours, window_hours, true).await;
    let n = apart.rows as f64;
    let (polling_alone_per_s, publishing_alone_per_s) =
        (n / apart.polled, n / apart.drain_s.unwrap_or(f64::NAN));
    // The replay server's share: the first window again, body read and dropped.
    let end = from + chrono::Duration::hours(window_hours) - chrono::Duration::seconds(1);
    let req = reqwest::Client::new()
        .get(format!("{base_url}/reports_manager.php"))
        .query(&[
            ("api", "chat_1"),
            ("date_ini", &from.format("%Y%m%d%H%M%S").to_string()),
            ("date_end", &end.format("%Y%m%d%H%M%S").to_string()),
        ]);
    let (serve_window_s, len) = super::timed_get(req).await;
    assert!(len > 1000, "the window has rows");
    replay_stop.cancel();
    Measured {
        rows,
        rounds,
        polling_alone_per_s,
        publishing_alone_per_s,
        rows_per_s: super::percentile(rates, 0.5),
        alone_per_s: super::percentile(alone_rates, 0.5),
        ratio: super::percentile(ratios, 0.5),
        cpu_us_per_row: super::percentile(cpus, 0.5),
        broker_us_per_row: super::percentile(broker, 0.5),
        broker_alone_us_per_row: super::percentile(broker_alone, 0.5),
        alone_cpu_us_per_row: super::percentile(alone_cpu, 0.5),
        polled_s: super::percentile(polled, 0.5),
        commit_s: super::percentile(commits, 0.5),
        commit_cpu_us: super::percentile(commit_cpu, 0.5),
        poller_cpu_us: super::percentile(poller_cpu, 0.5),
        generate_window_s,
        serve_window_s,
    }
}
