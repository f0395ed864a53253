//! Configuration: one TOML file plus `CCDC_`-prefixed environment overrides (`__` separates levels,
//! e.g. `CCDC_KAFKA__BOOTSTRAP_SERVERS`). Everything is validated at start-up; errors name the key.
//! Secrets are references ([`crate::secret::SecretRef`]) resolved during validation.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

mod agent_state;
mod checkpoints;
mod kafka_props;
mod output;
mod poll;
mod reports;
mod sources;
mod topic_settings;
pub use agent_state::*;
pub use checkpoints::*;
pub use output::*;
pub use poll::*;
pub use reports::*;
pub use sources::*;
pub use topic_settings::*;

/// The vendor's documented ceilings (see ../shared/vendor-notes.md).
pub mod limits {
    use std::time::Duration;
    /// Wolkvox: at most 2 simultaneous requests with the same token.
    pub const WOLKVOX_MAX_CONCURRENT_PER_TOKEN: usize = 2;
    /// Wolkvox: a call may take at most 60 s.
    pub const WOLKVOX_MAX_CALL_TIME: Duration = Duration::from_secs(60);
    /// Wolkvox: a response weighs at most 256 MB.
    pub const WOLKVOX_MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;
    /// Wolkvox: at most 31 days per date range.
    pub const WOLKVOX_MAX_RANGE: Duration = Duration::from_secs(31 * 86_400);
    /// Wolkvox: at most 60,000 records per call.
    pub const WOLKVOX_MAX_ROWS: u64 = 60_000;
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Avro records to Kafka, schemas in the registry (production).
    #[default]
    Kafka,
    /// JSON lines on stdout (demo, debugging); no Kafka or registry needed.
    Stdout,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory of the sled database (snapshots, outbox). Created with mode 0700.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// sled's page cache, MiB. Once the state has grown past it, sled holds about twice this in
    /// memory (it counts cached pages by their serialized size).
    #[serde(default = "default_state_cache_mb")]
    pub state_cache_mb: u64,
    /// How long shutdown may take to finish cycles, drain the outbox and flush.
    #[serde(default = "default_shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    #[serde(default)]
    pub output: OutputKind,
    pub kafka: Option<KafkaConfig>,
    pub schema_registry: Option<RegistryConfig>,
    #[serde(default)]
    pub topics: TopicsConfig,
    #[serde(default)]
    pub observability: ObservabilityConfig,
    #[serde(default)]
    pub publisher: PublisherConfig,
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// Report cursors checkpointed in a compacted Kafka topic (`[checkpoints]`).
    #[serde(default)]
    pub checkpoints: CheckpointsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// interaction-started / interaction-ended, every vendor.
    pub interactions: String,
    /// agent-status-changed, every vendor.
    pub agent_status: String,
    pub comm100_queue: String,
    pub comm100_today: String,
    pub comm100_right_now: String,
    /// Report rows, one topic per report.
    pub wolkvox_chat_1: String,
    pub wolkvox_diagram_9: String,
    /// Report rows that could not be coerced.
    pub dead_letter: String,
    /// Heartbeat records: one per feed every `observability.heartbeat_every_polls` polls.
    pub heartbeat: String,
    /// `interaction-reconciled`: report chats set against what polling saw (Wolkvox `chat_1`).
    pub interactions_reconciled: String,
    /// `agent-state`: the current state of every agent, a compacted topic keyed by agent.
    pub agent_state: String,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            interactions: "ccdc.interactions".into(),
            agent_status: "ccdc.agent-status".into(),
            comm100_queue: "ccdc.comm100.queue".into(),
            comm100_today: "ccdc.comm100.today".into(),
            comm100_right_now: "ccdc.comm100.right-now".into(),
            wolkvox_chat_1: "ccdc.wolkvox.chat_1".into(),
            wolkvox_diagram_9: "ccdc.wolkvox.diagram_9".into(),
            dead_letter: "ccdc.dead-letter".into(),
            heartbeat: "ccdc.heartbeat".into(),
            interactions_reconciled: "ccdc.interactions-reconciled".into(),
            agent_state: "ccdc.agent-state".into(),
        }
    }
}

