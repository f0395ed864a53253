//! Kafka via rdkafka (bundled librdkafka): the idempotent producer behind [`EventSink`] (topics
//! are created and checked by `crate::topics`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::IntoOpaque;

use crate::config::KafkaConfig;
use crate::sink::{Ack, Acks, EventSink, OutRecord, SendError, SinkError};

// A record's id travels through librdkafka as its opaque pointer-sized value.
const _: () = assert!(
    usize::BITS >= u64::BITS,
    "record ids are carried in a usize"
);

/// The librdkafka configuration for `cfg`, with ccdc's delivery guarantee settings.
pub fn client_config(cfg: &KafkaConfig) -> anyhow::Result<ClientConfig> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.bootstrap_servers);
    // librdkafka backs off reconnecting up to 10 s by default, so after an outage the first
    // delivery waited up to 10 s for the next attempt (8 s measured on tansu); one attempt a
    // second while a broker is away costs nothing and resumes delivery within a second of its
    // return (`tests/e2e_broker_outage.rs`). `kafka.properties` may override it.
    c.set("reconnect.backoff.max.ms", "1000");
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    for (k, v) in cfg.resolved_secret_properties()? {
        c.set(k, v.expose());
    }
    Ok(c)
}

/// A failure to create a librdkafka client, as ccdc reports it. rdkafka's text of a refused
/// property ends with the property's value, and librdkafka's own message may quote it: here the
/// property is named by its configuration key and its value is never shown (for a secret
/// property, not even librdkafka's message); every configured secret value is then blanked out of
/// the whole text.
pub(crate) fn creation_error(cfg: &KafkaConfig, what: &str, e: &KafkaError) -> anyhow::Error {
    let text = match e {
        KafkaError::ClientConfig(_, desc, key, value) => {
            if cfg.secret_properties.contains_key(key) {
                format!(
                    "librdkafka refused `kafka.secret_properties.{key}` (its value is not shown)"
                )
            } else {
                let table = if cfg.properties.contains_key(key) {
                    "kafka.properties."
                } else {
                    ""
                };
                let desc = if value.is_empty() {
                    desc.clone()
                } else {
                    desc.replace(value.as_str(), "<value>")
                };
                format!("librdkafka refused `{table}{key}`: {desc}")
            }
        }
        other => other.to_string(),
    };
    anyhow::anyhow!(
        "cannot create the Kafka {what}: {}",
        without_secrets(cfg, text)
    )
}

/// `e`, a refused property named without its value or librdkafka's message about it.
fn key_only(e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, _, key, _) => {
            format!("librdkafka refused the property `{key}` (its value is not shown)")
        }
        other => other.to_string(),
    }
}

/// `text` with the value of every configured secret property replaced by `<secret>`.
fn without_secrets(cfg: &KafkaConfig, mut text: String) -> String {
    for (_, secret) in cfg.resolved_secret_properties().unwrap_or_default() {
        let v = secret.expose();
        if !v.is_empty() {
            text = text.replace(v, "<secret>");
        }
    }
    text
}

/// The producer settings ccdc runs with (also the bench's librdkafka-alone baseline).
pub fn producer_config(cfg: &KafkaConfig) -> anyhow::Result<ClientConfig> {
    let mut c = client_config(cfg)?;
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        .set("compression.type", &cfg.compression)
        .set(
            "message.timeout.ms",
            cfg.message_timeout.as_millis().to_string(),
        )
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "100000")
        .set("partitioner", &cfg.partitioner);
    Ok(c)
}

/// Reports each delivery (librdkafka's delivery report, on the producer's polling thread) as an
/// [`Ack`] under the id the record was sent with. Nothing is copied out of the message.
struct AckContext {
    acks: Arc<Acks>,
    progress: Arc<Progress>,
    /// `ccdc_publish_latency_seconds`, registered once per producer rather than looked up in the
    /// metrics registry by name on every delivery.
    latency: metrics::Histogram,
}

/// Whether the producer gets records delivered: when it last did, and how many records timed
/// out since.
struct Progress {
    start: std::time::Instant,
    /// Milliseconds after `start` of the last delivery (or of the producer's creation).
    last_ms: std::sync::atomic::AtomicU64,
    timed_out: std::sync::atomic::AtomicU64,
    /// librdkafka reported the brokers unreachable, and nothing was delivered since.
    brokers_down: std::sync::atomic::AtomicBool,
}

impl Progress {
    fn new() -> Self {
        Progress {
            start: std::time::Instant::now(),
            last_ms: Default::default(),
            timed_out: Default::default(),
            brokers_down: Default::default(),
        }
    }

