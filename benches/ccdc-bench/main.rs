//! ccdc's benchmarks, against a real tansu broker on loopback (started here, like the tests):
//!
//! - **P1** snapshot cycle: a 60,000-interaction Wolkvox snapshot from the simulator, 1 % changing per
//!   cycle: fetch → parse → diff → sled commit (snapshot + outbox) → publish → every ack.
//! - **P2** report throughput: chat_1 rows JSON → typed row (one thread, as the report feed) → Avro →
//!   broker (another, as the publisher), against librdkafka alone
//!   publishing the same records (encoded before the clock starts) in the same run; then, without a
//!   target, the service's whole report path ([`report_path`]).
//! - **P3** memory: a 256 MB report response streamed through the row parser, coercion and Avro
//!   encoding, in a child process whose peak RSS is read from /proc.
//! - **P4** idle: `ccdc run` between polls: RSS and CPU time over a few idle seconds.
//! - **TRUTH**: the service against a simulated operation with a known ground truth, scored
//!   ([`truth`]; no broker: `--only truth` runs it alone).
//!
//! `cargo bench --bench ccdc-bench` (full sizes) or `-- --short` (small sizes); `-- --only p1,p3`
//! runs a subset. Under `cargo test` (which does not pass `--bench`) it runs in short mode: CI
//! checks that every benchmark runs; timings are printed, never asserted. Results go in
//! BENCHMARKS.md.

mod memory;
mod report_path;
mod throughput;
mod truth;

