use super::*;
use crate::config::{ReplicationFactor, STREAM_KINDS};

fn kafka(replication: ReplicationFactor) -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: "127.0.0.1:9".into(),
        compression: "none".into(),
        create_topics: true,
        partitions: 3,
        replication_factor: replication,
        message_timeout: Duration::from_secs(5),
        record_headers: Default::default(),
        partitioner: "murmur2_random".into(),
        properties: Default::default(),
        secret_properties: Default::default(),
        topic_defaults: Default::default(),
        topic_settings: Default::default(),
    }
}

fn cluster(brokers: usize, existing: &[&str]) -> Cluster {
    Cluster {
        brokers,
        topics: existing.iter().map(|t| (t.to_string(), (3, 1))).collect(),
    }
}

const STREAMS: &[(Stream, &str)] = &[
    (Stream::Interactions, "t.interactions"),
    (Stream::DeadLetter, "t.dead-letter"),
    (Stream::Heartbeat, "t.heartbeat"),
];

fn setting<'a>(p: &'a Planned, name: &str) -> Option<&'a str> {
    p.settings
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn only_missing_topics_are_planned_each_with_its_streams_settings() {
    let cfg = kafka(ReplicationFactor::Auto);
    let planned = plan(&cfg, STREAMS, &cluster(1, &["t.interactions"])).unwrap();
    let topics: Vec<&str> = planned.iter().map(|p| p.topic.as_str()).collect();
    assert_eq!(topics, ["t.dead-letter", "t.heartbeat"]);
    let dlq = &planned[0];
    assert_eq!(
        (dlq.stream, dlq.partitions, dlq.replication),
        ("dead_letter", 3, 1)
    );
    assert_eq!(setting(dlq, "retention.ms"), Some("2592000000"));
    assert_eq!(setting(dlq, "cleanup.policy"), Some("delete"));
    assert_eq!(setting(dlq, "min.insync.replicas"), None, "one broker");
    assert_eq!(setting(&planned[1], "retention.ms"), Some("86400000"));
}

#[test]
fn auto_replication_follows_the_cluster_and_brings_min_insync_replicas() {
    let cfg = kafka(ReplicationFactor::Auto);
    for (brokers, replication, isr) in [
        (1, 1, None),
        (2, 2, None),
        (3, 3, Some("2")),
        (9, 3, Some("2")),
    ] {
        let planned = plan(&cfg, STREAMS, &cluster(brokers, &[])).unwrap();
        for p in &planned {
            assert_eq!(p.replication, replication, "{brokers} brokers");
            assert_eq!(setting(p, "min.insync.replicas"), isr, "{brokers} brokers");
        }
    }
    let planned = plan(
        &kafka(ReplicationFactor::BrokerDefault),
        STREAMS,
        &cluster(5, &[]),
    )
    .unwrap();
    assert!(planned.iter().all(|p| p.replication == -1));
    assert!(planned
        .iter()
        .all(|p| setting(p, "min.insync.replicas").is_none()));
}

#[test]
fn the_create_request_carries_every_setting() {
    let cfg = kafka(ReplicationFactor::Fixed(3));
    let planned = plan(&cfg, STREAMS, &cluster(3, &[])).unwrap();
    let request = new_topics(&planned);
    assert_eq!(request.len(), 3);
    for (t, p) in request.iter().zip(&planned) {
        assert_eq!(t.name, p.topic);
        assert_eq!(t.num_partitions, 3);
        assert!(matches!(t.replication, TopicReplication::Fixed(3)));
        let sent: Vec<(String, String)> = t
            .config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(sent, p.settings);
    }
    let sent: BTreeMap<&str, &str> = request[0].config.iter().copied().collect();
    assert_eq!(
        sent,
        BTreeMap::from([
            ("cleanup.policy", "delete"),
            ("message.timestamp.type", "CreateTime"),
            ("min.insync.replicas", "2"),
            ("retention.ms", "604800000"),
        ])
    );
}

#[test]
fn a_configured_min_insync_above_what_the_cluster_allows_is_fatal_and_named() {
    let mut cfg = kafka(ReplicationFactor::Auto);
    cfg.topic_settings.insert(
        "dead_letter".into(),
        [("min.insync.replicas".to_string(), "2".to_string())].into(),
    );
    let e = plan(&cfg, STREAMS, &cluster(1, &[])).unwrap_err();
    assert!(!e.is_retryable());
    let text = e.to_string();
    assert!(text.contains("`t.dead-letter`"), "{text}");
    assert!(
        text.contains("kafka.topic_settings.dead_letter.min.insync.replicas"),
        "{text}"
    );
    assert!(
        text.contains("replication factor 1 in a cluster of 1 brokers"),
        "{text}"
    );
    // With three brokers the same configuration is sound.
    plan(&cfg, STREAMS, &cluster(3, &[])).unwrap();
}