    /// The brokers are reported unreachable: whether that is news.
    fn lost_brokers(&self) -> bool {
        !self.brokers_down.swap(true, Ordering::Relaxed)
    }

    /// A record was delivered: whether the brokers were reported unreachable until now.
    fn delivered(&self) -> bool {
        self.restart();
        self.brokers_down.swap(false, Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// A delivery, or a new producer: progress from here.
    fn restart(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
        self.timed_out.store(0, Ordering::Relaxed);
    }

    /// Records have timed out and none was delivered for `after`.
    fn stalled(&self, after: Duration) -> bool {
        self.timed_out.load(Ordering::Relaxed) > 0
            && self
                .now_ms()
                .saturating_sub(self.last_ms.load(Ordering::Relaxed))
                >= after.as_millis() as u64
    }
}

impl ClientContext for AckContext {
    /// librdkafka logs every failed connection attempt (`FAIL`) at error level, about once a
    /// second per broker while they are away. ccdc retries, so a failed connection is a warning;
    /// once the brokers are reported unreachable, the rest of the outage's are at debug level.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if fac != "FAIL" {
            return DefaultClientContext.log(level, fac, log_message);
        }
        if self.progress.brokers_down.load(Ordering::Relaxed) {
            tracing::debug!(target: "librdkafka", "{fac} {log_message}");
        } else if matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
                | RDKafkaLogLevel::Warning
        ) {
            tracing::warn!(target: "librdkafka", "{fac} {log_message}");
        } else {
            // e.g. an idle connection closed by the broker (Info).
            tracing::info!(target: "librdkafka", "{fac} {log_message}");
        }
    }

    /// An outage is reported once (and its end once, on the next delivery); each report of it by
    /// librdkafka is counted.
    fn error(&self, error: KafkaError, reason: &str) {
        let outage = matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure)
        );
        if !outage {
            tracing::error!(%error, reason, "librdkafka error");
            return;
        }
        metrics::counter!("ccdc_kafka_connection_errors_total").increment(1);
        if self.progress.lost_brokers() {
            tracing::warn!(%error, reason, "Kafka unreachable: events wait in the outbox until it is back");
        } else {
            tracing::debug!(%error, reason, "Kafka still unreachable");
        }
    }
}

impl ProducerContext for AckContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        let result = match result {
            Ok(message) => {
                if let Some(seconds) = handed_over_for(message) {
                    self.latency.record(seconds);
                }
                if self.progress.delivered() {
                    tracing::info!("Kafka reachable again: delivering");
                }
                Ok(())
            }
            Err((e, _)) => {
                if matches!(
                    e,
                    KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
                ) {
                    self.progress.timed_out.fetch_add(1, Ordering::Relaxed);
                }
                Err(classify(e))
            }
        };
        self.acks.push(Ack {
            id: id as u64,
            result,
        });
    }
}

/// Seconds since a delivered record was handed over (`produce()`), as librdkafka measured it on
/// its monotonic clock: the publish latency. (Not from the record's timestamp, which is the event's
/// own time and may be hours old when an outbox is drained late.)
fn handed_over_for(message: &BorrowedMessage<'_>) -> Option<f64> {
    // SAFETY: `message` is a live message borrowed for the delivery callback; librdkafka only reads
    // its enqueue time and the clock.
    let micros = unsafe { rdkafka::bindings::rd_kafka_message_latency(message.ptr()) };
    (micros >= 0).then(|| micros as f64 / 1e6)
}

type AckProducer = ThreadedProducer<AckContext>;

/// `record` as librdkafka takes it (key, payload, headers only when there are any, the record's
/// timestamp when it has one), with `opaque` handed back in the delivery callback.
pub fn base_record<D: IntoOpaque>(record: &OutRecord, opaque: D) -> BaseRecord<'_, [u8], [u8], D> {
    let mut br = BaseRecord::with_opaque_to(&record.topic, opaque)
        .key(record.key.as_bytes())
        .payload(record.payload.as_slice());
    if let Some(ms) = record.timestamp_ms {
        br = br.timestamp(ms);
    }
    if record.headers.is_empty() {
        return br;
    }
    let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
    for (k, v) in &record.headers {
        headers = headers.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    br.headers(headers)
}

pub struct KafkaSink {
    config: ClientConfig,
    acks: Arc<Acks>,
    progress: Arc<Progress>,
    /// No delivery for this long while records time out: replace the producer (see `recover`).
    stalled_after: Duration,
    producer: std::sync::RwLock<AckProducer>,
    generation: std::sync::atomic::AtomicU64,
}

