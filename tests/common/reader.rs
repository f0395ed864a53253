//! Reading topics back: [`TopicReader`] assigns every partition of a topic from offset 0 (no
//! consumer-group rebalancing, which tansu does unreliably) and collects [`Record`]s with their key
//! and headers; [`RegistryDecoder`] decodes their Confluent-framed Avro payloads by fetching each
//! writer schema from the registry by id, like a Confluent deserializer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::de::DeserializeOwned;

use super::util::{free_port, http_get};

/// One record read back from Kafka.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
    /// The record's timestamp when it is a CreateTime (the producer's, i.e. ccdc's), UTC ms.
    pub create_time: Option<i64>,
}

/// Reads a topic from offset 0 on every partition (tansu's consumer groups are unreliable).
pub struct TopicReader {
    consumer: BaseConsumer,
    pub records: Vec<Record>,
}

impl TopicReader {
    pub fn new(bootstrap: &str, topic: &str) -> TopicReader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("ccdc-test-{}", free_port()))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()
            .expect("consumer");
        let start = Instant::now();
        let partitions = loop {
            let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
            if let Ok(md) = md {
                if let Some(t) = md
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic && !t.partitions().is_empty())
                {
                    break t.partitions().len() as i32;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "topic {topic} never appeared"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("add partition");
        }
        consumer.assign(&tpl).expect("assign");
        TopicReader {
            consumer,
            records: Vec::new(),
        }
    }

    /// Poll until at least `n` records were read in total, or panic after `timeout`.
    pub fn read_at_least(&mut self, n: usize, timeout: Duration) -> &[Record] {
        let start = Instant::now();
        while self.records.len() < n {
            assert!(
                start.elapsed() < timeout,
                "read {} records, expected at least {n} within {timeout:?}",
                self.records.len()
            );
            self.poll_for(Duration::from_millis(200));
        }
        &self.records
    }

    /// Keep reading for `d` (to see that nothing else arrives).
    pub fn poll_for(&mut self, d: Duration) {
        let start = Instant::now();
        while start.elapsed() < d {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|x| {
                                    (
                                        x.key.to_string(),
                                        String::from_utf8_lossy(x.value.unwrap_or_default())
                                            .into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    self.records.push(Record {
                        partition: m.partition(),
                        offset: m.offset(),
                        key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                        payload: m.payload().unwrap_or_default().to_vec(),
                        headers,
                        create_time: match m.timestamp() {
                            rdkafka::Timestamp::CreateTime(ms) => Some(ms),
                            _ => None,
                        },
                    });
                }
                Some(Err(e)) => eprintln!("consumer error (retrying): {e}"),
                None => {}
            }
        }
    }
}

/// Decodes Confluent-framed Avro by fetching the writer schema from the registry by id.
pub struct RegistryDecoder {
    url: String,
    schemas: HashMap<u32, apache_avro::Schema>,
}

impl RegistryDecoder {
    pub fn new(url: &str) -> Self {
        RegistryDecoder {
            url: url.to_string(),
            schemas: HashMap::new(),
        }
    }

    #[allow(deprecated)] // from_avro_datum: the plain generic reader, independent of ccdc's writer.
    pub fn decode<T: DeserializeOwned>(&mut self, payload: &[u8]) -> T {
        assert!(payload.len() > 5, "payload too short for the wire format");
        assert_eq!(payload[0], 0, "magic byte");
        let id = u32::from_be_bytes(payload[1..5].try_into().expect("4 bytes"));
        let url = format!("{}/schemas/ids/{id}", self.url);
        let schema = self.schemas.entry(id).or_insert_with(|| {
            let body =
                http_get(&url).unwrap_or_else(|| panic!("schema id {id} not in the registry"));
            let v: serde_json::Value = serde_json::from_str(&body).expect("registry json");
            apache_avro::Schema::parse_str(v["schema"].as_str().expect("schema field"))
                .expect("schema parses")
        });
        let mut rest = &payload[5..];
        let value =
            apache_avro::from_avro_datum(schema, &mut rest, None).expect("avro datum decodes");
        assert!(rest.is_empty(), "trailing bytes after the datum");
        apache_avro::from_value(&value).expect("datum matches the event type")
    }
}
