//! **TRUTH**: the service in-process ([`run_with`], in-memory store and sink, JSON records) against a
//! simulated Wolkvox operation whose ground truth is known to the millisecond, scored against it
//! (`ccdc::simulator::truth::score`; `tests/truth.rs` asserts the same on a smaller world).
//!
//! Larger than the test, and harsher: chats up to 24 poll intervals, longer than `settle_delay`
//! (the report is pulled while some are still going on), and report calls that take 200 ms on the
//! token's one request slot (real-time polls wait behind them). `--short`: a few seconds.
//! `cargo bench --bench ccdc-bench -- --only truth` runs it alone (no broker needed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ccdc::app::{run_with, Parts};
use ccdc::config::Config;
use ccdc::simulator::truth::score::{score, unreconciled, Observed};
use ccdc::simulator::truth::{TruthSpec, TruthWorld};
use ccdc::simulator::{SimMode, SimServer, SimState};
use ccdc::sink::MemorySink;
use ccdc::store::MemoryStore;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "truth-bench-token";

/// The world of this run: full: 40 agents, 75 s of chats polled every 500 ms; short: 8 agents,
/// 4 s polled every 250 ms.
fn spec(short: bool, now: i64) -> TruthSpec {
    let (agents, interval, horizon) = if short {
        (8, 250, 4_000)
    } else {
        (40, 500, 75_000)
    };
    let mut spec = TruthSpec::new(14, agents, now, interval);
    spec.warmup_ms = 20 * interval;
    spec.horizon_ms = horizon;
    spec.max_chat_ms = 24 * interval;
    // Whole seconds, as an operator would configure it (a fractional one is handled too:
    // `tests/truth.rs`).
    spec.settle_ms = if short { 3_000 } else { 5_000 };
    spec.report_interval_ms = 2 * interval;
    spec.report_latency_ms = 200;
    spec
}

async fn run_async(short: bool) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let spec = spec(short, now);
    let world = TruthWorld::new(spec.clone());
    let sim = SimServer::start(
        "127.0.0.1:0".parse()?,
        SimState::new(TOKEN, SimMode::Truth(world.clone())),
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN)?;
    let config = Config::from_toml_str(&spec.ccdc_config(
        &sim.base_url(),
        &token_file.display().to_string(),
        &dir.path().join("state").display().to_string(),
    ))?;
    let sink = MemorySink::default();
    let parts = Parts {
        store: Arc::new(MemoryStore::default()),
        sink: Arc::new(sink.clone()),
        registry: None,
        create_topics: None,
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_with(config.clone(), parts, shutdown.clone()));
    let started = Instant::now();
    let last_end = world
        .truth()
        .chats
        .iter()
        .map(|c| c.end_ms)
        .max()
        .unwrap_or(now);
    let deadline =
        started + Duration::from_millis((last_end - now + spec.settle_ms + 20_000).max(0) as u64);
    let mut waiting = 0;
    while Instant::now() < deadline {
        let observed = Observed::from_records(&sink.delivered(), &config.topics);
        waiting = unreconciled(&world, &observed);
        if waiting == 0 && chrono::Utc::now().timestamp_millis() > last_end + 2 * spec.interval_ms {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(15), task).await {
        Ok(joined) => joined??,
        Err(_) => anyhow::bail!("ccdc did not stop within 15 s"),
    }
    sim.stop().await;
    let observed = Observed::from_records(&sink.delivered(), &config.topics);
    let s = score(&world, &observed);
    let truth = world.truth();
    let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
    println!(
        "TRUTH {} agents, {} chats ({} transferred), {:.0} s: events {} (interactions {}, statuses {}, reconciled {}); precision {:.2} % (at ccdc's own stamps {:.2} %); recall of segments > 2 intervals {:.2} %; chats accounted for: real time {:.1} %, after reconciliation {:.1} %; handle-time MAE {} ms before reconciliation, {} ms after; true durations within ccdc's bounds {:.1} %; status_since MAE {} ms",
        spec.agents,
        truth.chats.len(),
        truth.chats.iter().filter(|c| c.segments.len() > 1).count(),
        started.elapsed().as_secs_f64(),
        s.interaction_events + s.status_events + s.reconciled_records,
        s.interaction_events,
        s.status_events,
        s.reconciled_records,
        s.precision(),
        s.strict_precision(),
        s.recall(),
        100.0 * s.chats_realtime as f64 / s.chats.max(1) as f64,
        100.0 * s.chats_after_reconciliation as f64 / s.chats.max(1) as f64,
        f(s.handle_mae_polling.0),
        f(s.handle_mae_report.0),
        100.0 * s.within_bounds.0 as f64 / s.within_bounds.1.max(1) as f64,
        f(s.status_since_mae),
    );
    for line in s.report().lines() {
        println!("   TRUTH detail: {line}");
    }
    if waiting > 0 {
        println!("   TRUTH detail: deadline reached with {waiting} chats not reconciled");
    }
    for (what, list) in [
        ("contradicts the vendor's answer", &s.violations),
        (
            "contradicts the truth at ccdc's stamp",
            &s.strict_violations,
        ),
        ("in_report = false, yet reported", &s.false_only_polling),
        (
            "in_report = false, still going on",
            &s.premature_only_polling,
        ),
        ("segment missed", &s.recall_missing),
        ("reconciliation", &s.reconciliation_problems),
    ] {
        for v in list.iter().take(3) {
            println!("   TRUTH example ({what}): {v}");
        }
    }
    Ok(())
}

/// Run the TRUTH benchmark on its own runtime and print its figures.
pub fn run(short: bool) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(e) = rt.block_on(run_async(short)) {
        println!("TRUTH failed: {e:#}");
    }
}
