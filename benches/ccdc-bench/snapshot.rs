//! P1, the snapshot cycle, and P5, the same cycle against a straightforward Python poller.
//!
//! P1: a 60,000-interaction Wolkvox snapshot from the simulator (`ccdc simulate`, its own process,
//! 1 % of the interactions replaced per request) through the service's real parts: the Wolkvox
//! client, the snapshot feed and the poller (fetch → parse → diff → sled commit of state and
//! outbox), the publisher (Avro, Confluent framing, librdkafka) and every broker ack. The pipeline
//! runs in a child process of the bench (`--p1-child`), so its peak RSS and CPU time are its own:
//! CPU is the process's user + sys time (every thread: tokio, sled, librdkafka) from `getrusage`
//! before and after each cycle.
//!
//! P5: the same cycle in `benches/python_poller/poller.py` (requests, `json`, a dict diff,
//! confluent-kafka's stock `AvroSerializer` with a schema registry, an idempotent producer, no
//! durable state), run side by side with the ccdc child against the same simulator.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccdc::config::TopicsConfig;
use ccdc::encode::AvroEncoder;
use ccdc::event::Stream;
use ccdc::feed::SnapshotFeed;
use ccdc::kafka::KafkaSink;
use ccdc::sources::wolkvox::interactions::WolkvoxInteractions;
use ccdc::sources::wolkvox::WolkvoxClient;
use ccdc::store::{SledStore, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// The P1 targets (issue #17).
pub const STEADY_CPU_MS: f64 = 60.0;
pub const STEADY_WALL_MS: f64 = 80.0;
pub const FIRST_WALL_MS: f64 = 400.0;
pub const PEAK_RSS_MB: f64 = 100.0;

/// What one poller process measured, cycle by cycle (the first cycle is the initial snapshot).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cycles {
    /// Wall time of each cycle, ms: poll to the last ack.
    pub wall_ms: Vec<f64>,
    /// Process CPU time (user + sys, every thread) of each cycle, ms.
    pub cpu_ms: Vec<f64>,
    /// Of the wall time: fetch + parse + diff + commit (ccdc), or fetch + parse + diff (Python).
    pub poll_ms: Vec<f64>,
    /// Peak RSS of the process, kB.
    pub peak_rss_kb: u64,
    /// RSS once set up (producer warm, store open), before the first cycle, kB.
    pub setup_rss_kb: u64,
    /// Peak RSS after the first cycle, kB.
    pub first_peak_rss_kb: u64,
    /// Events produced in the steady cycles (a check that both pollers saw the same churn).
    pub steady_events: u64,
}

impl Cycles {
    pub fn steady(v: &[f64]) -> f64 {
        super::percentile(v.get(1..).unwrap_or_default().to_vec(), 0.5)
    }
    pub fn peak_mb(&self) -> f64 {
        self.peak_rss_kb as f64 / 1024.0
    }
}

/// CPU time used by this process so far (user + sys, every thread), ms.
pub fn process_cpu_ms() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given; no other precondition.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above, with a valid pointer to `u`.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    ms(u.ru_utime) + ms(u.ru_stime)
}

/// The simulator of P1 and P5: `interactions` interactions, 1 % replaced per request.
pub fn start_simulator(interactions: usize) -> (super::Child, String) {
    super::start_simulator(&[
        "--bench-interactions",
        &interactions.to_string(),
        "--bench-churn-percent",
        "1",
    ])
}

