//! ccdc's benchmarks, against a real tansu broker on loopback (started here, like the tests):
//!
//! - **P1** snapshot cycle: a 60,000-interaction Wolkvox snapshot from the simulator, 1 % changing per
//!   cycle: fetch → parse → diff → sled commit (snapshot + outbox) → publish → every ack.
//! - **P2** report throughput: chat_1 rows JSON → typed row (one thread, as the report feed) → Avro →
//!   broker (another, as the publisher), against librdkafka alone
//!   publishing the same records (encoded before the clock starts) in the same run.
//! - **P2e** the service's whole report path for chat_1 ([`report_path`]): pull → dedupe → sled
//!   outbox → publish → every ack, against librdkafka alone sending the same records.
//! - **P5** the P1 cycle against a straightforward Python poller (`benches/python_poller/`), side
//!   by side: CPU per cycle and peak RSS ([`versus_python`]).
//! - **P3** memory: a 256 MB report response streamed through the row parser, coercion and Avro
//!   encoding, in a child process whose peak RSS is read from /proc.
//! - **P4** idle: `ccdc run` between polls: RSS and CPU time over a few idle seconds.
//! - **P6** many sources: `ccdc run` polling 1,000 simulated sources of every vendor: RSS, CPU,
//!   how late polls start ([`many`]; no broker: stdout output).
//! - **TRUTH**: the service against a simulated operation with a known ground truth, scored
//!   ([`truth`]; no broker: `--only truth` runs it alone).
//!
//! `cargo bench --bench ccdc-bench` (full sizes) or `-- --short` (small sizes); `-- --only p1,p3`
//! runs a subset. Under `cargo test` (which does not pass `--bench`) it runs in short mode: CI
//! checks that every benchmark runs; timings are printed, never asserted. Results go in
//! BENCHMARKS.md.

mod many;
mod memory;
mod report_path;
mod snapshot;
mod throughput;
mod truth;
mod versus_python;