impl TopicsConfig {
    /// The topic of each stream.
    pub fn for_stream(&self, s: crate::event::Stream) -> &str {
        use crate::event::Stream;
        match s {
            Stream::Interactions => &self.interactions,
            Stream::AgentStatus => &self.agent_status,
            Stream::Comm100Queue => &self.comm100_queue,
            Stream::Comm100Today => &self.comm100_today,
            Stream::Comm100RightNow => &self.comm100_right_now,
            Stream::WolkvoxChat1 => &self.wolkvox_chat_1,
            Stream::WolkvoxDiagram9 => &self.wolkvox_diagram_9,
            Stream::DeadLetter => &self.dead_letter,
            Stream::Heartbeat => &self.heartbeat,
            Stream::InteractionsReconciled => &self.interactions_reconciled,
            Stream::AgentState => &self.agent_state,
        }
    }

    /// The `[topics]` key of each stream (`interactions`, `dead_letter`, ...): the name of its
    /// `[kafka.topic_settings.<key>]` table, and what decides its topic's built-in settings
    /// ([`topic_settings::STREAM_KINDS`]).
    pub fn stream_key(s: crate::event::Stream) -> &'static str {
        use crate::event::Stream;
        match s {
            Stream::Interactions => "interactions",
            Stream::AgentStatus => "agent_status",
            Stream::Comm100Queue => "comm100_queue",
            Stream::Comm100Today => "comm100_today",
            Stream::Comm100RightNow => "comm100_right_now",
            Stream::WolkvoxChat1 => "wolkvox_chat_1",
            Stream::WolkvoxDiagram9 => "wolkvox_diagram_9",
            Stream::DeadLetter => "dead_letter",
            Stream::Heartbeat => "heartbeat",
            Stream::InteractionsReconciled => "interactions_reconciled",
            Stream::AgentState => "agent_state",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherConfig {
    /// Records handed to the producer and not yet acknowledged, at most.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// When the outbox holds more events than this (the broker is down for long), pollers pause
    /// and say so; readiness fails. Nothing is dropped.
    #[serde(default = "default_max_outbox")]
    pub max_outbox_events: usize,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            max_in_flight: default_max_in_flight(),
            max_outbox_events: default_max_outbox(),
        }
    }
}

fn default_max_outbox() -> usize {
    1_000_000
}

/// `/metrics`, `/healthz`, `/readyz` and heartbeats.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObservabilityConfig {
    pub enabled: bool,
    /// Loopback address of the HTTP endpoints (port 0: any free port, logged at start).
    pub listen: std::net::SocketAddr,
    /// Allow a non-loopback `listen` (the endpoints have no authentication).
    pub allow_remote: bool,
    /// A feed whose last success is older than this many intervals makes `/readyz` fail.
    pub stale_after_intervals: u32,
    /// Publish a heartbeat record per feed every N successful polls (0: never). The default, 1,
    /// costs one record of about 100 bytes per feed per poll and tells "quiet" from "down" within
    /// one interval.
    pub heartbeat_every_polls: u32,
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        ObservabilityConfig {
            enabled: true,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9464)),
            allow_remote: false,
            stale_after_intervals: 3,
            heartbeat_every_polls: 1,
        }
    }
}

pub(crate) fn yes() -> bool {
    true
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("./ccdc-state")
}
/// sled's page cache when the configuration does not say (`state_cache_mb`), in MiB.
pub const DEFAULT_STATE_CACHE_MB: u64 = 64;

fn default_state_cache_mb() -> u64 {
    DEFAULT_STATE_CACHE_MB
}
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_in_flight() -> usize {
    10_000
}

/// Top-level keys that `CCDC_*` variables may override. Other `CCDC_*` variables (`CCDC_LOG`, a
/// token kept in `CCDC_WOLKVOX_TOKEN`, ...) are not configuration keys and are left alone.
const TOP_LEVEL_KEYS: &[&str] = &[
    "state_dir",
    "state_cache_mb",
    "shutdown_timeout",
    "output",
    "kafka",
    "schema_registry",
    "topics",
    "publisher",
    "sources",
    "checkpoints",
];

fn env_overrides() -> Env {
    Env::prefixed("CCDC_")
        .filter(|k| {
            let k = k.as_str().to_ascii_lowercase();
            TOP_LEVEL_KEYS
                .iter()
                .any(|t| k == *t || k.starts_with(&format!("{t}__")))
        })
        .split("__")
}

