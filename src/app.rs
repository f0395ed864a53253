//! Wiring: `run(config, shutdown)` starts the pollers and the publisher and shuts them down in
//! order — stop polling, finish in-flight cycles, drain the outbox, flush the producer, flush sled —
//! within `shutdown_timeout`. The other commands are in [`crate::commands`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::avro::{schema_text, STREAMS};
use crate::config::{Config, OutputKind, PollConfig, SourceConfig};
use crate::event::Stream;
use crate::feed::{Feed, SnapshotFeed, SnapshotSource};
use crate::observability::Health;
use crate::poller::Poller;
use crate::publisher::{Publisher, PublisherReport};
use crate::registry::{resolve_id, subject_for_topic, HttpRegistry};
use crate::reports::{Mode, ReportFeed};
use crate::sink::{AvroEncoder, EventSink, JsonEncoder, RecordEncoder, StdoutSink, Topics};
use crate::sources::comm100::{Comm100Agents, Comm100Client, Comm100Metrics, MetricsEndpoint};
use crate::sources::vonage::{VonageInteractions, VonageSource};
use crate::sources::wolkvox::agents::WolkvoxAgents;
use crate::sources::wolkvox::interactions::WolkvoxInteractions;
use crate::sources::wolkvox::WolkvoxClient;
use crate::store::{SledStore, Store};

fn topics(config: &Config) -> Topics {
    config.topics.clone()
}

/// Every feed the configuration enables, with how to poll it.
pub fn feeds(
    config: &Config,
    store: &Arc<dyn Store>,
) -> anyhow::Result<Vec<(Box<dyn Feed>, PollConfig)>> {
    fn add<S: SnapshotSource>(
        out: &mut Vec<(Box<dyn Feed>, PollConfig)>,
        source: S,
        poll: &PollConfig,
        confirm_empty: bool,
    ) {
        if poll.enabled {
            let confirm = if confirm_empty {
                poll.confirm_empty_polls
            } else {
                1
            };
            out.push((
                Box::new(SnapshotFeed::new(Arc::new(source), confirm)),
                poll.clone(),
            ));
        }
    }
    let mut out = Vec::new();
    for src in &config.sources {
        match src {
            SourceConfig::Wolkvox(w) => {
                let client = WolkvoxClient::with_quota(w, store.clone())?;
                add(
                    &mut out,
                    WolkvoxInteractions(client.clone()),
                    &w.interactions,
                    true,
                );
                add(&mut out, WolkvoxAgents(client.clone()), &w.agents, true);
                for r in w.reports.iter().filter(|r| r.enabled) {
                    let feed =
                        ReportFeed::new(client.clone(), store.clone(), r.plan()?, Mode::Live)
                            .with_spill_dir(config.state_dir.clone());
                    let poll = PollConfig {
                        enabled: true,
                        interval: r.interval,
                        max_backoff: r.max_backoff,
                        confirm_empty_polls: 1,
                    };
                    out.push((Box::new(feed), poll));
                }
            }
            SourceConfig::Comm100(c) => {
                let client = Comm100Client::new(c)?;
                add(&mut out, Comm100Agents(client.clone()), &c.agents, true);
                for (endpoint, poll) in [
                    (MetricsEndpoint::Queue, &c.queue),
                    (MetricsEndpoint::Today, &c.today),
                    (MetricsEndpoint::RightNow, &c.right_now),
                ] {
                    add(
                        &mut out,
                        Comm100Metrics {
                            client: client.clone(),
                            endpoint,
                        },
                        poll,
                        false,
                    );
                }
            }
            SourceConfig::Vonage(v) => add(
                &mut out,
                VonageInteractions(VonageSource::new(v)?),
                &v.interactions,
                true,
            ),
        }
    }
    Ok(out)
}

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

/// Resolve every stream's schema id, retrying while the registry is unavailable; a refusal is fatal.
async fn resolve_schema_ids(
    config: &Config,
    stop: &CancellationToken,
) -> anyhow::Result<Option<Vec<(Stream, u32)>>> {
    let reg = registry_client(config)?;
    let auto = config
        .schema_registry
        .as_ref()
        .is_none_or(|r| r.auto_register);
    let topics = topics(config);
    let mut ids = Vec::new();
    for stream in STREAMS {
        let subject = subject_for_topic(topics.for_stream(*stream));
        let mut failures = 0;
        loop {
            match resolve_id(&reg, &subject, schema_text(*stream), auto).await {
                Ok(id) => {
                    tracing::info!(subject = %subject, schema_id = id, "schema resolved");
                    ids.push((*stream, id));
                    break;
                }
                Err(e) if e.is_retryable() => {
                    failures += 1;
                    metrics::counter!("ccdc_registry_errors_total", "kind" => "unavailable")
                        .increment(1);
                    let wait = crate::backoff::jittered(
                        failures,
                        Duration::from_secs(1),
                        Duration::from_secs(30),
                    );
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "schema registry unavailable; events wait in the outbox");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.cancelled() => return Ok(None),
                    }
                }
                Err(e) => {
                    metrics::counter!("ccdc_registry_errors_total", "kind" => "rejected")
                        .increment(1);
                    return Err(anyhow::Error::new(e).context("schema registration failed"));
                }
            }
        }
    }
    Ok(Some(ids))
}

