//! The real Kafka sink + publisher under broker faults, with librdkafka's mock cluster (fault
//! injection; the real-broker path is covered by the tansu tests).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ccdc::config::KafkaConfig;
use ccdc::config::TopicsConfig as Topics;
use ccdc::encode::AvroEncoder;
use ccdc::event::{Event, InteractionEvent, InteractionEventType, Stream};
use ccdc::kafka::KafkaSink;
use ccdc::publisher::Publisher;
use ccdc::store::{MemoryStore, Store};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

fn kafka_config(bootstrap: String) -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: bootstrap,
        compression: "none".into(),
        create_topics: false,
        partitions: 1,
        replication_factor: ccdc::config::ReplicationFactor::Fixed(1),
        message_timeout: Duration::from_secs(120),
        record_headers: ccdc::config::RecordHeaders::CloudEvents,
        partitioner: "murmur2_random".into(),
        properties: Default::default(),
        secret_properties: Default::default(),
        topic_defaults: Default::default(),
        topic_settings: Default::default(),
    }
}

/// Interaction events to `topic`, as Avro with schema id 1.
fn interactions_encoder(topic: &str) -> Arc<AvroEncoder> {
    let topics = Topics {
        interactions: topic.into(),
        ..Topics::default()
    };
    Arc::new(AvroEncoder::new(topics, &[(Stream::Interactions, 1)]).unwrap())
}

fn event(i: usize) -> Vec<u8> {
    ccdc::store::outbox::encode(&Event::Interaction(InteractionEvent {
        event_id: format!("00000000-0000-5000-8000-{i:012}"),
        event_type: InteractionEventType::Started,
        source: "s".into(),
        vendor: "wolkvox".into(),
        agent_id: "1001".into(),
        interaction_id: format!("c{}", i % 7),
        initial: false,
        transfer: false,
        transfer_agent_id: None,
        observed_at: 1,
        previous_observed_at: Some(0),
        vendor_timestamp: None,
        vendor_timestamp_raw: None,
        subject: None,
        from_name: None,
        latest_only: false,
        started_at: None,
        started_at_raw: None,
        first_observed_at: Some(1),
        ended_after: None,
        ended_before: None,
        duration_ms: None,
        duration_min_ms: None,
        duration_max_ms: None,
        derivation: ccdc::event::Derivation::SnapshotDiff,
    }))
}

/// A consumer of `topic`'s partition 0 from its beginning (no consumer group in use).
fn reader(bootstrap: &str, topic: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "mock-reader")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    c
}

fn read_ids(bootstrap: &str, topic: &str, n: usize) -> Vec<String> {
    let c = reader(bootstrap, topic);
    let mut ids = Vec::new();
    let start = Instant::now();
    while ids.len() < n && start.elapsed() < Duration::from_secs(60) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let payload = m.payload().unwrap();
            // 0x00 + id + Avro: the event id string follows its zig-zag length byte.
            ids.push(String::from_utf8_lossy(&payload[6..6 + 36]).into_owned());
        }
    }
    // Keep reading a moment: repeats beyond `n` must show up too.
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_millis(500) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            ids.push(String::from_utf8_lossy(&m.payload().unwrap()[6..6 + 36]).into_owned());
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_in_the_outbox_while_the_broker_is_down_and_all_arrive_in_order_after() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("mock.t", 1, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    cluster.broker_down(-1).unwrap();

    let store = Arc::new(MemoryStore::default());
    store
        .commit(vec![], (0..200).map(event).collect::<Vec<_>>())
        .unwrap();
    let publisher = Publisher {
        store: store.clone(),
        recent: None,
        encoder: interactions_encoder("mock.t"),
        sink: Arc::new(KafkaSink::new(&kafka_config(bootstrap.clone())).unwrap()),
        notify: Arc::new(Notify::new()),
        max_in_flight: 50,
        max_backoff: Duration::from_millis(500),
        health: None,
    };
    let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
    let task = tokio::spawn(publisher.run(stop.clone(), abort.clone()));

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        store.outbox_len(),
        200,
        "nothing is acknowledged while the broker is down"
    );

    cluster.broker_up(-1).unwrap();
    let start = Instant::now();
    while store.outbox_len() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "outbox not drained after the broker came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let report = task.await.unwrap().unwrap();
    assert_eq!(report.left_in_outbox, 0);
    let ids = tokio::task::spawn_blocking(move || read_ids(&bootstrap, "mock.t", 200))
        .await
        .unwrap();
    let want: Vec<String> = (0..200)
        .map(|i| format!("00000000-0000-5000-8000-{i:012}"))
        .collect();
    assert_eq!(ids, want, "every event exactly once, in outbox order");
}

