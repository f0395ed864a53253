//! Every metric the Prometheus rules (`deploy/prometheus/ccdc-rules.yaml`) and the Grafana
//! dashboard (`deploy/grafana/ccdc.json`) use is one ccdc records and documents, and is on the
//! `/metrics` page of a running ccdc (the binary, tansu, rivven-schema, the simulator) driven
//! through the events that make each appear: the exporter shows a series only once it is touched.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `ccdc_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split("ccdc_")
        .skip(1)
        .map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            format!("ccdc_{name}")
        })
        .collect()
}

/// Metrics recorded in `src/` with `counter!`, `gauge!` or `histogram!` (as tests/docs.rs reads
/// them), by kind.
fn recorded_in_src() -> Vec<(&'static str, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("src"), &mut files);
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for kind in ["counter", "gauge", "histogram"] {
            for piece in text.split(&format!("{kind}!(")).skip(1) {
                if let Some(rest) = piece.trim_start().strip_prefix('"') {
                    out.push((kind, rest.split('"').next().unwrap().to_string()));
                }
            }
        }
    }
    out
}

/// Whether a sample of `name` is on the page (a histogram by its `_count` series).
fn on_page(page: &str, name: &str) -> bool {
    [name.to_string(), format!("{name}_count")].iter().any(|n| {
        page.lines()
            .any(|l| l.starts_with(&format!("{n}{{")) || l.starts_with(&format!("{n} ")))
    })
}

#[derive(Clone, Copy)]
enum Seen {
    Present,
    Counted,
}

const SOURCES: &str = r#"
[[sources]]
vendor = "wolkvox"
name = "deploy-wv"
base_url = "{wolkvox}"
token = { file = "{token_file}" }
time_zone = "America/Bogota"
allow_insecure_http = true
request_timeout = "5s"
daily_call_limit = 1000000
[sources.interactions]
interval = "200ms"
max_backoff = "200ms"
[sources.agents]
interval = "200ms"
max_backoff = "200ms"
# 30 rows in the first window: over the row limit of 20, split in halves.
[[sources.reports]]
report = "chat_1"
interval = "1s"
max_backoff = "1s"
settle_delay = "0s"
lookback = "30m"
max_window = "30m"
row_limit = 20
# One row a minute and a row limit of 1: still at the limit at min_window, an overflow.
[[sources.reports]]
report = "diagram_9"
interval = "1s"
max_backoff = "1s"
settle_delay = "0s"
lookback = "30m"
row_limit = 1
min_window = "1m"

[publisher]
max_outbox_events = 5
"#;

/// The sum of the samples of counter `name` on the page.
fn counted(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The page once every name in `names` is on it (`Present`) or counted above 0 (`Counted`), or
/// the names still missing after `timeout`.
async fn page_with(
    url: &str,
    names: &BTreeSet<String>,
    how: Seen,
    timeout: Duration,
) -> (String, Vec<String>) {
    let start = Instant::now();
    loop {
        let page = common::http_get(url).unwrap_or_default();
        let missing: Vec<String> = names
            .iter()
            .filter(|n| match how {
                Seen::Present => !on_page(&page, n),
                Seen::Counted => counted(&page, n) <= 0.0,
            })
            .cloned()
            .collect();
        if missing.is_empty() || start.elapsed() > timeout {
            return (page, missing);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_dashboard_use_is_on_a_live_metrics_page() {
    use ccdc::simulator::reports::{generated_row, SIM_TZ};
    use ccdc::simulator::{SimAgent, SimInteraction, SimMode};

    let rules = std::fs::read_to_string(root().join("deploy/prometheus/ccdc-rules.yaml")).unwrap();
    let dash = std::fs::read_to_string(root().join("deploy/grafana/ccdc.json")).unwrap();
    let used: BTreeSet<String> = metric_names(&rules)
        .into_iter()
        .chain(metric_names(&dash))
        .collect();
    assert!(used.len() > 20, "{used:?}");

    // Each is a metric ccdc records (histograms by their series), documented in the README.
    let recorded = recorded_in_src();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for name in &used {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|b| recorded.iter().any(|(k, n)| *k == "histogram" && n == b))
            })
            .unwrap_or(name);
        assert!(
            recorded.iter().any(|(_, n)| n == base),
            "{name} is not a metric ccdc records"
        );
        assert!(
            readme.contains(&format!("`{base}")),
            "{base} is not in the README"
        );
    }

    // A chat with an oversized subject and from-name: its record is over the producer's limit
    // below, so it goes to the dead-letter topic.
    let big = "x".repeat(30_000);
    let chat = |c: &str, v: &str| SimInteraction {
        conn_id: c.into(),
        subject: v.into(),
        fromname: v.into(),
        date: "2026-11-21 10:15:00".into(),
    };
    let steps = vec![vec![SimAgent::new(
        "1001",
        "Busy",
        vec![chat("c1", "s"), chat("c2", &big)],
    )]];
    let mut s = common::Stack::start("deploy-token", SimMode::Scripted(steps), SOURCES, &[]).await;
    let cfg = std::fs::read_to_string(&s.config).unwrap().replace(
        "message_timeout = \"30s\"\n",
        "message_timeout = \"2s\"\n[kafka.properties]\n\"message.max.bytes\" = \"50000\"\n",
    );
    std::fs::write(&s.config, cfg).unwrap();
    // A chat_1 row ten minutes ago whose count is not a number: a report dead letter.
    let at =
        chrono::Utc::now().with_timezone(&SIM_TZ).naive_local() - chrono::Duration::minutes(10);
    let mut row = generated_row("chat_1", at);
    row.insert("customer_chars".into(), "many".into());
    s.sim.state.add_report_row("chat_1", at, row);
    let _ccdc = s.ccdc(&[]);
    let metrics = format!("{}/metrics", s.ops_url);

    // Running: polls, reports (split, overflowing, reconciled, a dead-lettered row), the quota,
    // publishing, the dead-lettered record, pollers paused while report rows fill the outbox.
    let broker_faults: BTreeSet<String> = [
        "ccdc_kafka_connection_errors_total",
        "ccdc_publish_errors_total",
        "ccdc_producer_recreated_total",
    ]
    .map(String::from)
    .into();
    let running: BTreeSet<String> = used
        .iter()
        .filter(|n| !broker_faults.contains(*n))
        .cloned()
        .collect();
    let (page, missing) =
        page_with(&metrics, &running, Seen::Present, Duration::from_secs(90)).await;
    assert!(
        missing.is_empty(),
        "not on /metrics: {missing:?}\n{page}\n{}",
        common::read_to_string(&s.log)
    );

    // The broker goes away: connection errors, records timing out, the producer replaced. These
    // counters are on the page at 0 from the start: each must now count something.
    s.infra.stop_broker();
    let (page, missing) = page_with(
        &metrics,
        &broker_faults,
        Seen::Counted,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        missing.is_empty(),
        "not on /metrics: {missing:?}\n{page}\n{}",
        common::read_to_string(&s.log)
    );
}
