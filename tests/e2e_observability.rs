//! `/metrics`, `/healthz`, `/readyz` and heartbeats, scraped while ccdc runs against the simulator:
//! values move as the scenario runs, readiness fails while a feed is stale and recovers after.

mod common;

use std::time::{Duration, Instant};

use ccdc::event::Heartbeat;
use ccdc::simulator::{Fault, Route, SimMode};
use common::{http_status as get, sim_agent, Stack};

/// The value of the first sample of `metric` whose labels contain every `label`.
fn sample(page: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    page.lines()
        .filter(|l| {
            !l.starts_with('#')
                && (l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        })
        .find(|l| labels.iter().all(|x| l.contains(x)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The current value of `metric` at the `/metrics` page `url` (0 while it is absent).
fn scrape(url: &str, metric: &str, labels: &[&str]) -> f64 {
    sample(&get(url).1, metric, labels).unwrap_or(0.0)
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "{what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const SOURCES: &str = r#"
[[sources]]
vendor = "wolkvox"
name = "obs-it"
base_url = "{wolkvox}"
token = { file = "{token_file}" }
time_zone = "America/Bogota"
allow_insecure_http = true
request_timeout = "5s"
[sources.interactions]
interval = "200ms"
max_backoff = "200ms"
[sources.agents]
interval = "200ms"
max_backoff = "200ms"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_readiness_follows_staleness_and_heartbeats_flow() {
    let steps = vec![
        vec![sim_agent("1001", "Busy", &["c1"])],
        vec![sim_agent("1001", "Busy", &["c2"])],
    ];
    let s = Stack::start(
        "obs-token-1",
        SimMode::Scripted(steps),
        SOURCES,
        &[("heartbeat", "ccdc.it.heartbeat")],
    )
    .await;
    let _ccdc = s.ccdc(&[]);
    let (ready, health) = (
        format!("{}/readyz", s.ops_url),
        format!("{}/healthz", s.ops_url),
    );
    wait_for("/readyz 200", Duration::from_secs(60), || {
        get(&ready).0 == 200
    })
    .await;
    assert_eq!(get(&health), (200, "ok\n".to_string()));

    let metrics = format!("{}/metrics", s.ops_url);
    let polls = |page: &str| {
        sample(
            page,
            "ccdc_polls_total",
            &[
                "endpoint=\"real_time.php?api=interactions\"",
                "source=\"obs-it\"",
            ],
        )
        .unwrap_or(0.0)
    };
    let first = get(&metrics).1;
    tokio::time::sleep(Duration::from_secs(1)).await;
    s.sim.state.advance();
    wait_for(
        "the c2 events to be counted",
        Duration::from_secs(30),
        || {
            scrape(
                &metrics,
                "ccdc_events_total",
                &["type=\"interaction-ended\""],
            ) >= 1.0
        },
    )
    .await;
    let second = get(&metrics).1;
    assert!(
        polls(&second) > polls(&first),
        "polls move: {} -> {}",
        polls(&first),
        polls(&second)
    );
    assert!(
        sample(
            &second,
            "ccdc_events_total",
            &["type=\"interaction-started\""]
        )
        .unwrap_or(0.0)
            >= 2.0
    );
    assert!(
        sample(&second, "ccdc_events_published_total", &[]).unwrap_or(0.0) >= 3.0,
        "{second}"
    );
    assert!(
        second.contains("ccdc_publish_latency_seconds_bucket"),
        "publish latency histogram"
    );
    assert!(
        second.contains("ccdc_poll_duration_seconds_bucket"),
        "poll latency histogram"
    );
    assert!(sample(&second, "ccdc_outbox_depth", &[]).is_some());
    assert!(
        sample(
            &second,
            "ccdc_last_success_timestamp_seconds",
            &["source=\"obs-it\""]
        )
        .unwrap_or(0.0)
            > 1.7e9
    );
    assert!(
        sample(&second, "ccdc_vendor_calls_today", &["source=\"obs-it\""]).unwrap_or(0.0) >= 2.0
    );

    // The vendor fails for a while: the feed goes stale, readiness says so, failures are counted.
    s.sim
        .state
        .inject_at(Route::WolkvoxInteractions, Fault::Http500, 40);
    wait_for("/readyz 503", Duration::from_secs(30), || {
        get(&ready).0 == 503
    })
    .await;
    let (_, why) = get(&ready);
    assert!(
        why.contains("obs-it real_time.php?api=interactions") && why.contains("stale"),
        "{why}"
    );
    // Staleness is by time and failures by count: on a slow box the feed can be stale after two
    // failed polls, so wait for the third to be counted.
    let failures = || scrape(&metrics, "ccdc_poll_failures_total", &["kind=\"http_5xx\""]);
    wait_for(
        "three failed polls counted",
        Duration::from_secs(30),
        || failures() >= 3.0,
    )
    .await;
    wait_for("/readyz 200 again", Duration::from_secs(60), || {
        get(&ready).0 == 200
    })
    .await;

    // Heartbeats: one per feed every 5 polls, with a growing poll count.
    let mut hb = s.reader("ccdc.it.heartbeat").await;
    // Read what every partition holds: the two feeds' heartbeats have different keys, and the first
    // ten records read may all come from one partition.
    hb.poll_for(Duration::from_secs(3));
    let beats: Vec<(common::Record, Heartbeat)> = s.read(&mut hb, 10);
    let interactions: Vec<i64> = beats
        .iter()
        .filter(|(_, h)| h.endpoint == "real_time.php?api=interactions")
        .map(|(_, h)| h.polls)
        .collect();
    assert!(
        !interactions.is_empty() && interactions.iter().all(|p| p % 5 == 0),
        "{interactions:?}"
    );
    assert!(beats
        .iter()
        .all(|(r, h)| r.key == format!("obs-it/{}", h.endpoint) && h.vendor == "wolkvox"));
}

/// The broker goes away: events wait in the outbox; once it holds more than its bound, polling
/// pauses, readiness says why, and nothing is dropped. Then a broker comes back on the same
/// address, empty (tansu keeps its data in memory only), and every held event reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_fills_the_outbox_pauses_polling_and_drops_nothing() {
    let steps: Vec<_> = ["c1", "c2"]
        .iter()
        .map(|c| vec![sim_agent("1001", "Busy", &[c])])
        .collect();
    // A bound of 1 and no heartbeats: the outbox can only go over its bound with the two events
    // of the step below (c1 ended, c2 started), so polling cannot pause before that step is seen.
    // (With heartbeats, it could pause on them alone, after one request or none.)
    let sources = format!("{SOURCES}\n[publisher]\nmax_outbox_events = 1\n");
    let mut s = Stack::start("obs-token-2", SimMode::Scripted(steps), &sources, &[]).await;
    // Records time out after 2 s, so a stalled producer is replaced after 6 s.
    let cfg = std::fs::read_to_string(&s.config).expect("config");
    let cfg = cfg
        .replace("message_timeout = \"30s\"", "message_timeout = \"2s\"")
        .replace("heartbeat_every_polls = 5", "heartbeat_every_polls = 0");
    assert!(cfg.contains("heartbeat_every_polls = 0"), "{cfg}");
    std::fs::write(&s.config, cfg).expect("config");
    let _ccdc = s.ccdc(&[]);
    let (ready, metrics) = (
        format!("{}/readyz", s.ops_url),
        format!("{}/metrics", s.ops_url),
    );
    let published = || scrape(&metrics, "ccdc_events_published_total", &[]);
    // Everything made so far (c1's start, the agent's status) has left the outbox.
    wait_for("c1's start published", Duration::from_secs(60), || {
        let page = get(&metrics).1;
        get(&ready).0 == 200
            && published() >= 1.0
            && sample(&page, "ccdc_outbox_depth", &[]) == Some(0.0)
    })
    .await;

    // c1 ends and c2 starts while the broker is away: two events, over the bound of 1.
    s.infra.stop_broker();
    s.sim.state.advance();
    wait_for("/readyz 503", Duration::from_secs(30), || {
        get(&ready).0 == 503
    })
    .await;
    let (_, why) = get(&ready);
    assert!(why.contains("over its bound of 1"), "{why}");
    let page = get(&metrics).1;
    let depth = sample(&page, "ccdc_outbox_depth", &[]).unwrap_or(0.0);
    assert!(depth > 1.0, "{page}");
    let delivered = sample(&page, "ccdc_events_published_total", &[]).unwrap_or(0.0);
    // Paused: at a 200 ms interval, two seconds would be about ten polls.
    let polls = || {
        scrape(
            &metrics,
            "ccdc_polls_total",
            &["endpoint=\"real_time.php?api=interactions\""],
        )
    };
    let before = polls();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        polls() <= before + 1.0,
        "polling paused: {before} -> {}",
        polls()
    );

    // Nothing is dropped while the broker is away: the outbox still holds every event it held,
    // and none was counted as published.
    let page = get(&metrics).1;
    assert!(
        sample(&page, "ccdc_outbox_depth", &[]).unwrap_or(0.0) >= depth,
        "{page}"
    );
    assert_eq!(
        sample(&page, "ccdc_events_published_total", &[]).unwrap_or(0.0),
        delivered,
        "{page}"
    );

    // A broker comes back on the same address: a new, empty cluster, its topics created again
    // as an operator would. It does not know the producer id ccdc's producer was given by the
    // old one and answers UNKNOWN_PRODUCER_ID to every request; ccdc replaces a producer that
    // has delivered nothing for three message timeouts, and the held events arrive.
    let back_at = chrono::Utc::now().timestamp_millis();
    s.infra.restart_broker();
    let kafka: ccdc::config::KafkaConfig = serde_json::from_value(serde_json::json!({
        "bootstrap_servers": s.infra.bootstrap,
        "partitions": 3,
        "replication_factor": 1,
    }))
    .expect("kafka config");
    let topics = ccdc::config::TopicsConfig::default();
    ccdc::topics::ensure_topics(&kafka, &ccdc::topics::stream_topics(&topics))
        .await
        .expect("topics");
    wait_for("the outbox drained", Duration::from_secs(90), || {
        sample(&get(&metrics).1, "ccdc_outbox_depth", &[]) == Some(0.0)
    })
    .await;
    wait_for("/readyz 200", Duration::from_secs(30), || {
        get(&ready).0 == 200
    })
    .await;
    assert!(
        scrape(
            &metrics,
            "ccdc_producer_recreated_total",
            &["reason=\"stalled\""]
        ) >= 1.0,
        "{}",
        get(&metrics).1
    );
    // The new cluster has exactly what was made while the broker was away: c1 ended, c2
    // started (on partitions of their own: sorted).
    let mut reader = s.reader(&topics.interactions).await;
    let records = s.read::<ccdc::event::InteractionEvent>(&mut reader, 2);
    // Sent after the outage, each is stamped with its own time: the poll that saw it, while the
    // broker was away (before: the time it was sent).
    for (r, e) in &records {
        assert_eq!(
            r.create_time,
            Some(e.observed_at),
            "record timestamp of {e:?}"
        );
        assert!(e.observed_at < back_at, "observed during the outage: {e:?}");
    }
    let mut got: Vec<(String, String)> = records
        .into_iter()
        .map(|(_, e)| (format!("{:?}", e.event_type), e.interaction_id))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("Ended".to_string(), "c1".to_string()),
            ("Started".to_string(), "c2".to_string())
        ],
        "{got:?}"
    );

    // The outage is in the log once, as a warning, and its end once; librdkafka's reports of it
    // (every reconnection attempt) are counted, not logged as errors.
    let log = std::fs::read_to_string(&s.log).expect("ccdc log");
    let unreachable = log.matches("Kafka unreachable").count();
    let reports = scrape(&metrics, "ccdc_kafka_connection_errors_total", &[]);
    println!("outage: {unreachable} log line(s), {reports} librdkafka report(s)");
    assert!(
        unreachable >= 1 && log.contains("Kafka reachable again"),
        "{log}"
    );
    assert!(reports >= unreachable as f64, "{reports} {unreachable}");
    assert!(
        !log.lines()
            .any(|l| l.contains("ERROR") && (l.contains("AllBrokersDown") || l.contains("FAIL"))),
        "{log}"
    );
}
