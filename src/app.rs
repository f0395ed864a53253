//! Wiring: `run(config, shutdown)` starts the pollers and the publisher and shuts them down in
//! order — stop polling, finish in-flight cycles, drain the outbox, flush the producer, flush sled —
//! within `shutdown_timeout`. The other commands are in [`crate::commands`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::avro::{schema_text, STREAMS};
use crate::checkpoint::{CheckpointLog, Checkpoints};
use crate::config::{Config, KafkaConfig, OutputKind, SourceConfig, TopicsConfig};
use crate::encode::{AvroEncoder, JsonEncoder, SourceContexts};
use crate::event::Stream;
use crate::observability::Health;
use crate::publisher::{Publisher, PublisherReport};
use crate::registry::{resolve_id, subject_for_topic, HttpRegistry, RegistryError, SchemaRegistry};
use crate::retry::{retry, Backoff};
use crate::shard::Replica;
use crate::sink::{EventSink, StdoutSink};
use crate::store::outbox::Recent;
use crate::store::{SledStore, Store};

mod feeds;
use feeds::start_pollers;
pub use feeds::{feeds, START_SPREAD_PER_FEED};

pub fn registry_client(config: &Config) -> anyhow::Result<HttpRegistry> {
    let r = config
        .schema_registry
        .as_ref()
        .context("schema_registry is not configured")?;
    let auth = match (&r.username, r.resolved_password()?) {
        (Some(u), Some(p)) => Some((u.clone(), p)),
        _ => None,
    };
    let ca = r
        .ca_file
        .as_ref()
        .map(std::fs::read)
        .transpose()
        .with_context(|| "schema_registry.ca_file")?;
    Ok(HttpRegistry::new(&r.url, auth, r.timeout, ca.as_deref())?)
}

/// `kafka.record_headers`; without `[kafka]` (stdout) the default, CloudEvents.
fn record_headers(config: &Config) -> crate::config::RecordHeaders {
    config
        .kafka
        .as_ref()
        .map_or_else(Default::default, |k| k.record_headers)
}

/// Resolve every stream's schema id, retrying while the registry is unavailable; a refusal is fatal.
/// `None`: shutdown came first.
async fn resolve_schema_ids(
    config: &Config,
    registry: &dyn SchemaRegistry,
    stop: &CancellationToken,
) -> anyhow::Result<Option<Vec<(Stream, u32)>>> {
    let auto = config
        .schema_registry
        .as_ref()
        .is_none_or(|r| r.auto_register);
    let mut ids = Vec::new();
    for stream in STREAMS {
        let subject = subject_for_topic(config.topics.for_stream(*stream));
        let attempt = || async {
            let r = resolve_id(registry, &subject, schema_text(*stream), auto).await;
            if matches!(&r, Err(e) if e.is_retryable()) {
                metrics::counter!("ccdc_registry_errors_total", "kind" => "unavailable")
                    .increment(1);
            }
            r
        };
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        match retry(
            "schema registry unavailable; events wait in the outbox",
            backoff,
            stop,
            RegistryError::is_retryable,
            attempt,
        )
        .await
        {
            Ok(Some(id)) => {
                tracing::info!(subject = %subject, schema_id = id, "schema resolved");
                ids.push((*stream, id));
            }
            Ok(None) => return Ok(None),
            Err(e) => {
                metrics::counter!("ccdc_registry_errors_total", "kind" => "rejected").increment(1);
                return Err(anyhow::Error::new(e).context("schema registration failed"));
            }
        }
    }
    Ok(Some(ids))
}

/// Create the missing topics (when `kafka.create_topics`) and check the existing ones
/// ([`crate::topics::ensure_topics`]), retrying while the cluster is unreachable. `Ok(false)`:
/// shutdown came first; an error: the cluster or the configuration refuses for good.
async fn ensure_topics(
    kafka: &KafkaConfig,
    topics: &TopicsConfig,
    stop: &CancellationToken,
) -> anyhow::Result<bool> {
    let streams = crate::topics::stream_topics(topics);
    let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let settled = retry(
        "cannot settle the topics yet",
        backoff,
        stop,
        crate::topics::TopicsError::is_retryable,
        || crate::topics::ensure_topics(kafka, &streams),
    )
    .await?;
    Ok(settled.is_some())
}

