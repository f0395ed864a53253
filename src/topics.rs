//! The topics at start-up: create the missing ones with their stream's settings
//! ([`crate::config::KafkaConfig::topic_settings_of`]), and warn once per existing topic whose
//! settings contradict the delivery guarantee (replication below what the cluster allows,
//! `min.insync.replicas` above the replication factor, compaction of an event history, ...).
//! ccdc never alters an existing topic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, NewTopic, OwnedResourceSpecifier, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::metadata::Metadata;

use crate::config::{contradictions, kind_of, KafkaConfig, TopicKind, TopicsConfig};
use crate::event::Stream;

/// How long one admin request (metadata, create) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long describing the existing topics may take. The check is best effort and publishing
/// waits for it: a cluster that cannot describe topic settings (librdkafka then waits for the
/// timeout) delays the start by this much, once.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A failure to settle the topics: [`TopicsError::is_retryable`] says whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    /// The admin client cannot be created (a configuration librdkafka refuses). Fatal.
    #[error("{0}")]
    Client(String),
    /// The cluster did not answer (unreachable, timed out). Retryable.
    #[error("Kafka topics: {0}")]
    Unavailable(String),
    /// The cluster refused to create a topic.
    #[error("cannot create topic `{topic}` (stream `{stream}`): {code}")]
    Refused {
        topic: String,
        stream: &'static str,
        code: RDKafkaErrorCode,
    },
    /// A configured setting contradicts the replication factor the cluster allows. Fatal.
    #[error("topic `{topic}` (stream `{stream}`): configuration key `{from}`: {message}")]
    Settings {
        topic: String,
        stream: &'static str,
        from: String,
        message: String,
    },
}

impl TopicsError {
    pub fn is_retryable(&self) -> bool {
        match self {
            TopicsError::Client(_) | TopicsError::Settings { .. } => false,
            TopicsError::Unavailable(_) => true,
            TopicsError::Refused { code, .. } => !matches!(
                code,
                RDKafkaErrorCode::InvalidConfig
                    | RDKafkaErrorCode::PolicyViolation
                    | RDKafkaErrorCode::InvalidTopic
                    | RDKafkaErrorCode::InvalidPartitions
                    | RDKafkaErrorCode::InvalidRequest
                    | RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::ClusterAuthorizationFailed
                    | RDKafkaErrorCode::UnsupportedVersion
            ),
        }
    }
}

/// What [`ensure_topics`] found and did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TopicsReport {
    /// Brokers the cluster listed.
    pub brokers: usize,
    /// Topics created now, as they were asked for.
    pub created: Vec<Planned>,
    /// Topics that contradict the guarantee, each with what is wrong (also logged, one `warn`
    /// per topic).
    pub warnings: Vec<(String, Vec<String>)>,
    /// Why the settings of existing topics could not be read, if they could not (logged once at
    /// `info`; their replication is still checked).
    pub unchecked: Option<String>,
}

/// The stream of every topic ccdc publishes to, under the names `topics` gives them.
pub fn stream_topics(topics: &TopicsConfig) -> Vec<(Stream, &str)> {
    crate::avro::STREAMS
        .iter()
        .map(|s| (*s, topics.for_stream(*s)))
        .collect()
}

/// What the cluster's metadata says: its brokers, and each topic's partitions and the fewest
/// replicas any of its partitions has.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Cluster {
    pub brokers: usize,
    pub topics: BTreeMap<String, (usize, usize)>,
}

impl Cluster {
    fn of(m: &Metadata) -> Cluster {
        let topics = m
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| {
                let replicas = t.partitions().iter().map(|p| p.replicas().len()).min();
                (
                    t.name().to_string(),
                    (t.partitions().len(), replicas.unwrap_or(0)),
                )
            })
            .collect();
        Cluster {
            brokers: m.brokers().len(),
            topics,
        }
    }
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub topic: String,
    pub stream: &'static str,
    pub partitions: i32,
    /// `-1`: the broker's default.
    pub replication: i32,
    pub settings: Vec<(String, String)>,
}