/// The same allocator as the `ccdc` binary, so the pipeline is measured as it runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ccdc::config::{KafkaConfig, TopicsConfig, WolkvoxConfig};
use ccdc::encode::AvroEncoder;
use ccdc::event::Stream;
use ccdc::feed::SnapshotFeed;
use ccdc::kafka::KafkaSink;
use ccdc::poller::Poller;
use ccdc::publisher::Publisher;
use ccdc::sink::EventSink;
use ccdc::sources::wolkvox::interactions::WolkvoxInteractions;
use ccdc::sources::wolkvox::WolkvoxClient;
use ccdc::store::{SledStore, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

fn status_kb(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A process the bench started (the broker, the simulator), killed on drop.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait until `what` accepts connections on `port`.
fn wait_for_port(what: &str, port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_tansu() -> (Child, String) {
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let bin = std::env::var("TANSU_BIN").unwrap_or_else(|_| {
        format!(
            "{}/.cargo/bin/tansu",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let child = std::process::Command::new(bin)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tansu (scripts/test.sh installs it)");
    let child = Child(child);
    wait_for_port("tansu", port);
    (child, format!("127.0.0.1:{port}"))
}

fn kafka(bootstrap: &str) -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: bootstrap.into(),
        compression: "lz4".into(),
        create_topics: true,
        partitions: 6,
        replication_factor: 1,
        message_timeout: Duration::from_secs(120),
        record_headers: true,
        partitioner: "murmur2_random".into(),
        properties: [
            ("linger.ms".to_string(), "20".to_string()),
            ("batch.size".to_string(), "1000000".to_string()),
        ]
        .into(),
        secret_properties: Default::default(),
    }
}

/// One record to `topic`, acknowledged: connections, the idempotent producer id and the
/// partition leaders are in place before the clock starts (as in the service, whose producer is up
/// before the first poll).
async fn warm_up(sink: &KafkaSink, topic: &str) {
    if sink.send(u64::MAX, warm_up_record(topic)).is_ok() {
        let mut acks = Vec::new();
        while !acks.iter().any(|a: &ccdc::sink::Ack| a.id == u64::MAX) {
            sink.acks().wait().await;
            sink.acks().drain_into(&mut acks);
        }
    }
}

/// The one-byte record sent to warm a producer up.
fn warm_up_record(topic: &str) -> ccdc::sink::OutRecord {
    ccdc::sink::OutRecord {
        topic: topic.into(),
        key: "warm-up".into(),
        payload: vec![0],
        headers: vec![],
    }
}

/// A Wolkvox source on the simulator (token `bench-token`), with the vendor's limits.
fn bench_source(name: &str, base_url: &str) -> WolkvoxConfig {
    std::env::set_var("CCDC_BENCH_TOKEN", "bench-token");
    ccdc::simulator::wolkvox_source(name, base_url, "CCDC_BENCH_TOKEN")
}

/// Seconds to send `req` (with the bench token) and read the whole body, and the body's length.
async fn timed_get(req: reqwest::RequestBuilder) -> (f64, usize) {
    let t = Instant::now();
    let body = req
        .header("wolkvox-token", "bench-token")
        .send()
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    (t.elapsed().as_secs_f64(), body.len())
}

/// `ccdc simulate` in its own process (token `bench-token`) with `args`, and its Wolkvox
/// `base_url` once it accepts connections.
fn start_simulator(args: &[&str]) -> (Child, String) {
    let port = free_port();
    let ccdc = std::path::PathBuf::from(env!("CARGO_BIN_EXE_ccdc"));
    let sim = Child(
        std::process::Command::new(&ccdc)
            .args(["simulate", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--token", "bench-token"])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{} simulate: {e} (build the ccdc binary first)",
                    ccdc.display()
                )
            }),
    );
    wait_for_port("simulator", port);
    (sim, format!("http://127.0.0.1:{port}/api/v2"))
}

/// Where the benchmarks' report ranges start (local time): a past day, so every row exists.
fn range_start() -> chrono::NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(2026, 11, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("date")
}

/// A poller that the bench drives cycle by cycle (its interval is never waited on).
fn driven_poller(
    feed: Box<dyn ccdc::feed::Feed>,
    store: &Arc<dyn Store>,
    notify: Arc<Notify>,
) -> Poller {
    Poller::new(
        feed,
        store.clone(),
        notify,
        Duration::from_secs(60),
        Duration::from_secs(1),
    )
}

/// The service's publisher with its default settings, running until the token is cancelled.
fn start_publisher(
    store: &Arc<dyn Store>,
    encoder: AvroEncoder,
    sink: KafkaSink,
    notify: &Arc<Notify>,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<ccdc::publisher::PublisherReport, ccdc::store::StoreError>>,
) {
    let publisher = Publisher {
        store: store.clone(),
        encoder: Arc::new(encoder),
        sink: Arc::new(sink),
        notify: notify.clone(),
        max_in_flight: ccdc::config::PublisherConfig::default().max_in_flight,
        max_backoff: Duration::from_secs(1),
        health: None,
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(publisher.run(stop.clone(), CancellationToken::new()));
    (stop, task)
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn p1(bootstrap: &str, interactions: usize, cycles: usize) -> (f64, f64, u64) {
    // The simulator runs in its own process (`ccdc simulate` in bench mode: every interactions
    // request replaces 1 % of the interactions), so this process measures ccdc alone.
    let (sim, base_url) = start_simulator(&[
        "--bench-interactions",
        &interactions.to_string(),
        "--bench-churn-percent",
        "1",
    ]);
    let cfg = bench_source("bench", &base_url);
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("state")).expect("sled"));
    let k = kafka(bootstrap);
    let topics = TopicsConfig {
        interactions: "bench.interactions".into(),
        ..Default::default()
    };
    ccdc::kafka::ensure_topics(&k, &["bench.interactions"])
        .await
        .expect("topic");
    let notify = Arc::new(Notify::new());
    // The service starts its producer before the first poll: warm it up the same way.
    let sink = KafkaSink::new(&k).expect("producer");
    warm_up(&sink, "bench.interactions").await;
    let (stop, task) = start_publisher(
        &store,
        AvroEncoder::new(topics, &[(Stream::Interactions, 1)]).expect("encoder"),
        sink,
        &notify,
    );
    let feed = SnapshotFeed::new(
        Arc::new(WolkvoxInteractions(
            WolkvoxClient::new(&cfg).expect("client"),
        )),
        2,
    );
    let mut poller = driven_poller(Box::new(feed), &store, notify);
    let mut polled_ms = Vec::new();
    let mut times = Vec::new();
    for _ in 0..=cycles {
        let t = Instant::now();
        poller
            .cycle(chrono::Utc::now().timestamp_millis())
            .await
            .expect("cycle");
        let polled = t.elapsed();
        while store.outbox_len() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        polled_ms.push(polled.as_secs_f64() * 1000.0);
    }
    stop.cancel();
    let _ = task.await;
    // The simulator's own share: the same request, body read and dropped (no parse, no commit).
    let client = reqwest::Client::new();
    let mut fetch_ms = Vec::new();
    for _ in 0..3 {
        let req = client.get(format!("{base_url}/real_time.php?api=interactions"));
        fetch_ms.push(timed_get(req).await.0 * 1000.0);
    }
    println!("   P1 detail: serving + transferring the snapshot alone (simulator, its own process): p50 {:.0} ms", percentile(fetch_ms, 0.5));
    drop(sim);
    let first = times.remove(0);
    let first_polled = polled_ms.remove(0);
    println!("   P1 detail: fetch + parse + diff + commit: first {first_polled:.0} ms, steady p50 {:.0} ms; the rest of each cycle is publishing", percentile(polled_ms, 0.5));
    (first, percentile(times, 0.5), status_kb("self", "VmHWM:"))
}

fn main() {
    ccdc::alloc::configure();
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--p3-feed-child") {
        let arg = |k: usize| args.get(i + k).cloned().unwrap_or_default();
        memory::p3_feed_child(&arg(1), arg(2).parse().unwrap_or(1_000));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--p3-child") {
        memory::p3_child(
            args.get(i + 1)
                .and_then(|b| b.parse().ok())
                .unwrap_or(256 << 20),
        );
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test` does not (and may pass its own flags, ignored).
    let short = args.iter().any(|a| a == "--short") || !args.iter().any(|a| a == "--bench");
    // `--only p1,p2`: run a subset (for profiling one benchmark); `--only convert`: P2's
    // conversion alone, without a broker.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_string).collect::<Vec<_>>());
    let runs = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == name));
    let (interactions, cycles, rows, big, idle) = if short {
        (3_000, 3, 5_000, 8 << 20, Duration::from_secs(2))
    } else {
        (60_000, 10, 200_000, 256 << 20, Duration::from_secs(10))
    };
    println!(
        "ccdc benchmarks ({} mode) on {} cores; mimalloc arena_eager_commit={}",
        if short { "short" } else { "full" },
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        ccdc::alloc::arena_eager_commit()
    );
    // Metrics are recorded as in the service, where observability is on by default.
    ccdc::observability::prometheus().expect("the bench's metrics recorder");
    if runs("truth") {
        truth::run(short);
    }
    if only
        .as_ref()
        .is_some_and(|o| o.iter().all(|x| x == "truth"))
    {
        return;
    }
    let (_broker, bootstrap) = start_tansu();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    if runs("p1") {
        let (first, p50, hwm) = rt.block_on(p1(&bootstrap, interactions, cycles));
        println!("P1 snapshot cycle: {interactions} interactions, 1% changing: first cycle {first:.0} ms, steady p50 {p50:.0} ms, peak RSS {} MB (ccdc pipeline; simulator in its own process)", hwm / 1024);
    }
    if only
        .as_ref()
        .is_some_and(|o| o.iter().any(|x| x == "convert"))
    {
        println!(
            "P2 conversion alone (row text → framed record, no headers; one thread, no broker): {:.2} µs per row",
            throughput::convert_alone(rows)
        );
    }
    if runs("p2") {
        let r = rt.block_on(throughput::p2(&bootstrap, rows));
        println!("P2 report throughput (kafka.record_headers = true, the default): ccdc {:.0} rows/s, librdkafka alone sending the same records {:.0} rows/s, ratio {:.2}", r.ccdc, r.alone, r.ccdc / r.alone);
        println!("P2 report throughput (kafka.record_headers = false): ccdc {:.0} rows/s, librdkafka alone sending the same records {:.0} rows/s, ratio {:.2}", r.ccdc_bare, r.alone_bare, r.ccdc_bare / r.alone_bare);
        println!(
            "   P2 detail: the header-less ratio round by round (each ccdc pass against the librdkafka-alone pass after it): {}",
            r.bare_rounds.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" ")
        );
        println!(
            "   P2 detail: ccdc with headers against librdkafka alone without them: ratio {:.2}",
            r.ccdc / r.alone_bare
        );
        println!(
            "   P2 detail: ccdc's conversion alone (row text → framed record, no headers; one thread, no broker): {:.2} µs per row",
            r.convert_us
        );
        let (hours, window) = if short { (2, 1) } else { (24, 12) };
        let m = rt.block_on(report_path::run(&kafka(&bootstrap), hours, window));
        println!(
            "   P2 detail, the service's whole report path (feed → dedupe → sled outbox → publisher → acks; no target): {} rows in {:.2} s = {:.0} rows/s; pulling + de-duplicating + committing {:.2} s, of which the in-process simulator serving each {window} h window ≈ {:.2} s",
            m.rows, m.all_s, m.rows_per_s, m.polled_s, m.serve_window_s
        );
    }
    let exe = std::env::current_exe().expect("exe");
    if runs("p3") {
        memory::p3(&exe, big);
        // The vendor's limits: 60,000 rows (a window reaching them is split) and 256 MB per call.
        let (rows, bytes) = if short {
            (2_000, 4 << 20)
        } else {
            (59_000, 250_000_000)
        };
        memory::p3_feed(&exe, rows, bytes);
    }
    if runs("p4") {
        memory::p4_report(std::path::Path::new(env!("CARGO_BIN_EXE_ccdc")), idle);
    }
}