#[test]
fn replication_below_what_the_cluster_allows_is_a_problem() {
    let p = |replicas, brokers| problems(TopicKind::Events, replicas, brokers, None);
    assert_eq!(p(1, 1), Vec::<String>::new());
    assert_eq!(p(2, 2), Vec::<String>::new());
    assert_eq!(p(3, 5), Vec::<String>::new());
    assert_eq!(p(0, 5), Vec::<String>::new(), "replicas unknown");
    let found = p(1, 3);
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("replication factor 1 in a cluster of 3 brokers"),
        "{found:?}"
    );
    assert_eq!(p(2, 4).len(), 1, "2 copies where 3 are possible");
}

#[test]
fn described_settings_are_judged_by_the_topics_kind() {
    let d: BTreeMap<String, String> = [
        ("cleanup.policy", "compact"),
        ("min.insync.replicas", "2"),
        ("retention.ms", "-1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let events = problems(TopicKind::Events, 1, 1, Some(&d));
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events[0].starts_with("cleanup.policy = compact: "),
        "{events:?}"
    );
    assert!(
        events[1].starts_with("min.insync.replicas = 2: 2 is more than the replication factor 1"),
        "{events:?}"
    );
    // The same settings on a table topic with three copies: nothing wrong.
    assert_eq!(
        problems(TopicKind::Table, 3, 3, Some(&d)),
        Vec::<String>::new()
    );
    assert_eq!(
        problems(TopicKind::Heartbeat, 3, 3, Some(&d)),
        Vec::<String>::new()
    );
}

#[test]
fn refusals_that_retrying_cannot_fix_are_fatal() {
    let refused = |code| TopicsError::Refused {
        topic: "t".into(),
        stream: "interactions",
        code,
    };
    assert!(!refused(RDKafkaErrorCode::InvalidConfig).is_retryable());
    assert!(!refused(RDKafkaErrorCode::PolicyViolation).is_retryable());
    assert!(!refused(RDKafkaErrorCode::TopicAuthorizationFailed).is_retryable());
    // Fewer brokers up than the replication factor: they may come back.
    assert!(refused(RDKafkaErrorCode::InvalidReplicationFactor).is_retryable());
    assert!(refused(RDKafkaErrorCode::RequestTimedOut).is_retryable());
    assert!(TopicsError::Unavailable("x".into()).is_retryable());
    assert!(!TopicsError::Client("x".into()).is_retryable());
}

#[test]
fn every_stream_has_a_topic_kind_and_a_topic() {
    let topics = TopicsConfig::default();
    let all = stream_topics(&topics);
    assert_eq!(all.len(), crate::avro::STREAMS.len());
    for (s, topic) in all {
        let key = TopicsConfig::stream_key(s);
        assert!(
            kind_of(key).is_some(),
            "{s:?} ({key}) has no row in STREAM_KINDS"
        );
        assert_eq!(topic, topics.for_stream(s));
    }
    assert!(STREAM_KINDS
        .iter()
        .any(|(k, kind)| *k == "agent_state" && *kind == TopicKind::Table));
}

#[tokio::test]
async fn a_refused_secret_property_is_named_without_its_value() {
    const VALUE: &str = "kafka-secret-never-shown-6";
    std::env::set_var("CCDC_TOPICS_TEST_SECRET", VALUE);
    let mut cfg = kafka(ReplicationFactor::Auto);
    cfg.secret_properties.insert(
        "sasl.passwrod".into(),
        crate::secret::SecretRef::Env("CCDC_TOPICS_TEST_SECRET".into()),
    );
    let e = ensure_topics(&cfg, STREAMS)
        .await
        .expect_err("librdkafka refuses the key");
    assert!(!e.is_retryable());
    let text = format!("{e} {e:?}");
    assert!(
        text.contains("kafka.secret_properties.sasl.passwrod"),
        "{text}"
    );
    assert!(!text.contains(VALUE), "the value leaked: {text}");
}

/// librdkafka's mock cluster lists three brokers and answers Metadata, but not DescribeConfigs:
/// the replication of existing topics is still checked, once per topic, and the unreadable
/// settings are reported once.
#[tokio::test]
async fn existing_topics_with_too_few_replicas_are_warned_about_on_a_cluster_that_cannot_describe_them(
) {
    let mock = rdkafka::mocking::MockCluster::new(3).unwrap();
    mock.create_topic("t.interactions", 3, 1).unwrap();
    mock.create_topic("t.heartbeat", 3, 3).unwrap();
    let mut cfg = kafka(ReplicationFactor::Auto);
    cfg.bootstrap_servers = mock.bootstrap_servers();
    cfg.create_topics = false;
    let report = ensure_topics(&cfg, STREAMS).await.unwrap();
    assert_eq!(report.brokers, 3);
    assert!(report.created.is_empty());
    let warned: Vec<&str> = report.warnings.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(warned, ["t.dead-letter", "t.interactions"], "{report:?}");
    assert!(report.warnings[0].1[0].contains("does not exist and kafka.create_topics = false"));
    assert_eq!(report.warnings[1].1.len(), 1, "{report:?}");
    assert!(report.warnings[1].1[0].starts_with("replication factor 1 in a cluster of 3 brokers"));
    assert!(report.unchecked.is_some(), "{report:?}");
}
