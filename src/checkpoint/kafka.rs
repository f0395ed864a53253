//! The checkpoint topic on Kafka: created compacted when missing, read whole by assigning every
//! partition from offset 0 (no consumer group, no committed offsets), written with an idempotent
//! producer of its own (the event producer's acknowledgements belong to the publisher).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::{Checkpoint, CheckpointError, CheckpointLog, RawRecord};
use crate::config::KafkaConfig;

/// How long reading the whole topic may take before the attempt is retried.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one metadata or admin request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The checkpoint clients' librdkafka logs and errors, at debug: they repeat what the event
/// producer already reports once (the broker down, back), and a failed checkpoint read or write
/// is reported by the caller with its retry. (rdkafka's default context logs every one at ERROR.)
#[derive(Clone, Copy, Default)]
pub struct QuietContext;

impl ClientContext for QuietContext {
    fn log(&self, _level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(target: "ccdc::checkpoint::librdkafka", fac, "{log_message}");
    }
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "ccdc::checkpoint::librdkafka", %error, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for QuietContext {}

pub struct KafkaLog {
    cfg: KafkaConfig,
    topic: String,
    producer: FutureProducer<QuietContext>,
    /// The topic is known to exist (or `kafka.create_topics` is off).
    settled: AtomicBool,
}

/// A librdkafka error as ccdc reports it: a refused property is named by its key, never with its
/// value (it may be a secret).
fn text(e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, _, key, _) => {
            format!("librdkafka refused the property `{key}` (its value is not shown)")
        }
        other => other.to_string(),
    }
}

impl KafkaLog {
    pub fn new(cfg: &KafkaConfig, topic: &str) -> Result<KafkaLog, CheckpointError> {
        let refused = |e: anyhow::Error| CheckpointError::Refused {
            topic: topic.into(),
            reason: format!("{e:#}"),
        };
        let mut config = crate::kafka::producer_config(cfg).map_err(refused)?;
        config.set("linger.ms", "0");
        let producer =
            config
                .create_with_context(QuietContext)
                .map_err(|e| CheckpointError::Refused {
                    topic: topic.into(),
                    reason: text(&e),
                })?;
        Ok(KafkaLog {
            cfg: cfg.clone(),
            topic: topic.into(),
            producer,
            settled: AtomicBool::new(!cfg.create_topics),
        })
    }

    fn client_config(&self) -> Result<ClientConfig, CheckpointError> {
        crate::kafka::client_config(&self.cfg).map_err(|e| self.refused(format!("{e:#}")))
    }

    fn refused(&self, reason: String) -> CheckpointError {
        CheckpointError::Refused {
            topic: self.topic.clone(),
            reason,
        }
    }

    /// A failed request: refused for good when the cluster denies us the topic, else retryable.
    fn failed(&self, what: &str, e: &KafkaError) -> CheckpointError {
        let denied = matches!(
            e.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::ClusterAuthorizationFailed
                    | RDKafkaErrorCode::GroupAuthorizationFailed
            )
        );
        let reason = format!("{what}: {}", text(e));
        match denied {
            true => self.refused(reason),
            false => self.unavailable(reason),
        }
    }

    fn unavailable(&self, reason: String) -> CheckpointError {
        CheckpointError::Unavailable {
            topic: self.topic.clone(),
            reason,
        }
    }

    /// Create the topic (compacted) if it is missing and `kafka.create_topics` is on.
    async fn ensure_topic(&self) -> Result<(), CheckpointError> {
        if self.settled.load(Ordering::Relaxed) {
            return Ok(());
        }
        let admin: AdminClient<QuietContext> = self
            .client_config()?
            .create_with_context(QuietContext)
            .map_err(|e| self.refused(text(&e)))?;
        let md = admin
            .inner()
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(|e| self.failed("metadata", &e))?;
        let exists = md
            .topics()
            .iter()
            .any(|t| t.name() == self.topic && t.error().is_none() && !t.partitions().is_empty());
        if !exists {
            let replication = self.cfg.replication_factor.resolve(md.brokers().len());
            let topic = NewTopic::new(
                &self.topic,
                self.cfg.partitions,
                TopicReplication::Fixed(replication),
            )
            .set("cleanup.policy", "compact");
            let opts = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
            let results = admin
                .create_topics([&topic], &opts)
                .await
                .map_err(|e| self.unavailable(format!("creating it: {}", text(&e))))?;
            for r in results {
                match r {
                    Ok(t) => {
                        tracing::info!(topic = %t, partitions = self.cfg.partitions, replication, "created the checkpoint topic (cleanup.policy=compact)")
                    }
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((_, code)) => {
                        return Err(self.unavailable(format!("cannot create it: {code}")))
                    }
                }
            }
        }
        self.settled.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// Every record of `topic`: each partition assigned from its beginning and read to its end
/// (librdkafka's partition EOF), within `timeout`.
fn read_topic(
    mut config: ClientConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<RawRecord>, String> {
    let consumer: BaseConsumer<QuietContext> = config
        .set("group.id", "ccdc-checkpoint-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create_with_context(QuietContext)
        .map_err(|e| text(&e))?;
    let md = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(|e| format!("metadata: {}", text(&e)))?;
    let partitions = md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len());
    let mut records = Vec::new();
    if partitions == 0 {
        return Ok(records);
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let p = i32::try_from(p).map_err(|_| "too many partitions".to_string())?;
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| text(&e))?;
    }
    consumer.assign(&tpl).map_err(|e| text(&e))?;
    let mut at_end = std::collections::HashSet::new();
    let started = Instant::now();
    while at_end.len() < partitions {
        if started.elapsed() > timeout {
            return Err(format!(
                "not read to its end within {}s ({} of {partitions} partitions done)",
                timeout.as_secs(),
                at_end.len()
            ));
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                records.push((key, m.payload().map(<[u8]>::to_vec)));
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => return Err(text(&e)),
            None => {}
        }
    }
    Ok(records)
}

#[async_trait]
impl CheckpointLog for KafkaLog {
    fn topic(&self) -> &str {
        &self.topic
    }

    async fn read_all(&self) -> Result<Vec<RawRecord>, CheckpointError> {
        self.ensure_topic().await?;
        let (config, topic) = (self.client_config()?, self.topic.clone());
        tokio::task::spawn_blocking(move || read_topic(config, &topic, READ_TIMEOUT))
            .await
            .map_err(|e| self.unavailable(format!("the reading task did not finish: {e}")))?
            .map_err(|reason| self.unavailable(reason))
    }

    async fn write(&self, batch: &[Checkpoint]) -> Result<(), CheckpointError> {
        self.ensure_topic().await?;
        let encoded: Vec<(String, Vec<u8>)> =
            batch.iter().map(|cp| (cp.key(), cp.encode())).collect();
        let mut deliveries = Vec::with_capacity(encoded.len());
        for (key, value) in &encoded {
            let record = FutureRecord::to(&self.topic).key(key).payload(value);
            let delivery = self
                .producer
                .send_result(record)
                .map_err(|(e, _)| self.failed(&format!("producing `{key}`"), &e))?;
            deliveries.push((key, delivery));
        }
        for (key, delivery) in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    return Err(self.failed(&format!("`{key}` not acknowledged"), &e))
                }
                Err(_) => return Err(self.unavailable(format!("`{key}`: delivery cancelled"))),
            }
        }
        Ok(())
    }
}
