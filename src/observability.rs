//! Operators' view: `/metrics` (Prometheus text), `/healthz` (the process is up and its state store
//! usable in it) and `/readyz` (every feed polled successfully within `stale_after_intervals` × its
//! interval, the state store open, the outbox under its bound, the publisher running) on a loopback
//! address.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreHealth};

/// How often histogram samples are folded into their buckets when nobody scrapes `/metrics`.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Buckets of `ccdc_poll_start_lag_seconds` (how late a poll starts after it is due): finer
/// around the 0.5 s that a thousand sources in one process must stay under (BENCHMARKS.md, P6).
pub const LAG_BUCKETS: [f64; 14] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 10.0,
];

/// Install the Prometheus recorder once per process; `None` if another recorder is installed.
///
/// The recorder keeps every histogram sample (one per published record, for the publish latency)
/// until a scrape or an upkeep folds them into buckets, so a thread runs the upkeep every
/// `UPKEEP_EVERY`: without it, memory grew with every record while `/metrics` went unscraped.
/// The counters without labels, exported at 0 from the start: a series that exists before its
/// first increment lets `increase()` and `rate()` see that increment. Labelled counters whose
/// label values are fixed are too ([`LABELLED_FROM_ZERO`]); those labelled by source appear at
/// their first increment (`ccdc_checkpoint_resumes_total` when its report feed starts).
pub const COUNTERS_FROM_ZERO: &[&str] = &[
    "ccdc_checkpoints_written_total",
    "ccdc_event_fields_cut_total",
    "ccdc_events_published_total",
    "ccdc_kafka_connection_errors_total",
    "ccdc_poller_tasks_ended_total",
    "ccdc_producer_queue_full_total",
    "ccdc_records_dead_lettered_total",
    "ccdc_records_set_aside_total",
    "ccdc_store_failures_total",
    "ccdc_store_reopened_total",
];

/// Labelled counters whose label values are a fixed set, each value set exported at 0 from the
/// start (for the reason of [`COUNTERS_FROM_ZERO`]): failures by kind, the producer replaced by
/// reason. Example: `ccdc_checkpoint_errors_total{op="write",kind="retryable"} 0`.
pub const LABELLED_FROM_ZERO: &[(&str, &[(&str, &str)])] = &[
    (
        "ccdc_checkpoint_errors_total",
        &[("op", "read"), ("kind", "retryable")],
    ),
    (
        "ccdc_checkpoint_errors_total",
        &[("op", "read"), ("kind", "fatal")],
    ),
    (
        "ccdc_checkpoint_errors_total",
        &[("op", "read"), ("kind", "malformed")],
    ),
    (
        "ccdc_checkpoint_errors_total",
        &[("op", "write"), ("kind", "retryable")],
    ),
    (
        "ccdc_checkpoint_errors_total",
        &[("op", "write"), ("kind", "fatal")],
    ),
    ("ccdc_producer_recreated_total", &[("reason", "fatal")]),
    ("ccdc_producer_recreated_total", &[("reason", "stalled")]),
    ("ccdc_publish_errors_total", &[("kind", "retryable")]),
    ("ccdc_publish_errors_total", &[("kind", "fatal")]),
    ("ccdc_publish_errors_total", &[("kind", "encode")]),
    ("ccdc_publish_errors_total", &[("kind", "store")]),
    ("ccdc_registry_errors_total", &[("kind", "unavailable")]),
    ("ccdc_registry_errors_total", &[("kind", "rejected")]),
];

pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ];
            let handle = PrometheusBuilder::new()
                .set_buckets(&buckets)
                .ok()?
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "ccdc_poll_start_lag_seconds".into(),
                    ),
                    &LAG_BUCKETS,
                )
                .ok()?
                .install_recorder()
                .ok()?;
            for name in COUNTERS_FROM_ZERO {
                metrics::counter!(*name).increment(0);
            }
            for (name, labels) in LABELLED_FROM_ZERO {
                let labels: Vec<metrics::Label> = labels
                    .iter()
                    .map(|(k, v)| metrics::Label::new(*k, *v))
                    .collect();
                metrics::counter!(*name, labels).increment(0);
            }
            let upkeep = handle.clone();
            let started = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            if let Err(e) = started {
                tracing::warn!(error = %e, "cannot start the metrics upkeep thread: histogram samples are folded only when /metrics is scraped");
            }
            Some(handle)
        })
        .clone()
}

struct FeedHealth {
    interval: Duration,
    last_success: Option<Instant>,
    /// A failure only an operator can fix (configuration, credentials): set until a poll succeeds.
    failed: Option<String>,
}