/// Run the ccdc pipeline in a child process (`--p1-child`) against the simulator at `base_url`.
pub fn run_ccdc(exe: &Path, base_url: &str, bootstrap: &str, cycles: usize) -> Cycles {
    // Its stderr goes to the bench's: a failure explains itself there.
    let out = Command::new(exe)
        .args(["--p1-child", base_url, bootstrap, &cycles.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("p1 child");
    assert!(
        out.status.success(),
        "p1 child failed (its stderr is above)"
    );
    parse_cycles("p1 child", &out.stdout)
}

/// The child's last line, a JSON [`Cycles`].
pub fn parse_cycles(what: &str, stdout: &[u8]) -> Cycles {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().rev().find(|l| l.starts_with('{'));
    serde_json::from_str(line.unwrap_or_default())
        .unwrap_or_else(|e| panic!("{what}: no result line ({e}): {text}"))
}

/// Child of [`run_ccdc`]: `cycles` + 1 cycles of the service's snapshot pipeline; prints [`Cycles`].
pub fn p1_child(base_url: &str, bootstrap: &str, cycles: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let measured = rt.block_on(ccdc_cycles(base_url, bootstrap, cycles));
    println!("{}", serde_json::to_string(&measured).expect("json"));
}

async fn ccdc_cycles(base_url: &str, bootstrap: &str, cycles: usize) -> Cycles {
    let cfg = super::bench_source("bench", base_url);
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("state")).expect("sled"));
    // The service's own producer settings (P2's batching overrides are for throughput).
    let mut k = super::kafka(bootstrap);
    k.properties.clear();
    let topics = TopicsConfig {
        interactions: "bench.interactions".into(),
        ..Default::default()
    };
    ccdc::topics::ensure_topics(&k, &[(Stream::Interactions, "bench.interactions")])
        .await
        .expect("topic");
    let notify = Arc::new(Notify::new());
    // The service starts its producer before the first poll: warm it up the same way.
    let sink = KafkaSink::new(&k).expect("producer");
    super::warm_up(&sink, "bench.interactions").await;
    // As `ccdc run` commits: through the process's group committer, which keeps the events it
    // commits for the publisher.
    let recent = Arc::new(ccdc::store::outbox::Recent::default());
    let group =
        ccdc::poller::GroupCommit::start_with(store.clone(), recent.clone()).expect("committer");
    let (stop, task) = super::start_publisher(
        &store,
        Some(recent),
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
    let mut poller = super::driven_poller(Box::new(feed), &store, notify).group_commit(group);
    let mut m = Cycles {
        wall_ms: vec![],
        cpu_ms: vec![],
        poll_ms: vec![],
        peak_rss_kb: 0,
        setup_rss_kb: super::status_kb("self", "VmRSS:"),
        first_peak_rss_kb: 0,
        steady_events: 0,
    };
    // `CCDC_BENCH_RSS_TRACE=1`: RSS every 2 ms through the first cycle, printed (for profiling).
    let trace = std::env::var_os("CCDC_BENCH_RSS_TRACE").map(|_| rss_trace());
    for i in 0..=cycles {
        let (t, cpu) = (Instant::now(), process_cpu_ms());
        let outcome = poller
            .cycle(chrono::Utc::now().timestamp_millis())
            .await
            .expect("cycle");
        let polled = t.elapsed();
        while store.outbox_len() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        m.cpu_ms.push(process_cpu_ms() - cpu);
        m.wall_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        m.poll_ms.push(polled.as_secs_f64() * 1000.0);
        if let (ccdc::poller::CycleOutcome::Committed { events, .. }, true) = (outcome, i > 0) {
            m.steady_events += events as u64;
        }
        if i == 0 {
            m.first_peak_rss_kb = super::status_kb("self", "VmHWM:");
        }
        if let Some((stop, samples)) = &trace {
            let line: Vec<String> = samples
                .lock()
                .map(|mut s| s.drain(..).map(|(ms, mb)| format!("{ms}:{mb}")).collect())
                .unwrap_or_default();
            eprintln!(
                "rss trace of cycle {i} (ms since the trace began: MB), polled after {:.0} ms: {}",
                polled.as_secs_f64() * 1000.0,
                line.join(" ")
            );
            if i == cycles {
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }
    stop.cancel();
    let _ = task.await;
    m.peak_rss_kb = super::status_kb("self", "VmHWM:");
    m
}

/// RSS samples (ms since the start, MB) every 2 ms until the flag is set, on a thread.
type Trace = (
    Arc<std::sync::atomic::AtomicBool>,
    Arc<std::sync::Mutex<Vec<(u64, u64)>>>,
);

fn rss_trace() -> Trace {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (s, out) = (stop.clone(), samples.clone());
    std::thread::spawn(move || {
        let t = Instant::now();
        let mut last = 0;
        while !s.load(std::sync::atomic::Ordering::SeqCst) {
            let mb = super::status_kb("self", "VmRSS:") / 1024;
            if mb != last {
                if let Ok(mut o) = out.lock() {
                    o.push((t.elapsed().as_millis() as u64, mb));
                }
                last = mb;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    (stop, samples)
}

/// The simulator's own share of a cycle: the same request, body read and dropped, ms (p50 of 3).
pub async fn serve_ms(base_url: &str) -> f64 {
    let client = reqwest::Client::new();
    let mut fetch_ms = Vec::new();
    for _ in 0..3 {
        let req = client.get(format!("{base_url}/real_time.php?api=interactions"));
        fetch_ms.push(super::timed_get(req).await.0 * 1000.0);
    }
    super::percentile(fetch_ms, 0.5)
}

/// A target's verdict; the short mode's sizes are below the targets', so it judges nothing.
pub fn verdict(ok: bool, full: bool) -> &'static str {
    match (full, ok) {
        (false, _) => "short mode, not judged",
        (true, true) => "met",
        (true, false) => "NOT MET",
    }
}

/// P1: run, print the figures with their targets and (`full`) verdicts.
pub fn p1(
    rt: &tokio::runtime::Runtime,
    exe: &Path,
    bootstrap: &str,
    (n, cycles, full): (usize, usize, bool),
) {
    let (sim, base_url) = start_simulator(n);
    let m = run_ccdc(exe, &base_url, bootstrap, cycles);
    let serve = rt.block_on(serve_ms(&base_url));
    drop(sim);
    let (cpu, wall) = (Cycles::steady(&m.cpu_ms), Cycles::steady(&m.wall_ms));
    let (first, peak) = (m.wall_ms[0], m.peak_mb());
    println!(
        "P1 snapshot cycle: {n} interactions, 1% changing, {cycles} steady cycles: steady CPU p50 {cpu:.0} ms (target ≤ {STEADY_CPU_MS:.0}: {}), steady wall p50 {wall:.0} ms (≤ {STEADY_WALL_MS:.0}: {}), first cycle {first:.0} ms (≤ {FIRST_WALL_MS:.0}: {}), peak RSS {peak:.0} MB (≤ {PEAK_RSS_MB:.0}: {}) (ccdc pipeline in its own process; simulator in another)",
        verdict(cpu <= STEADY_CPU_MS, full),
        verdict(wall <= STEADY_WALL_MS, full),
        verdict(first <= FIRST_WALL_MS, full),
        verdict(peak <= PEAK_RSS_MB, full),
    );
    println!(
        "   P1 detail: fetch + parse + diff + commit: first {:.0} ms, steady p50 {:.0} ms; the rest of each cycle is publishing; first cycle CPU {:.0} ms; {} events in the steady cycles",
        m.poll_ms[0],
        Cycles::steady(&m.poll_ms),
        m.cpu_ms[0],
        m.steady_events
    );
    println!(
        "   P1 detail: RSS once set up {:.0} MB, peak after the first cycle {:.0} MB, peak overall {peak:.0} MB",
        m.setup_rss_kb as f64 / 1024.0,
        m.first_peak_rss_kb as f64 / 1024.0
    );
    println!("   P1 detail: serving + transferring the snapshot alone (simulator, its own process): p50 {serve:.0} ms");
}

/// `--only p1parts`: the parts of a steady P1 cycle's poll measured alone, in this process, on
/// two consecutive responses of the simulator (µs, median of 15; `CCDC_BENCH_PARTS_REPS=1` for
/// one pass each, under callgrind): decoding and settling the second against the first (read
/// whole, and streamed), the diff, the state writes (a delta), the events' outbox encoding.
pub fn parts(rt: &tokio::runtime::Runtime, n: usize) {
    use ccdc::sources::bound::PollBound;
    use ccdc::sources::http::Body;
    use ccdc::sources::wolkvox::interactions::parse_interactions_after;
    let (sim, base_url) = start_simulator(n);
    let client = reqwest::Client::new();
    let get = || async {
        client
            .get(format!("{base_url}/real_time.php?api=interactions"))
            .header("wolkvox-token", "bench-token")
            .send()
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body")
    };
    let (a, b) = rt.block_on(async { (get().await, get().await) });
    drop(sim);
    let tz: chrono_tz::Tz = "America/Bogota".parse().expect("tz");
    let bound = PollBound::new(u64::MAX, 256 << 20);
    let parse = |body: Body<'_>, prev| {
        parse_interactions_after("bench", tz, 2, bound, body, prev).expect("parse")
    };
    let prev = parse(Body::Whole(&a), None);
    let reps = std::env::var("CCDC_BENCH_PARTS_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let time = |f: &mut dyn FnMut()| -> f64 {
        let mut v: Vec<f64> = (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let whole = time(&mut || drop(parse(Body::Whole(&b), Some(&prev))));
    let streamed = time(&mut || drop(parse(Body::Stream(&mut &b[..]), Some(&prev))));
    let cur = parse(Body::Whole(&b), Some(&prev));
    let meta = ccdc::event::SourceMeta {
        name: "bench".into(),
        vendor: "wolkvox".into(),
    };
    let diff = time(&mut || {
        drop(ccdc::diff::diff_interactions_events(
            &meta,
            Some(&prev),
            &cur,
        ))
    });
    // `prev` as the store would hold it (a base), so `cur`'s writes are a delta.
    drop(ccdc::store::buckets::interaction_writes("k", None, &prev));
    let writes = time(&mut || {
        drop(ccdc::store::buckets::interaction_writes(
            "k",
            Some(&prev),
            &cur,
        ))
    });
    // The first cycle's parts: every date read, 60,000 initial events, a base.
    let first_parse = time(&mut || drop(parse(Body::Whole(&b), None)));
    let first_diff = time(&mut || drop(ccdc::diff::diff_interactions_events(&meta, None, &cur)));
    let base = time(&mut || drop(ccdc::store::buckets::interaction_writes("k", None, &cur)));
    let events = ccdc::diff::diff_interactions_events(&meta, Some(&prev), &cur);
    let encode = time(&mut || {
        drop(
            events
                .iter()
                .map(ccdc::store::outbox::encode)
                .collect::<Vec<_>>(),
        )
    });
    println!(
        "   P1 parts ({n} interactions, {} bytes, {} events; µs, median of {reps}): decode + settle {whole:.0} (streamed {streamed:.0}), diff {diff:.0}, state writes {writes:.0}, outbox encoding {encode:.0}; first cycle: decode, every date read {first_parse:.0}, diff ({n} events) {first_diff:.0}, a base {base:.0}",
        b.len(),
        events.len()
    );
}