/// The topics of `streams` missing from `cluster`, as `cfg` creates them. A configured setting
/// that contradicts the replication factor the cluster allows is an error.
pub fn plan(
    cfg: &KafkaConfig,
    streams: &[(Stream, &str)],
    cluster: &Cluster,
) -> Result<Vec<Planned>, TopicsError> {
    let replication = cfg.replication_factor.resolve(cluster.brokers);
    let mut out = Vec::new();
    for (stream, topic) in streams {
        if cluster.topics.contains_key(*topic) {
            continue;
        }
        let key = TopicsConfig::stream_key(*stream);
        let settings = cfg.topic_settings_of(key, replication);
        let kind = kind_of(key).unwrap_or(TopicKind::Events);
        let get = |n: &str| settings.get(n).map(|s| s.value.clone());
        let known = Some(replication).filter(|r| *r >= 1);
        if let Some(c) = contradictions(kind, &get, known).into_iter().next() {
            return Err(TopicsError::Settings {
                topic: topic.to_string(),
                stream: key,
                from: settings
                    .get(c.setting)
                    .map_or_else(|| "kafka.replication_factor".into(), |s| s.from.clone()),
                message: format!(
                    "{} (replication factor {replication} in a cluster of {} brokers)",
                    c.message, cluster.brokers
                ),
            });
        }
        out.push(Planned {
            topic: topic.to_string(),
            stream: key,
            partitions: cfg.partitions,
            replication,
            settings: settings.into_iter().map(|(n, s)| (n, s.value)).collect(),
        });
    }
    Ok(out)
}

/// The CreateTopics request for `planned`.
pub fn new_topics(planned: &[Planned]) -> Vec<NewTopic<'_>> {
    planned
        .iter()
        .map(|p| {
            let mut t = NewTopic::new(
                &p.topic,
                p.partitions,
                TopicReplication::Fixed(p.replication),
            );
            for (name, value) in &p.settings {
                t = t.set(name, value);
            }
            t
        })
        .collect()
}

/// What is wrong with an existing topic of `kind`: `replicas` copies of its partitions (0: not
/// known) in a cluster of `brokers`, and its `described` settings (`None`: not readable).
pub fn problems(
    kind: TopicKind,
    replicas: usize,
    brokers: usize,
    described: Option<&BTreeMap<String, String>>,
) -> Vec<String> {
    let mut out = Vec::new();
    let wanted = brokers.min(3);
    if replicas > 0 && replicas < wanted {
        out.push(format!("replication factor {replicas} in a cluster of {brokers} brokers: an acknowledged record lives on {replicas} broker(s) only and is lost with them (ccdc creates topics with {wanted})"));
    }
    if let Some(d) = described {
        let get = |n: &str| d.get(n).cloned();
        let replication = i32::try_from(replicas).ok().filter(|r| *r >= 1);
        for c in contradictions(kind, &get, replication) {
            let value = d.get(c.setting).map(String::as_str).unwrap_or("");
            out.push(format!("{} = {value}: {}", c.setting, c.message));
        }
    }
    out
}

fn admin_client(cfg: &KafkaConfig) -> Result<Arc<AdminClient<DefaultClientContext>>, TopicsError> {
    let config =
        crate::kafka::client_config(cfg).map_err(|e| TopicsError::Client(format!("{e:#}")))?;
    config.create().map(Arc::new).map_err(|e| {
        TopicsError::Client(format!(
            "{:#}",
            crate::kafka::creation_error(cfg, "admin client", &e)
        ))
    })
}

/// The cluster's metadata, fetched on a thread of its own (librdkafka's call blocks): a shutdown
/// that drops this future does not wait for it.
async fn cluster(admin: &Arc<AdminClient<DefaultClientContext>>) -> Result<Cluster, TopicsError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let admin = admin.clone();
    std::thread::Builder::new()
        .name("ccdc-metadata".into())
        .spawn(move || {
            let m = admin.inner().fetch_metadata(None, REQUEST_TIMEOUT);
            let _ = tx.send(m.map(|m| Cluster::of(&m)));
        })
        .map_err(|e| TopicsError::Unavailable(format!("cannot start a thread: {e}")))?;
    rx.await
        .map_err(|_| {
            TopicsError::Unavailable("the metadata request ended without an answer".into())
        })?
        .map_err(|e| TopicsError::Unavailable(format!("cannot read the cluster's metadata: {e}")))
}

fn options(timeout: Duration) -> AdminOptions {
    AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout))
}