impl Config {
    /// Load `path` (if given) and `CCDC_*` environment overrides, then validate.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::new();
        if let Some(p) = path {
            if !p.exists() {
                return Err(ConfigError::Load(format!(
                    "file `{}` does not exist",
                    p.display()
                )));
            }
            fig = fig.merge(Toml::file(p));
        }
        fig = fig.merge(env_overrides());
        let cfg: Config = fig
            .extract()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parse TOML text (no environment), then validate. Used by tests and `config check`.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = Figment::new()
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check every key; resolve every secret reference once so a missing one fails now.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.sources.is_empty() {
            return Err(invalid("sources", "at least one source is required"));
        }
        if self.shutdown_timeout.is_zero() {
            return Err(invalid("shutdown_timeout", "must be greater than zero"));
        }
        if !(1..=65_536).contains(&self.state_cache_mb) {
            return Err(invalid("state_cache_mb", "must be 1..=65536 (MiB)"));
        }
        let o = &self.observability;
        if o.enabled && !o.allow_remote && !o.listen.ip().is_loopback() {
            return Err(invalid("observability.listen", "must be a loopback address (the endpoints are unauthenticated); set allow_remote = true to expose them"));
        }
        if o.stale_after_intervals == 0 {
            return Err(invalid(
                "observability.stale_after_intervals",
                "must be at least 1",
            ));
        }
        if self.publisher.max_outbox_events == 0 {
            return Err(invalid("publisher.max_outbox_events", "must be at least 1"));
        }
        if self.publisher.max_in_flight == 0 {
            return Err(invalid("publisher.max_in_flight", "must be at least 1"));
        }
        let t = &self.topics;
        let topics = [
            ("topics.interactions", &t.interactions),
            ("topics.agent_status", &t.agent_status),
            ("topics.comm100_queue", &t.comm100_queue),
            ("topics.comm100_today", &t.comm100_today),
            ("topics.comm100_right_now", &t.comm100_right_now),
            ("topics.wolkvox_chat_1", &t.wolkvox_chat_1),
            ("topics.wolkvox_diagram_9", &t.wolkvox_diagram_9),
            ("topics.dead_letter", &t.dead_letter),
            ("topics.heartbeat", &t.heartbeat),
            ("topics.interactions_reconciled", &t.interactions_reconciled),
            ("topics.agent_state", &t.agent_state),
        ];
        for (i, (key, topic)) in topics.iter().enumerate() {
            validate_topic(key, topic)?;
            if topics[..i].iter().any(|(_, other)| other == topic) {
                return Err(invalid(
                    *key,
                    format!("`{topic}` is used by another stream (each stream has its own schema)"),
                ));
            }
        }
        let cp = &self.checkpoints;
        validate_topic("checkpoints.topic", &cp.topic)?;
        if topics.iter().any(|(_, t)| **t == cp.topic) {
            return Err(invalid(
                "checkpoints.topic",
                format!("`{}` is a stream's topic", cp.topic),
            ));
        }
        cp.validate()?;
        if self.output == OutputKind::Kafka {
            let k = self
                .kafka
                .as_ref()
                .ok_or_else(|| invalid("kafka", "required when output = \"kafka\""))?;
            k.validate()?;
            let r = self
                .schema_registry
                .as_ref()
                .ok_or_else(|| invalid("schema_registry", "required when output = \"kafka\""))?;
            r.validate()?;
        }
        let mut names = HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            if !names.insert(s.name().to_string()) {
                return Err(invalid(
                    format!("sources[{i}].name"),
                    format!("duplicate source name `{}`", s.name()),
                ));
            }
            s.validate(&format!("sources[{i}]"))?;
        }
        self.validate_shared_accounts()
    }

    /// Vonage sources on one account share its limits (`sources::vonage::account_limits`): they
    /// must configure the same ones.
    fn validate_shared_accounts(&self) -> Result<(), ConfigError> {
        let mut accounts: HashMap<String, (&str, f64, usize)> = HashMap::new();
        for (i, s) in self.sources.iter().enumerate() {
            let SourceConfig::Vonage(v) = s else { continue };
            let id = vonage_account_id(&v.base_url, &v.account_key);
            let mine = (
                v.name.as_str(),
                v.requests_per_second,
                v.max_concurrent_requests,
            );
            let (first, rate, in_flight) = *accounts.entry(id).or_insert(mine);
            if (rate, in_flight) != (mine.1, mine.2) {
                return Err(invalid(
                    format!("sources[{i}].requests_per_second"),
                    format!(
                        "source `{}` polls the same Vonage account as `{first}`, whose fair-use \
                         budget they share: both must set the same requests_per_second and \
                         max_concurrent_requests",
                        v.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn validate_topic(key: &str, topic: &str) -> Result<(), ConfigError> {
    let ok = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("`{topic}` is not a legal Kafka topic name"),
        ))
    }
}

#[cfg(test)]
mod tests;