/// Message timeouts without a delivery in between, before the producer is replaced.
const STALLED_TIMEOUTS: u32 = 3;

impl KafkaSink {
    pub fn new(cfg: &KafkaConfig) -> anyhow::Result<Self> {
        let config = producer_config(cfg)?;
        let acks = Arc::new(Acks::default());
        let progress = Arc::new(Progress::new());
        let producer = Self::create(&config, &acks, &progress)
            .map_err(|e| creation_error(cfg, "producer", &e))?;
        Ok(KafkaSink {
            config,
            acks,
            progress,
            stalled_after: cfg.message_timeout * STALLED_TIMEOUTS,
            producer: std::sync::RwLock::new(producer),
            generation: std::sync::atomic::AtomicU64::new(1),
        })
    }

    fn create(
        config: &ClientConfig,
        acks: &Arc<Acks>,
        progress: &Arc<Progress>,
    ) -> Result<AckProducer, KafkaError> {
        progress.restart();
        config.create_with_context(AckContext {
            acks: acks.clone(),
            progress: progress.clone(),
            latency: metrics::histogram!("ccdc_publish_latency_seconds"),
        })
    }

    /// How many producers this sink has created (1 + replacements by `recover`).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn producer(&self) -> std::sync::RwLockReadGuard<'_, AckProducer> {
        self.producer.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a failed produce or delivery means: this record can never be delivered (it goes to the
/// dead-letter topic), the producer is unusable or the cluster refuses us (fatal), or try again.
fn classify(e: &KafkaError) -> SinkError {
    let KafkaError::MessageProduction(code) = e else {
        return SinkError::Retryable(e.to_string());
    };
    match code {
        RDKafkaErrorCode::MessageSizeTooLarge
        // The broker's timestamp bounds (`log.message.timestamp.{before,after}.max.ms`) refuse
        // the record's time: resending cannot help; its dead letter carries the time of failure.
        | RDKafkaErrorCode::InvalidTimestamp
        | RDKafkaErrorCode::InvalidRecord
        | RDKafkaErrorCode::InvalidMessage
        | RDKafkaErrorCode::InvalidMessageSize => SinkError::Rejected(e.to_string()),
        RDKafkaErrorCode::Fatal
        | RDKafkaErrorCode::TopicAuthorizationFailed
        | RDKafkaErrorCode::ClusterAuthorizationFailed => SinkError::Fatal(e.to_string()),
        _ => SinkError::Retryable(e.to_string()),
    }
}

impl EventSink for KafkaSink {
    fn send(&self, id: u64, record: OutRecord) -> Result<(), SendError> {
        match self.producer().send(base_record(&record, id as usize)) {
            Ok(()) => Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                Err(SendError::QueueFull(record))
            }
            Err((e, _)) => Err(SendError::Failed(classify(&e))),
        }
    }

    fn acks(&self) -> &Acks {
        &self.acks
    }

    fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        self.producer()
            .flush(timeout)
            .map_err(|e| SinkError::Retryable(e.to_string()))
    }

    /// Replace the producer when it cannot deliver any more. In-flight records of the old one
    /// fail and stay in the outbox. Two cases:
    /// - a fatal producer error (e.g. an idempotence sequence gap) makes it unusable;
    /// - records keep timing out and none was delivered for three message timeouts. A cluster
    ///   that lost this producer's id (a broker wiped behind a running ccdc; tansu after a
    ///   restart) answers every request with UNKNOWN_PRODUCER_ID, and librdkafka retries under
    ///   the same id for ever; a new producer asks for a new id. In a plain outage a new producer
    ///   costs nothing but its connections.
    fn recover(&self) -> Result<(), SinkError> {
        let fatal = self.producer().client().fatal_error();
        let reason = if let Some((code, reason)) = fatal {
            tracing::error!(%code, %reason, "fatal producer error: recreating the producer; unacknowledged events will be re-sent");
            "fatal"
        } else if self.progress.stalled(self.stalled_after) {
            tracing::warn!(
                stalled_s = self.stalled_after.as_secs(),
                "records keep timing out and none was delivered for three message timeouts: recreating the producer; unacknowledged events will be re-sent"
            );
            "stalled"
        } else {
            return Ok(());
        };
        metrics::counter!("ccdc_producer_recreated_total", "reason" => reason).increment(1);
        let fresh = Self::create(&self.config, &self.acks, &self.progress).map_err(|e| {
            SinkError::Fatal(format!("cannot recreate the producer: {}", key_only(&e)))
        })?;
        *self.producer.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