/// Create the topics of `streams` that do not exist yet (when `kafka.create_topics`), each with
/// its stream's settings, and check the settings of those that do; log and report what was found.
pub async fn ensure_topics(
    cfg: &KafkaConfig,
    streams: &[(Stream, &str)],
) -> Result<TopicsReport, TopicsError> {
    let admin = admin_client(cfg)?;
    let cluster = cluster(&admin).await?;
    let mut report = TopicsReport {
        brokers: cluster.brokers,
        ..TopicsReport::default()
    };
    if cfg.create_topics {
        create(&admin, &plan(cfg, streams, &cluster)?, &mut report).await?;
    } else {
        for (stream, topic) in streams {
            if !cluster.topics.contains_key(*topic) {
                let problem = "does not exist and kafka.create_topics = false: its events wait in the outbox until it is created";
                let stream = TopicsConfig::stream_key(*stream);
                tracing::warn!(topic, stream, "topic {problem}");
                report
                    .warnings
                    .push((topic.to_string(), vec![problem.to_string()]));
            }
        }
    }
    let existing: Vec<(Stream, &str)> = streams
        .iter()
        .filter(|(_, t)| cluster.topics.contains_key(*t))
        .copied()
        .collect();
    check(&admin, &existing, &cluster, &mut report).await;
    Ok(report)
}

async fn create(
    admin: &AdminClient<DefaultClientContext>,
    planned: &[Planned],
    report: &mut TopicsReport,
) -> Result<(), TopicsError> {
    if planned.is_empty() {
        return Ok(());
    }
    let results = admin
        .create_topics(new_topics(planned).iter(), &options(REQUEST_TIMEOUT))
        .await
        .map_err(|e| TopicsError::Unavailable(format!("creating topics: {e}")))?;
    for r in results {
        let (topic, code) = match r {
            Ok(t) => (t, None),
            Err((t, code)) => (t, Some(code)),
        };
        let Some(p) = planned.iter().find(|p| p.topic == topic) else {
            continue;
        };
        match code {
            None => {
                let settings: Vec<String> =
                    p.settings.iter().map(|(n, v)| format!("{n}={v}")).collect();
                tracing::info!(topic = %topic, stream = p.stream, partitions = p.partitions, replication = p.replication, settings = %settings.join(" "), "created topic");
                report.created.push(p.clone());
            }
            // Created meanwhile by someone else: it keeps its own settings.
            Some(RDKafkaErrorCode::TopicAlreadyExists) => {
                tracing::debug!(topic = %topic, "topic exists")
            }
            Some(code) => {
                return Err(TopicsError::Refused {
                    topic,
                    stream: p.stream,
                    code,
                })
            }
        }
    }
    Ok(())
}

/// Describe `existing` and warn once per topic whose settings contradict the guarantee. A cluster
/// that cannot describe topic settings gets one `info` line; replication is checked regardless.
async fn check(
    admin: &AdminClient<DefaultClientContext>,
    existing: &[(Stream, &str)],
    cluster: &Cluster,
    report: &mut TopicsReport,
) {
    if existing.is_empty() {
        return;
    }
    let specs: Vec<ResourceSpecifier> = existing
        .iter()
        .map(|(_, t)| ResourceSpecifier::Topic(t))
        .collect();
    let mut described: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut failures = Vec::new();
    match admin
        .describe_configs(specs.iter(), &options(DESCRIBE_TIMEOUT))
        .await
    {
        Ok(results) => {
            for (r, (_, topic)) in results.into_iter().zip(existing) {
                match r {
                    Ok(res) => {
                        // Named by the answer itself, not by its place in it.
                        let name = match res.specifier {
                            OwnedResourceSpecifier::Topic(name) => name,
                            _ => topic.to_string(),
                        };
                        let settings = res
                            .entries
                            .into_iter()
                            .filter_map(|e| Some((e.name, e.value?)))
                            .collect();
                        described.insert(name, settings);
                    }
                    Err(code) => failures.push(format!("`{topic}`: {code}")),
                }
            }
        }
        Err(e) => failures.push(e.to_string()),
    }
    if !failures.is_empty() {
        let why = failures.join("; ");
        tracing::info!(reason = %why, "cannot read the settings of existing topics: they are not checked (their replication is)");
        report.unchecked = Some(why);
    }
    for (stream, topic) in existing {
        let key = TopicsConfig::stream_key(*stream);
        let kind = kind_of(key).unwrap_or(TopicKind::Events);
        let replicas = cluster.topics.get(*topic).map_or(0, |(_, r)| *r);
        let found = problems(kind, replicas, cluster.brokers, described.get(*topic));
        if !found.is_empty() {
            warn(topic, key, &found);
            report.warnings.push((topic.to_string(), found));
        }
    }
}

fn warn(topic: &str, stream: &str, problems: &[String]) {
    tracing::warn!(
        topic,
        stream,
        "existing topic contradicts ccdc's delivery guarantee (ccdc does not change it: fix it with kafka-configs, or recreate it): {}",
        problems.join("; ")
    );
}

#[cfg(test)]
mod tests;
