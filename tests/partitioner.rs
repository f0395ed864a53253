//! Keys land where the Java client (Kafka Streams, ksqlDB, Kafka Connect) would put them: ccdc's
//! producer configuration against a real broker (tansu, 6 partitions), each record read back from
//! its partition, compared with the Java client's `Utils.toPositive(Utils.murmur2(key)) % n`
//! computed here independently of librdkafka.

mod common;

use std::time::Duration;

use ccdc::config::KafkaConfig;
use common::{Infra, TopicReader};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// Kafka's `org.apache.kafka.common.utils.Utils.murmur2`, written from the Java source.
fn java_murmur2(data: &[u8]) -> i32 {
    let length = data.len() as i32;
    let seed: i32 = 0x9747_b28c_u32 as i32;
    let m: i32 = 0x5bd1_e995;
    let r = 24;
    let mut h: i32 = seed ^ length;
    let length4 = data.len() / 4;
    for i in 0..length4 {
        let i4 = i * 4;
        let mut k: i32 = (data[i4] as i32 & 0xff)
            + ((data[i4 + 1] as i32 & 0xff) << 8)
            + ((data[i4 + 2] as i32 & 0xff) << 16)
            + ((data[i4 + 3] as i32 & 0xff) << 24);
        k = k.wrapping_mul(m);
        k ^= ((k as u32) >> r) as i32;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m);
        h ^= k;
    }
    let rest = data.len() % 4;
    let tail = length4 * 4;
    if rest >= 3 {
        h ^= (data[tail + 2] as i32 & 0xff) << 16;
    }
    if rest >= 2 {
        h ^= (data[tail + 1] as i32 & 0xff) << 8;
    }
    if rest >= 1 {
        h ^= data[tail] as i32 & 0xff;
        h = h.wrapping_mul(m);
    }
    h ^= ((h as u32) >> 13) as i32;
    h = h.wrapping_mul(m);
    h ^= ((h as u32) >> 15) as i32;
    h
}

fn java_partition(key: &str, partitions: i32) -> i32 {
    (java_murmur2(key.as_bytes()) & 0x7fff_ffff) % partitions
}

#[test]
fn the_java_algorithm_is_the_one_kafka_documents() {
    // Values from Kafka's own UtilsTest (murmur2 of these strings).
    let cases: [(&str, i32); 4] = [
        ("21", -973932308),
        ("foobar", -790332482),
        ("a-little-bit-long-string", -985981536),
        ("a-little-bit-longer-string", -1486304829),
    ];
    for (s, want) in cases {
        assert_eq!(java_murmur2(s.as_bytes()), want, "{s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccdc_puts_each_key_on_the_partition_the_java_client_computes() {
    let infra = tokio::task::spawn_blocking(Infra::start).await.unwrap();
    let cfg: KafkaConfig = serde_json::from_value(serde_json::json!({
        "bootstrap_servers": infra.bootstrap,
        "partitions": 6,
        "replication_factor": 1,
    }))
    .unwrap();
    assert_eq!(cfg.partitioner, "murmur2_random", "the default");
    let topic = "ccdc.it.partitions";
    ccdc::topics::ensure_topics(&cfg, &[(ccdc::event::Stream::Interactions, topic)])
        .await
        .unwrap();
    let producer: BaseProducer = ccdc::kafka::producer_config(&cfg)
        .unwrap()
        .create()
        .unwrap();
    let keys: Vec<String> = (0..60)
        .map(|i| format!("ops/{:08}", i * 7919))
        .chain(["ops/1001", "demo-wolkvox/00000001", "c100/a1"].map(String::from))
        .collect();
    for key in &keys {
        producer
            .send(
                BaseRecord::to(topic)
                    .key(key.as_bytes())
                    .payload("x".as_bytes()),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let (bootstrap, t) = (infra.bootstrap.clone(), topic.to_string());
    let n = keys.len();
    let records = tokio::task::spawn_blocking(move || {
        let mut r = TopicReader::new(&bootstrap, &t);
        r.read_at_least(n, Duration::from_secs(60)).to_vec()
    })
    .await
    .unwrap();
    assert_eq!(records.len(), n);
    let used: std::collections::BTreeSet<i32> = records.iter().map(|r| r.partition).collect();
    assert!(used.len() > 1, "the keys spread over partitions: {used:?}");
    for r in &records {
        assert_eq!(
            r.partition,
            java_partition(&r.key, 6),
            "key {} is on partition {}, the Java client would put it on {}",
            r.key,
            r.partition,
            java_partition(&r.key, 6)
        );
    }
}