/// What readiness is judged on.
pub struct Health {
    feeds: Mutex<BTreeMap<String, FeedHealth>>,
    store: Arc<dyn Store>,
    outbox_bound: usize,
    stale_after_intervals: u32,
    publishing: AtomicBool,
    /// Outbox entries that could be neither delivered nor dead-lettered, kept aside in the store.
    set_aside: std::sync::atomic::AtomicUsize,
}

impl Health {
    pub fn new(
        store: Arc<dyn Store>,
        outbox_bound: usize,
        stale_after_intervals: u32,
    ) -> Arc<Self> {
        Arc::new(Health {
            feeds: Mutex::new(BTreeMap::new()),
            store,
            outbox_bound,
            stale_after_intervals,
            publishing: AtomicBool::new(false),
            set_aside: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, FeedHealth>> {
        self.feeds.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(&self, feed: &str, interval: Duration) {
        self.lock().insert(
            feed.to_string(),
            FeedHealth {
                interval,
                last_success: None,
                failed: None,
            },
        );
    }

    pub fn success(&self, feed: &str) {
        if let Some(f) = self.lock().get_mut(feed) {
            f.last_success = Some(Instant::now());
            f.failed = None;
        }
    }

    /// The feed failed in a way retrying will not fix: not ready until it succeeds again.
    pub fn failed(&self, feed: &str, reason: String) {
        if let Some(f) = self.lock().get_mut(feed) {
            f.failed = Some(reason);
        }
    }

    pub fn set_publishing(&self, on: bool) {
        self.publishing.store(on, Ordering::SeqCst);
    }

    /// How many outbox entries are kept aside (not ready while there are any: an operator must
    /// look at them).
    pub fn set_aside(&self, n: usize) {
        self.set_aside.store(n, Ordering::SeqCst);
    }

    pub fn outbox_over_bound(&self) -> bool {
        self.store.outbox_len() > self.outbox_bound
    }

    /// `Ok` while the process can do its work; else why not. Only a state store that cannot be
    /// reopened in this process fails it (a restart is the remedy); everything else that a
    /// restart would not fix (a full disk, a broker away, a stale feed) is for `/readyz`.
    pub fn liveness(&self) -> Result<(), String> {
        match self.store.health() {
            StoreHealth::Unusable(reason) => Err(reason),
            StoreHealth::Ok | StoreHealth::Failing(_) => Ok(()),
        }
    }

    /// `Ok` when ready, else every reason it is not.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        let mut reasons = Vec::new();
        if !self.publishing.load(Ordering::SeqCst) {
            reasons.push(
                "the publisher is not running yet (topics or schemas not settled)".to_string(),
            );
        }
        let aside = self.set_aside.load(Ordering::SeqCst);
        if aside > 0 {
            reasons.push(format!(
                "{aside} outbox entries could be neither delivered nor dead-lettered; they are kept aside in the state store under `aside/` (see the log)"
            ));
        }
        match self.store.health() {
            StoreHealth::Ok => {}
            StoreHealth::Failing(reason) | StoreHealth::Unusable(reason) => reasons.push(reason),
        }
        let depth = self.store.outbox_len();
        if depth > self.outbox_bound {
            reasons.push(format!(
                "outbox holds {depth} events, over its bound of {}",
                self.outbox_bound
            ));
        }
        for (name, f) in self.lock().iter() {
            if let Some(reason) = &f.failed {
                reasons.push(format!("{name}: failed, needs an operator: {reason}"));
                continue;
            }
            let limit = f.interval * self.stale_after_intervals;
            match f.last_success {
                None => reasons.push(format!("{name}: no successful poll yet")),
                Some(t) if t.elapsed() > limit => reasons.push(format!(
                    "{name}: stale, last success {}s ago",
                    t.elapsed().as_secs()
                )),
                Some(_) => {}
            }
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }
}

#[derive(Clone)]
struct Ctx {
    health: Arc<Health>,
    prometheus: Option<PrometheusHandle>,
}

async fn metrics_page(State(ctx): State<Ctx>) -> impl IntoResponse {
    let depth = ctx.health.store.outbox_len();
    metrics::gauge!("ccdc_outbox_depth").set(depth as f64);
    match &ctx.prometheus {
        Some(h) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable",
        )
            .into_response(),
    }
}

async fn live(State(ctx): State<Ctx>) -> impl IntoResponse {
    match ctx.health.liveness() {
        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not live:\n- {reason}\n"),
        ),
    }
}

async fn ready(State(ctx): State<Ctx>) -> impl IntoResponse {
    match ctx.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(reasons) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready:\n- {}\n", reasons.join("\n- ")),
        ),
    }
}