/// Create topics, retrying while the cluster is unreachable.
async fn ensure_topics(config: &Config, stop: &CancellationToken) -> anyhow::Result<bool> {
    let Some(k) = config.kafka.as_ref().filter(|k| k.create_topics) else {
        return Ok(true);
    };
    let t = topics(config);
    let names: Vec<&str> = STREAMS.iter().map(|s| t.for_stream(*s)).collect();
    let mut failures = 0;
    loop {
        match crate::kafka::ensure_topics(k, &names).await {
            Ok(()) => return Ok(true),
            Err(e) => {
                failures += 1;
                let wait = crate::backoff::jittered(
                    failures,
                    Duration::from_secs(1),
                    Duration::from_secs(30),
                );
                tracing::warn!(error = %format!("{e:#}"), retry_in_ms = wait.as_millis() as u64, "cannot create topics yet");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => return Ok(false),
                }
            }
        }
    }
}

type PublisherTask = tokio::task::JoinHandle<anyhow::Result<Option<PublisherReport>>>;

/// The durable half of ccdc, shared by `run` and `backfill`: the store, the sink and the publisher
/// that drains the outbox into it.
pub struct Pipeline {
    pub store: Arc<dyn Store>,
    pub notify: Arc<Notify>,
    pub health: Arc<Health>,
    sink: Arc<dyn EventSink>,
    publisher: PublisherTask,
    publish_stop: CancellationToken,
    publish_abort: CancellationToken,
}

impl Pipeline {
    /// Open the store and start the publisher. It begins once topics and schema ids are settled
    /// (retrying while Kafka or the registry are unreachable); events wait in the outbox meanwhile.
    pub fn start(config: &Config, shutdown: &CancellationToken) -> anyhow::Result<Pipeline> {
        let store: Arc<dyn Store> = Arc::new(SledStore::open_with_cache(
            &config.state_dir,
            config.state_cache_mb << 20,
        )?);
        metrics::gauge!("ccdc_outbox_depth").set(store.outbox_len() as f64);
        let sink: Arc<dyn EventSink> = match config.output {
            OutputKind::Stdout => Arc::new(StdoutSink::default()),
            OutputKind::Kafka => Arc::new(crate::kafka::KafkaSink::new(
                config.kafka.as_ref().context("kafka is not configured")?,
            )?),
        };
        let notify = Arc::new(Notify::new());
        let health = Health::new(
            store.clone(),
            config.publisher.max_outbox_events,
            config.observability.stale_after_intervals,
        );
        let (publish_stop, publish_abort) = (CancellationToken::new(), CancellationToken::new());
        let publisher = {
            let (config, store, sink, notify, health) = (
                config.clone(),
                store.clone(),
                sink.clone(),
                notify.clone(),
                health.clone(),
            );
            let (stop, abort, shutdown) = (
                publish_stop.clone(),
                publish_abort.clone(),
                shutdown.clone(),
            );
            tokio::spawn(async move {
                let encoder: Arc<dyn RecordEncoder> = match config.output {
                    OutputKind::Stdout => Arc::new(JsonEncoder {
                        topics: topics(&config),
                    }),
                    OutputKind::Kafka => {
                        if !ensure_topics(&config, &shutdown).await? {
                            return Ok(None);
                        }
                        let Some(ids) = resolve_schema_ids(&config, &shutdown).await? else {
                            return Ok(None);
                        };
                        let headers = config.kafka.as_ref().is_none_or(|k| k.record_headers);
                        Arc::new(
                            AvroEncoder::new(topics(&config), &ids)?.with_record_headers(headers),
                        )
                    }
                };
                let p = Publisher {
                    store,
                    encoder,
                    sink,
                    notify,
                    max_in_flight: config.publisher.max_in_flight,
                    max_backoff: Duration::from_secs(30),
                    health: Some(health),
                };
                anyhow::Ok(Some(p.run(stop, abort).await?))
            })
        };
        Ok(Pipeline {
            store,
            notify,
            health,
            sink,
            publisher,
            publish_stop,
            publish_abort,
        })
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
    if config.observability.enabled {
        crate::observability::prometheus();
    }
    let mut pipeline = Pipeline::start(&config, &shutdown)?;
    let store = pipeline.store.clone();
    tracing::info!(state_dir = %config.state_dir.display(), outbox = store.outbox_len(), sources = config.sources.len(), "ccdc starting");

    // A corrupt stored state fails start-up.
    let poll_stop = shutdown.child_token();
    let mut pollers = JoinSet::new();
    for (feed, poll) in feeds(&config, &store)? {
        let what = format!("source `{}` endpoint `{}`", feed.source(), feed.endpoint());
        let mut poller = Poller::new(
            feed,
            store.clone(),
            pipeline.notify.clone(),
            poll.interval,
            poll.max_backoff,
        )
        .observe(
            pipeline.health.clone(),
            config.observability.heartbeat_every_polls,
        );
        poller.load().with_context(|| what)?;
        pollers.spawn(poller.run(poll_stop.clone()));
    }

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

    let early = tokio::select! {
        _ = shutdown.cancelled() => None,
        r = pipeline.publisher_failed() => Some(r),
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