type PublisherTask = tokio::task::JoinHandle<anyhow::Result<Option<PublisherReport>>>;

/// What a [`Pipeline`] runs on. [`Parts::from_config`] builds the real ones (sled, Kafka or stdout,
/// the HTTP registry); tests give in-memory ones ([`crate::store::MemoryStore`],
/// [`crate::sink::MemorySink`], [`crate::registry::MemoryRegistry`]).
pub struct Parts {
    pub store: Arc<dyn Store>,
    pub sink: Arc<dyn EventSink>,
    /// Where schema ids come from: with a registry records are Avro (Confluent framing), without
    /// one they are JSON lines.
    pub registry: Option<Arc<dyn SchemaRegistry>>,
    /// Settle the topics in this cluster before publishing: create the missing ones (when
    /// `kafka.create_topics`) and check the settings of the existing ones.
    pub create_topics: Option<KafkaConfig>,
}

impl Parts {
    pub fn from_config(config: &Config) -> anyhow::Result<Parts> {
        let store: Arc<dyn Store> = Arc::new(SledStore::open_with_cache(
            &config.state_dir,
            config.state_cache_mb << 20,
        )?);
        Ok(match config.output {
            OutputKind::Stdout => Parts {
                store,
                sink: Arc::new(StdoutSink::default()),
                registry: None,
                create_topics: None,
            },
            OutputKind::Kafka => {
                let kafka = config.kafka.as_ref().context("kafka is not configured")?;
                Parts {
                    store,
                    sink: Arc::new(crate::kafka::KafkaSink::new(kafka)?),
                    registry: Some(Arc::new(registry_client(config)?)),
                    create_topics: Some(kafka.clone()),
                }
            }
        })
    }
}

/// The durable half of ccdc, shared by `run` and `backfill`: the store, the sink and the publisher
/// that drains the outbox into it.
pub struct Pipeline {
    pub store: Arc<dyn Store>,
    pub notify: Arc<Notify>,
    pub health: Arc<Health>,
    /// The events just committed by this process's pollers, which the publisher takes instead of
    /// decoding them again ([`crate::store::outbox::recent`]).
    pub recent: Arc<Recent>,
    sink: Arc<dyn EventSink>,
    publisher: PublisherTask,
    publish_stop: CancellationToken,
    publish_abort: CancellationToken,
    /// Report cursors checkpointed in Kafka ([`crate::checkpoint`]), when configured.
    checkpoints: Option<Checkpoints>,
    checkpoint_writer: Option<(tokio::task::JoinHandle<()>, CancellationToken)>,
}

impl Pipeline {
    /// [`Pipeline::with_parts`] on the parts the configuration names.
    /// With the checkpoint topic the configuration names ([`Pipeline::with_checkpoints`]).
    pub fn start(config: &Config, shutdown: &CancellationToken) -> anyhow::Result<Pipeline> {
        let pipeline = Self::with_parts(config, Parts::from_config(config)?, shutdown);
        let log = crate::checkpoint::log_from_config(config)?;
        let sources = config.sources.iter().map(|s| s.name().to_string());
        Ok(pipeline.with_checkpoints(config, log, Replica::SINGLE, sources.collect(), shutdown))
    }

    /// Checkpoint the report cursors of `sources` in `log` (`None`: not checkpointed): read the
    /// topic (report pollers resume from it, [`Pipeline::checkpoints`]) and start the writer, which
    /// [`Pipeline::finish`] stops after the outbox is drained.
    pub fn with_checkpoints(
        mut self,
        config: &Config,
        log: Option<Arc<dyn CheckpointLog>>,
        replica: Replica,
        sources: Vec<String>,
        shutdown: &CancellationToken,
    ) -> Pipeline {
        if let Some(log) = log {
            let checkpoints = Checkpoints::start(log, replica, shutdown);
            let stop = CancellationToken::new();
            let writer = checkpoints.writer(self.store.clone(), sources);
            let interval = config.checkpoints.interval;
            let task = tokio::spawn(writer.run(checkpoints.clone(), interval, stop.clone()));
            self.checkpoints = Some(checkpoints);
            self.checkpoint_writer = Some((task, stop));
        }
        self
    }