/// Serve the endpoints on `addr` until `shutdown`; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let ctx = Ctx {
        health,
        prometheus: prometheus(),
    };
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
        .with_state(ctx);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
        {
            tracing::error!(error = %e, "observability server failed");
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn every_counter_without_labels_is_exported_at_zero_from_the_start() {
        let page = prometheus().expect("the recorder").render();
        for name in COUNTERS_FROM_ZERO {
            assert!(
                page.lines().any(|l| l.starts_with(&format!("{name} "))),
                "{name} is not on the page:\n{page}"
            );
        }
        // And the list is every counter recorded without labels in src/.
        let mut unlabelled = std::collections::BTreeSet::new();
        let mut dirs = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for piece in text.split("metrics::counter!(\"").skip(1) {
                        if let Some((name, rest)) = piece.split_once('"') {
                            if rest.starts_with(')') {
                                unlabelled.insert(name.to_string());
                            }
                        }
                    }
                }
            }
        }
        let listed: std::collections::BTreeSet<String> =
            COUNTERS_FROM_ZERO.iter().map(|s| s.to_string()).collect();
        assert_eq!(listed, unlabelled);
    }

    #[test]
    fn labelled_counters_of_fixed_label_values_are_exported_at_zero_from_the_start() {
        let page = prometheus().expect("the recorder").render();
        let src = |dir: &str| {
            let mut text = String::new();
            let mut dirs = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir)];
            while let Some(dir) = dirs.pop() {
                for entry in std::fs::read_dir(dir).unwrap() {
                    let path = entry.unwrap().path();
                    if path.is_dir() {
                        dirs.push(path);
                    } else if path.extension().is_some_and(|x| x == "rs")
                        && !path.ends_with("observability.rs")
                    {
                        text.push_str(&std::fs::read_to_string(&path).unwrap());
                    }
                }
            }
            text
        };
        let code = src("src");
        for (name, labels) in LABELLED_FROM_ZERO {
            // Labels render in the order given.
            let series = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect::<Vec<_>>()
                .join(",");
            // Other tests of this process may have incremented it since: on the page is enough.
            assert!(
                page.lines()
                    .any(|l| l.starts_with(&format!("{name}{{{series}}} "))),
                "{name}{{{series}}} is not on the page:\n{page}"
            );
            // Each is a counter ccdc records, and each label value one it uses.
            assert!(
                code.contains(&format!("metrics::counter!(\"{name}\"")),
                "{name}"
            );
            for (k, v) in *labels {
                assert!(code.contains(&format!("\"{k}\" =>")), "{name}: {k}");
                assert!(code.contains(&format!("\"{v}\"")), "{name}: {k} = {v}");
            }
        }
    }

    #[test]
    fn readiness_needs_fresh_feeds_a_running_publisher_and_a_bounded_outbox() {
        let store = Arc::new(MemoryStore::default());
        let h = Health::new(store.clone(), 2, 3);
        h.register("s/e", Duration::from_millis(10));
        let reasons = h.readiness().unwrap_err();
        assert!(
            reasons.iter().any(|r| r.contains("publisher"))
                && reasons.iter().any(|r| r.contains("no successful poll")),
            "{reasons:?}"
        );
        h.set_publishing(true);
        h.success("s/e");
        assert_eq!(h.readiness(), Ok(()));
        std::thread::sleep(Duration::from_millis(40));
        assert!(h.readiness().unwrap_err()[0].contains("stale"));
        h.success("s/e");
        store
            .commit(vec![], vec![b"1".to_vec(), b"2".to_vec(), b"3".to_vec()])
            .unwrap();
        assert!(h.readiness().unwrap_err()[0].contains("over its bound"));
        assert!(h.outbox_over_bound());
    }

    #[test]
    fn a_failing_store_is_not_ready_and_an_unusable_one_not_live() {
        let store = Arc::new(MemoryStore::default());
        let h = Health::new(store.clone(), 10, 1_000);
        h.set_publishing(true);
        assert_eq!((h.readiness(), h.liveness()), (Ok(()), Ok(())));
        let failing = "state store: write failed: No space left on device (os error 28)";
        store.set_health(StoreHealth::Failing(failing.into()));
        assert_eq!(h.readiness(), Err(vec![failing.to_string()]));
        assert_eq!(h.liveness(), Ok(()), "reopening: a restart would not help");
        store.set_health(StoreHealth::Unusable(
            "state store unusable: restart".into(),
        ));
        assert!(h.readiness().is_err());
        assert_eq!(h.liveness(), Err("state store unusable: restart".into()));
        store.set_health(StoreHealth::Ok);
        assert_eq!((h.readiness(), h.liveness()), (Ok(()), Ok(())));
    }
}
