//! Topic creation with per-stream settings, and the start-up warnings about existing topics,
//! against a real broker (tansu, memory storage). tansu keeps the settings a topic is created with
//! and returns exactly those from DescribeConfigs (no broker defaults), so what ccdc sent is what
//! is read back here.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ccdc::config::{KafkaConfig, TopicsConfig};
use ccdc::topics::{ensure_topics, stream_topics};
use common::{free_port, Proc};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

/// A lone tansu broker (no registry needed here) on a free port.
fn tansu(dir: &std::path::Path) -> (Proc, String) {
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let bin = std::env::var("TANSU_BIN").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        let p = std::path::Path::new(&home).join(".cargo/bin/tansu");
        if p.exists() {
            p.display().to_string()
        } else {
            "tansu".into()
        }
    });
    let log = |ext: &str| std::fs::File::create(dir.join(format!("tansu.{ext}"))).unwrap();
    let child = Command::new(bin)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(log("log"))
        .stderr(log("err"))
        .spawn()
        .expect("tansu (scripts/test.sh installs it)");
    let proc = Proc {
        child,
        name: "tansu",
    };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "tansu not up");
        std::thread::sleep(Duration::from_millis(100));
    }
    (proc, format!("127.0.0.1:{port}"))
}

fn kafka(bootstrap: &str, extra: serde_json::Value) -> KafkaConfig {
    let mut v = serde_json::json!({ "bootstrap_servers": bootstrap, "partitions": 3 });
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(v).unwrap()
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

fn opts() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(Duration::from_secs(30)))
}

/// Every topic's settings as the broker describes them.
async fn described(bootstrap: &str, topics: &[&str]) -> BTreeMap<String, BTreeMap<String, String>> {
    let specs: Vec<ResourceSpecifier> =
        topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let results = admin(bootstrap)
        .describe_configs(specs.iter(), &opts())
        .await
        .unwrap();
    topics
        .iter()
        .zip(results)
        .map(|(t, r)| {
            let entries = r
                .unwrap()
                .entries
                .into_iter()
                .filter_map(|e| Some((e.name, e.value?)))
                .collect();
            (t.to_string(), entries)
        })
        .collect()
}

/// The `warn` lines logged while `f` runs (on this thread: the test runs on one).
struct Captured(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || Captured(writer.clone()))
        .finish();
    (buf, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn every_topic_is_created_with_its_streams_settings() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = tansu(dir.path());
    let cfg = kafka(
        &bootstrap,
        serde_json::json!({
            "topic_defaults": { "compression.type": "zstd" },
            "topic_settings": { "dead_letter": { "retention.ms": "-1" } },
        }),
    );
    let topics = TopicsConfig::default();
    let streams = stream_topics(&topics);
    let report = ensure_topics(&cfg, &streams).await.unwrap();
    assert_eq!(report.brokers, 1);
    assert_eq!(report.created.len(), streams.len(), "{report:?}");
    assert!(report.warnings.is_empty(), "{report:?}");
    let names: Vec<&str> = streams.iter().map(|(_, t)| *t).collect();
    let got = described(&bootstrap, &names).await;
    for (stream, topic) in &streams {
        let key = TopicsConfig::stream_key(*stream);
        let want: BTreeMap<String, String> = cfg
            .topic_settings_of(key, 1)
            .into_iter()
            .map(|(n, s)| (n, s.value))
            .collect();
        assert_eq!(got[*topic], want, "{topic}");
        // One broker: auto replication is 1, and no min.insync.replicas.
        let created = report.created.iter().find(|p| p.topic == *topic).unwrap();
        assert_eq!(created.replication, 1, "{topic}");
    }
    assert_eq!(
        got[topics.interactions.as_str()]["retention.ms"],
        "604800000"
    );
    assert_eq!(
        got[topics.interactions.as_str()]["cleanup.policy"],
        "delete"
    );
    assert_eq!(
        got[topics.interactions.as_str()]["compression.type"],
        "zstd"
    );
    assert_eq!(got[topics.dead_letter.as_str()]["retention.ms"], "-1");
    assert_eq!(got[topics.heartbeat.as_str()]["retention.ms"], "86400000");
    assert_eq!(
        got[topics.wolkvox_chat_1.as_str()]["retention.ms"],
        "34560000000"
    );
    // A second start finds them all, sound: nothing created, nothing to say.
    let again = ensure_topics(&cfg, &streams).await.unwrap();
    assert!(again.created.is_empty(), "{again:?}");
    assert!(again.warnings.is_empty(), "{again:?}");
    assert_eq!(again.unchecked, None, "tansu describes topic settings");
}

#[tokio::test]
async fn an_existing_topic_that_contradicts_the_guarantee_gets_one_warning_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = tansu(dir.path());
    let topics = TopicsConfig::default();
    let bad: [(&str, &[(&str, &str)]); 2] = [
        (
            &topics.interactions,
            &[("cleanup.policy", "compact"), ("min.insync.replicas", "2")],
        ),
        (
            &topics.heartbeat,
            &[("message.timestamp.type", "LogAppendTime")],
        ),
    ];
    let new: Vec<NewTopic> = bad
        .iter()
        .map(|(t, settings)| {
            settings.iter().fold(
                NewTopic::new(t, 3, TopicReplication::Fixed(1)),
                |n, (k, v)| n.set(k, v),
            )
        })
        .collect();
    for r in admin(&bootstrap)
        .create_topics(new.iter(), &opts())
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let cfg = kafka(&bootstrap, serde_json::json!({}));
    let (logs, guard) = capture();
    let report = ensure_topics(&cfg, &stream_topics(&topics)).await.unwrap();
    drop(guard);
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert_eq!(report.created.len(), stream_topics(&topics).len() - 2);
    let warned: BTreeMap<&str, &Vec<String>> = report
        .warnings
        .iter()
        .map(|(t, p)| (t.as_str(), p))
        .collect();
    assert_eq!(warned.len(), 2, "{report:?}");
    let i = warned[topics.interactions.as_str()];
    assert_eq!(i.len(), 2, "{i:?}");
    assert!(i[0].starts_with("cleanup.policy = compact: "), "{i:?}");
    assert!(
        i[1].starts_with("min.insync.replicas = 2: 2 is more than the replication factor 1"),
        "{i:?}"
    );
    let h = warned[topics.heartbeat.as_str()];
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(
        h[0].starts_with("message.timestamp.type = LogAppendTime: "),
        "{h:?}"
    );
    // One warn line per topic, naming it and every problem.
    let warns: Vec<&str> = logs.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warns.len(), 2, "{logs}");
    for (topic, problems) in &report.warnings {
        let line = warns
            .iter()
            .find(|l| {
                l.contains(&format!("topic=\"{topic}\"")) || l.contains(&format!("topic={topic}"))
            })
            .unwrap_or_else(|| panic!("no warning for {topic}: {logs}"));
        for p in problems {
            assert!(line.contains(p.as_str()), "{line}");
        }
    }
    // ccdc changed nothing on them.
    let got = described(&bootstrap, &[&topics.interactions]).await;
    assert_eq!(
        got[topics.interactions.as_str()]["cleanup.policy"],
        "compact"
    );
    assert!(!got[topics.interactions.as_str()].contains_key("retention.ms"));
}