    /// The checkpoints a report poller resumes from ([`Checkpoints::resume`]), when configured.
    pub fn checkpoints(&self) -> Option<&Checkpoints> {
        self.checkpoints.as_ref()
    }

    /// Start the publisher on `parts`. It begins once topics and schema ids are settled (retrying
    /// while Kafka or the registry are unreachable); events wait in the outbox meanwhile.
    pub fn with_parts(config: &Config, parts: Parts, shutdown: &CancellationToken) -> Pipeline {
        let Parts {
            store,
            sink,
            registry,
            create_topics,
        } = parts;
        metrics::gauge!("ccdc_outbox_depth").set(store.outbox_len() as f64);
        let notify = Arc::new(Notify::new());
        let health = Health::new(
            store.clone(),
            config.publisher.max_outbox_events,
            config.observability.stale_after_intervals,
        );
        let (publish_stop, publish_abort) = (CancellationToken::new(), CancellationToken::new());
        let recent = Arc::new(Recent::default());
        let publisher = Publisher {
            store: store.clone(),
            recent: Some(recent.clone()),
            encoder: Arc::new(
                JsonEncoder::new(config.topics.clone())
                    .with_record_headers(record_headers(config))
                    .with_contexts(SourceContexts::from_config(&config.sources)),
            ),
            sink: sink.clone(),
            notify: notify.clone(),
            max_in_flight: config.publisher.max_in_flight,
            max_backoff: Duration::from_secs(30),
            health: Some(health.clone()),
        };
        let (config, stop, abort, shutdown) = (
            config.clone(),
            publish_stop.clone(),
            publish_abort.clone(),
            shutdown.clone(),
        );
        let publisher = tokio::spawn(async move {
            let mut publisher = publisher;
            if let Some(registry) = registry {
                if let Some(kafka) = &create_topics {
                    if !ensure_topics(kafka, &config.topics, &shutdown).await? {
                        return Ok(None);
                    }
                }
                let Some(ids) = resolve_schema_ids(&config, &*registry, &shutdown).await? else {
                    return Ok(None);
                };
                publisher.encoder = Arc::new(
                    AvroEncoder::new(config.topics.clone(), &ids)?
                        .with_record_headers(record_headers(&config))
                        .with_contexts(SourceContexts::from_config(&config.sources)),
                );
            }
            anyhow::Ok(Some(publisher.run(stop, abort).await?))
        });
        Pipeline {
            store,
            notify,
            health,
            recent,
            sink,
            publisher,
            publish_stop,
            publish_abort,
            checkpoints: None,
            checkpoint_writer: None,
        }
    }

    /// Resolves only if the publisher stops by itself (a fatal error such as a refused schema).
    pub async fn publisher_failed(&mut self) -> anyhow::Result<Option<PublisherReport>> {
        (&mut self.publisher)
            .await
            .context("publisher task panicked")?
    }

    /// Drain the outbox (until `deadline`), flush the producer and the store.
    pub async fn finish(
        mut self,
        early: Option<anyhow::Result<Option<PublisherReport>>>,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        let outcome = match early {
            Some(r) => r,
            None => {
                self.publish_stop.cancel();
                match tokio::time::timeout_at(deadline.into(), &mut self.publisher).await {
                    Ok(r) => r.context("publisher task panicked")?,
                    Err(_) => {
                        self.publish_abort.cancel();
                        self.publisher.await.context("publisher task panicked")?
                    }
                }
            }
        };
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(500));
        if let Err(e) = self.sink.flush(remaining) {
            tracing::warn!(error = %e, "producer flush incomplete; unacknowledged events stay in the outbox");
        }
        if let Some((mut task, stop)) = self.checkpoint_writer.take() {
            stop.cancel();
            if tokio::time::timeout_at(deadline.into(), &mut task)
                .await
                .is_err()
            {
                task.abort();
                tracing::warn!("the last checkpoints were not written before the deadline (the cursors stay in the state directory)");
            }
        }
        self.store.flush()?;
        match outcome? {
            Some(report) => tracing::info!(
                delivered = report.delivered,
                left_in_outbox = report.left_in_outbox,
                "publisher stopped"
            ),
            None => tracing::info!(
                left_in_outbox = self.store.outbox_len(),
                "stopped before publishing started"
            ),
        }
        Ok(())
    }
}

