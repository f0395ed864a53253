//! Tests of the Kafka sink: progress and outage reports, secrets in creation errors, record
//! timestamps and the publish latency.

use super::*;
use std::sync::atomic::Ordering::Relaxed;

/// The latency the sink records for each delivered record.
#[derive(Default)]
struct Seen(std::sync::Mutex<Vec<Option<f64>>>);
impl ClientContext for Seen {}
impl ProducerContext for Seen {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(m) = result {
            self.0.lock().unwrap().push(handed_over_for(m));
        }
    }
}

#[test]
fn a_record_carries_its_event_time_and_its_latency_counts_from_the_hand_over() {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    cluster.create_topic("t", 1, 1).unwrap();
    let producer: ThreadedProducer<Seen> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create_with_context(Seen::default())
        .unwrap();
    // An event of 1970-01-01T00:16:40Z, sent now (an outbox drained very late).
    let record = OutRecord {
        topic: "t".into(),
        key: "k".into(),
        payload: vec![1],
        headers: vec![("ce_id", "e1".into())],
        timestamp_ms: Some(1_000_000),
    };
    producer
        .send(base_record(&record, ()))
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
    let seen = producer.context().0.lock().unwrap();
    assert_eq!(seen.len(), 1);
    // From the hand-over: well under a day, where "now − CreateTime" is 56 years.
    let latency = seen[0].expect("librdkafka measured it");
    assert!((0.0..86_400.0).contains(&latency), "{latency} s");
    // Read back, the record carries the event's time.
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("group.id", "t")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("t", 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let m = (0..100)
        .find_map(|_| consumer.poll(Duration::from_millis(300)))
        .expect("the record")
        .unwrap();
    assert_eq!(m.timestamp(), rdkafka::Timestamp::CreateTime(1_000_000));
}

#[test]
fn a_producer_is_stalled_only_when_records_timed_out_and_nothing_was_delivered_for_long() {
    let p = Progress::new();
    p.restart();
    // No timeout: however long it has been quiet, nothing is stuck.
    assert!(!p.stalled(Duration::ZERO));
    p.timed_out.fetch_add(1, Relaxed);
    assert!(p.stalled(Duration::ZERO));
    assert!(!p.stalled(Duration::from_secs(3600)), "not for long enough");
    // A delivery (or a new producer) starts over.
    p.restart();
    assert!(!p.stalled(Duration::ZERO));
}

#[test]
fn an_outage_is_news_once_and_its_end_once() {
    let p = Progress::new();
    assert!(!p.delivered(), "no outage yet");
    assert!(p.lost_brokers());
    assert!(!p.lost_brokers(), "the same outage again");
    assert!(p.delivered(), "the outage ended");
    assert!(!p.delivered());
    assert!(p.lost_brokers(), "a new outage");
}

/// A configuration with a secret property librdkafka refuses, the secret's value in
/// `CCDC_KAFKA_TEST_SECRET`.
fn refused_secret(value: &str) -> KafkaConfig {
    std::env::set_var("CCDC_KAFKA_TEST_SECRET", value);
    KafkaConfig {
        bootstrap_servers: "127.0.0.1:9".into(),
        compression: "none".into(),
        create_topics: true,
        partitions: 1,
        replication_factor: crate::config::ReplicationFactor::Fixed(1),
        message_timeout: Duration::from_secs(5),
        record_headers: crate::config::RecordHeaders::CloudEvents,
        partitioner: "murmur2_random".into(),
        properties: Default::default(),
        secret_properties: [(
            "sasl.passwrod".to_string(),
            crate::secret::SecretRef::Env("CCDC_KAFKA_TEST_SECRET".into()),
        )]
        .into(),
        topic_defaults: Default::default(),
        topic_settings: Default::default(),
    }
}

/// (The admin client's error is checked by the `topics` tests.)
#[test]
fn a_refused_secret_property_is_named_without_its_value() {
    const VALUE: &str = "kafka-secret-never-shown-5";
    let cfg = refused_secret(VALUE);
    let e = KafkaSink::new(&cfg)
        .err()
        .expect("librdkafka refuses the key");
    let text = format!("{e:#} {e:?}");
    assert!(
        text.contains("kafka.secret_properties.sasl.passwrod"),
        "{text}"
    );
    assert!(!text.contains(VALUE), "the value leaked: {text}");
}