/// The same allocator as the `ccdc` binary, so the pipeline is measured as it runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ccdc::config::{KafkaConfig, WolkvoxConfig};
use ccdc::encode::AvroEncoder;
use ccdc::kafka::KafkaSink;
use ccdc::poller::Poller;
use ccdc::publisher::Publisher;
use ccdc::sink::EventSink;
use ccdc::store::Store;
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
        replication_factor: ccdc::config::ReplicationFactor::Fixed(1),
        message_timeout: Duration::from_secs(120),
        record_headers: ccdc::config::RecordHeaders::CloudEvents,
        partitioner: "murmur2_random".into(),
        properties: [
            ("linger.ms".to_string(), "20".to_string()),
            ("batch.size".to_string(), "1000000".to_string()),
        ]
        .into(),
        secret_properties: Default::default(),
        topic_defaults: Default::default(),
        topic_settings: Default::default(),
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
        timestamp_ms: None,
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
    recent: Option<Arc<ccdc::store::outbox::Recent>>,
    encoder: AvroEncoder,
    sink: KafkaSink,
    notify: &Arc<Notify>,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<ccdc::publisher::PublisherReport, ccdc::store::StoreError>>,
) {
    let publisher = Publisher {
        store: store.clone(),
        recent,
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

fn main() {
    ccdc::alloc::configure();
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--p3-feed-child") {
        let arg = |k: usize| args.get(i + k).cloned().unwrap_or_default();
        memory::p3_feed_child(&arg(1), arg(2).parse().unwrap_or(1_000));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--p1-child") {
        let arg = |k: usize| args.get(i + k).cloned().unwrap_or_default();
        snapshot::p1_child(&arg(1), &arg(2), arg(3).parse().unwrap_or(1));
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
    if runs("p6") {
        many::p6_report(std::path::Path::new(env!("CARGO_BIN_EXE_ccdc")), short);
    }
    if only
        .as_ref()
        .is_some_and(|o| o.iter().all(|x| x == "truth" || x == "p6"))
    {
        return;
    }
    let (_broker, bootstrap) = start_tansu();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let exe = std::env::current_exe().expect("exe");
    if runs("p1") {
        // `--p1-cycles N`: more steady cycles (for profiling).
        let cycles = args
            .iter()
            .position(|a| a == "--p1-cycles")
            .and_then(|i| args.get(i + 1)?.parse().ok())
            .unwrap_or(cycles);
        snapshot::p1(&rt, &exe, &bootstrap, (interactions, cycles, !short));
    }
    if only
        .as_ref()
        .is_some_and(|o| o.iter().any(|x| x == "p1parts"))
    {
        snapshot::parts(&rt, interactions);
    }
    if runs("p5") {
        versus_python::p5(&rt, &exe, &bootstrap, (interactions, cycles, !short));
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
        println!("P2 report throughput (kafka.record_headers = \"cloudevents\", the default): ccdc {:.0} rows/s, librdkafka alone sending the same records {:.0} rows/s, ratio {:.2}", r.ccdc, r.alone, r.ccdc / r.alone);
        println!("P2 report throughput (kafka.record_headers = \"minimal\"): ccdc {:.0} rows/s, librdkafka alone sending the same records {:.0} rows/s, ratio {:.2}", r.ccdc_minimal, r.alone_minimal, r.ccdc_minimal / r.alone_minimal);
        println!("P2 report throughput (kafka.record_headers = \"none\"): ccdc {:.0} rows/s, librdkafka alone sending the same records {:.0} rows/s, ratio {:.2}", r.ccdc_bare, r.alone_bare, r.ccdc_bare / r.alone_bare);
        println!(
            "   P2 detail: the header-less ratio round by round (each ccdc pass against the librdkafka-alone pass after it): {}",
            r.bare_rounds.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" ")
        );
        println!(
            "   P2 detail: ccdc with the CloudEvents headers against librdkafka alone without headers: ratio {:.2}",
            r.ccdc / r.alone_bare
        );
        println!(
            "   P2 detail: header cost per record in librdkafka + broker (alone, 1/rate difference): CloudEvents {:.2} µs, minimal {:.2} µs; in ccdc's encoder (one thread): CloudEvents {:.2} µs ({:.2} µs per row with them, {:.2} without)",
            1e6 / r.alone - 1e6 / r.alone_bare,
            1e6 / r.alone_minimal - 1e6 / r.alone_bare,
            r.convert_ce_us - r.convert_us,
            r.convert_ce_us,
            r.convert_us
        );
        println!(
            "   P2 detail: ccdc's conversion alone (row text → framed record, no headers; one thread, no broker): {:.2} µs per row",
            r.convert_us
        );
    }
    if runs("p2e") {
        let (hours, window, rounds) = if short { (2, 1, 1) } else { (24, 12, 5) };
        let m = rt.block_on(report_path::run(&kafka(&bootstrap), hours, window, rounds));
        println!(
            "P2e whole report path (chat_1: pull → dedupe → sled outbox → publish → every ack): {:.0} rows/s, librdkafka alone sending the same records {:.0} rows/s, ratio {:.2} (target ≥ {:.0} rows/s and ≥ {:.1} ×): {}",
            m.rows_per_s, m.alone_per_s, m.ratio, report_path::TARGET_ROWS_PER_S, report_path::TARGET_RATIO, m.verdict()
        );
        println!(
            "   P2e detail: each side alone (the publisher started once every row was committed): pulling + de-duplicating + committing {:.0} rows/s, publishing the outbox {:.0} rows/s",
            m.polling_alone_per_s, m.publishing_alone_per_s
        );
        println!(
            "   P2e detail: {} rows in {} {window} h windows, medians of {} round(s): process CPU {:.2} µs per row (the poller's thread {:.2}, the commits {:.2}), the broker {:.2}; librdkafka alone: this process {:.2}, the broker {:.2}); pulling + de-duplicating + committing {:.2} s (of which the store's commits {:.2} s); the replay server serving one window {:.3} s (counted); the simulator generating one {:.2} s (before the clock, not counted)",
            m.rows, hours / window, m.rounds, m.cpu_us_per_row, m.poller_cpu_us, m.commit_cpu_us, m.broker_us_per_row, m.alone_cpu_us_per_row, m.broker_alone_us_per_row, m.polled_s, m.commit_s, m.serve_window_s, m.generate_window_s
        );
    }
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