/// Run the service until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_as(config, None, shutdown).await
}

/// [`run`] as `replica` of a sharded deployment ([`crate::shard`]; `None`: every source): poll only
/// its sources, drop the stale snapshots of a source it takes over, checkpoint report cursors.
pub async fn run_as(
    mut config: Config,
    replica: Option<Replica>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Before the parts: the Kafka sink registers its metric handles when it is created.
    if config.observability.enabled {
        crate::observability::prometheus();
    }
    let replica = replica.unwrap_or(Replica::SINGLE);
    let owned = crate::shard::select(&mut config, replica);
    let parts = Parts::from_config(&config)?;
    let names: Vec<&str> = owned.iter().map(String::as_str).collect();
    for source in crate::shard::forget_taken_over(&*parts.store, replica, &names)? {
        tracing::info!(source = %source, replica = %replica, "a source this replica did not poll in its last run: its stale stored snapshots are dropped, its first poll publishes `initial` events");
    }
    // Only report feeds have cursors to checkpoint (and to wait for the topic).
    let reports = config
        .sources
        .iter()
        .any(|s| matches!(s, SourceConfig::Wolkvox(w) if w.reports.iter().any(|r| r.enabled)));
    let log = match reports {
        true => crate::checkpoint::log_from_config(&config)?,
        false => None,
    };
    run_parts(config, parts, replica, log, shutdown).await
}

/// [`run`] on the given parts (tests run the whole service in-process this way).
pub async fn run_with(
    config: Config,
    parts: Parts,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_parts(config, parts, Replica::SINGLE, None, shutdown).await
}

/// [`run_with`], with the report cursors checkpointed in `checkpoints` as `replica`.
pub async fn run_parts(
    config: Config,
    parts: Parts,
    replica: Replica,
    checkpoints: Option<Arc<dyn CheckpointLog>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if config.observability.enabled {
        crate::observability::prometheus();
    }
    let sources = config.sources.iter().map(|s| s.name().to_string());
    let mut pipeline = Pipeline::with_parts(&config, parts, &shutdown).with_checkpoints(
        &config,
        checkpoints,
        replica,
        sources.collect(),
        &shutdown,
    );
    tracing::info!(state_dir = %config.state_dir.display(), outbox = pipeline.store.outbox_len(), sources = config.sources.len(), "ccdc starting");
    // Not a child of `shutdown`: pollers stop when the shutdown sequence says so, after it began.
    let poll_stop = CancellationToken::new();
    let mut pollers = start_pollers(&config, &pipeline, &poll_stop)?;
    if config.observability.enabled {
        let (addr, _server) = crate::observability::serve(
            config.observability.listen,
            pipeline.health.clone(),
            shutdown.clone(),
        )
        .await
        .with_context(|| format!("observability.listen {}", config.observability.listen))?;
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    }

    let early = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break None,
            r = pipeline.publisher_failed() => break Some(r),
            Some(ended) = pollers.join_next() => {
                // A poller returns only at shutdown, and a panic in a cycle is caught there: this
                // is a bug, and its feed is no longer polled. Say so loudly; /readyz goes stale.
                metrics::counter!("ccdc_poller_tasks_ended_total").increment(1);
                tracing::error!(outcome = ?ended.err(), "a poller ended before shutdown: its feed is no longer polled (its readiness goes stale); restart ccdc");
            }
        }
    };
    let deadline = Instant::now() + config.shutdown_timeout;
    tracing::info!(
        timeout_ms = config.shutdown_timeout.as_millis() as u64,
        "shutting down: stopping pollers"
    );
    poll_stop.cancel();
    if tokio::time::timeout_at(deadline.into(), async {
        while pollers.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("pollers did not finish their cycle before the deadline; aborted (nothing partial was committed)");
        pollers.abort_all();
    }
    pipeline.finish(early, deadline).await?;
    tracing::info!("ccdc stopped");
    Ok(())
}

/// The runtime's blocking threads, at most (tokio's default is 512): vendor bodies are parsed on
/// them, and every thread keeps its own allocator pages. A thousand sources polled at once grew
/// 512 of them, ≈ 0.5 GB (BENCHMARKS.md, P6); a parse or commit that finds them all busy waits.
pub const MAX_BLOCKING_THREADS: usize = 32;