/// A long outage while "pollers" keep committing, with a tiny producer queue (QueueFull all along):
/// the outbox holds everything, and once the broker is back it all arrives, in order, within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixty_second_outage_with_the_producer_queue_full_loses_nothing() {
    let outage = Duration::from_secs(
        std::env::var("CCDC_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("mock.long", 1, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let mut k = kafka_config(bootstrap.clone());
    k.properties
        .insert("queue.buffering.max.messages".into(), "50".into());
    let store = Arc::new(MemoryStore::default());
    let notify = Arc::new(Notify::new());
    let publisher = Publisher {
        store: store.clone(),
        recent: None,
        encoder: interactions_encoder("mock.long"),
        sink: Arc::new(KafkaSink::new(&k).unwrap()),
        notify: notify.clone(),
        max_in_flight: 1000,
        max_backoff: Duration::from_millis(500),
        health: None,
    };
    cluster.broker_down(-1).unwrap();
    let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
    let task = tokio::spawn(publisher.run(stop.clone(), abort.clone()));

    // Polls keep committing during the outage: 10 events every 100 ms.
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed() < outage {
        store
            .commit(vec![], (n..n + 10).map(event).collect::<Vec<_>>())
            .unwrap();
        n += 10;
        notify.notify_one();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waiting = store.outbox_len();
    assert!(
        waiting >= n - 50,
        "the outbox holds what the broker has not acknowledged ({waiting} of {n})"
    );

    cluster.broker_up(-1).unwrap();
    let back = Instant::now();
    while store.outbox_len() > 0 {
        assert!(
            back.elapsed() < Duration::from_secs(60),
            "outbox not drained after the broker came back ({} left)",
            store.outbox_len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = back.elapsed();
    stop.cancel();
    task.await.unwrap().unwrap();
    let ids = tokio::task::spawn_blocking(move || read_ids(&bootstrap, "mock.long", n))
        .await
        .unwrap();
    let want: Vec<String> = (0..n)
        .map(|i| format!("00000000-0000-5000-8000-{i:012}"))
        .collect();
    println!("broker outage: {}s down, {n} events committed meanwhile, all delivered in order {:.1}s after it returned", outage.as_secs(), drained.as_secs_f64());
    assert_eq!(ids, want, "every event exactly once, in outbox order");
}

/// A fatal producer error (an idempotence sequence gap the broker reports) makes librdkafka's
/// producer unusable: the sink recreates it and every event still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_producer_error_recreates_the_producer_and_loses_nothing() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("mock.fatal", 1, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let store = Arc::new(MemoryStore::default());
    let notify = Arc::new(Notify::new());
    let sink = Arc::new(KafkaSink::new(&kafka_config(bootstrap.clone())).unwrap());
    let publisher = Publisher {
        store: store.clone(),
        recent: None,
        encoder: interactions_encoder("mock.fatal"),
        sink: sink.clone(),
        notify: notify.clone(),
        max_in_flight: 100,
        max_backoff: Duration::from_millis(200),
        health: None,
    };
    let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
    let task = tokio::spawn(publisher.run(stop.clone(), abort.clone()));
    store
        .commit(vec![], (0..50).map(event).collect::<Vec<_>>())
        .unwrap();
    notify.notify_one();
    let start = Instant::now();
    while store.outbox_len() > 0 {
        assert!(start.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER; 3],
    );
    store
        .commit(vec![], (50..150).map(event).collect::<Vec<_>>())
        .unwrap();
    notify.notify_one();
    let start = Instant::now();
    while store.outbox_len() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "outbox not drained after the fatal error ({} left)",
            store.outbox_len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    assert!(
        sink.generation() >= 2,
        "the producer was recreated (generation {})",
        sink.generation()
    );
    let ids = tokio::task::spawn_blocking(move || read_ids(&bootstrap, "mock.fatal", 150))
        .await
        .unwrap();
    let got: std::collections::BTreeSet<String> = ids.into_iter().collect();
    let want: std::collections::BTreeSet<String> = (0..150)
        .map(|i| format!("00000000-0000-5000-8000-{i:012}"))
        .collect();
    assert_eq!(got, want, "every event arrives (repeats allowed)");
}

/// Reads every record of `topic` (partition 0) until `quiet` passes without one: the payloads.
fn read_payloads(bootstrap: &str, topic: &str, quiet: Duration) -> Vec<Vec<u8>> {
    let c = reader(bootstrap, topic);
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.push(m.payload().unwrap_or_default().to_vec());
            last = Instant::now();
        }
    }
    out
}

/// The broker refuses a record for its timestamp (`INVALID_TIMESTAMP`: outside the topic's
/// `message.timestamp.*` bounds). Resending cannot help: the record goes to the dead-letter topic,
/// and the ones after it are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_refused_for_its_timestamp_goes_to_the_dead_letter_topic_and_the_rest_flows() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let cluster = MockCluster::new(1).unwrap();
    let topics = Topics {
        interactions: "mock.ts".into(),
        ..Topics::default()
    };
    cluster.create_topic("mock.ts", 1, 1).unwrap();
    cluster.create_topic(&topics.dead_letter, 1, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let store = Arc::new(MemoryStore::default());
    let notify = Arc::new(Notify::new());
    let encoder = AvroEncoder::new(
        topics.clone(),
        &[(Stream::Interactions, 1), (Stream::DeadLetter, 2)],
    )
    .unwrap();
    let sink = Arc::new(KafkaSink::new(&kafka_config(bootstrap.clone())).unwrap());
    let publisher = Publisher {
        store: store.clone(),
        recent: None,
        encoder: Arc::new(encoder),
        sink: sink.clone(),
        notify: notify.clone(),
        max_in_flight: 100,
        max_backoff: Duration::from_millis(200),
        health: None,
    };
    let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
    let task = tokio::spawn(publisher.run(stop.clone(), abort.clone()));
    let drained = |what: &'static str| {
        let store = store.clone();
        async move {
            let start = Instant::now();
            while store.outbox_len() > 0 {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "{what}: {} left",
                    store.outbox_len()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    store.commit(vec![], vec![event(0)]).unwrap();
    notify.notify_one();
    drained("the first event").await;
    // The next produce request is refused for its timestamp.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP],
    );
    store.commit(vec![], vec![event(1)]).unwrap();
    notify.notify_one();
    drained("the refused event").await;
    store
        .commit(vec![], (2..6).map(event).collect::<Vec<_>>())
        .unwrap();
    notify.notify_one();
    drained("the events after it").await;
    stop.cancel();
    task.await.unwrap().unwrap();

    let dead_topic = topics.dead_letter.clone();
    let (delivered, dead) = tokio::task::spawn_blocking(move || {
        let ids = read_ids(&bootstrap, "mock.ts", 5);
        (
            ids,
            read_payloads(&bootstrap, &dead_topic, Duration::from_secs(2)),
        )
    })
    .await
    .unwrap();
    let want: Vec<String> = [0, 2, 3, 4, 5]
        .iter()
        .map(|i| format!("00000000-0000-5000-8000-{i:012}"))
        .collect();
    assert_eq!(delivered, want, "every other event, in order, once");
    assert_eq!(dead.len(), 1, "one dead letter");
    let text = String::from_utf8_lossy(&dead[0]);
    assert!(
        text.contains("00000000-0000-5000-8000-000000000001"),
        "the dead letter names the refused event: {text}"
    );
    assert!(
        text.to_lowercase().contains("timestamp"),
        "the dead letter says why: {text}"
    );
}
