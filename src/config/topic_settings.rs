//! The settings of ccdc's topics: `kafka.replication_factor`, `[kafka.topic_defaults]` and
//! `[kafka.topic_settings.<stream>]` over each stream's built-in settings, and the checks that keep
//! a topic's settings from contradicting the delivery guarantee (used on the configuration here and
//! on existing topics at start-up by `crate::topics`).
//!
//! A stream is named by its `[topics]` key (`interactions`, `dead_letter`, `agent_state`, ...).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{invalid, ConfigError, KafkaConfig};

/// How many copies of each partition a created topic gets (`kafka.replication_factor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplicationFactor {
    /// `"auto"` (the default): 3, or every broker the cluster lists when it has fewer than 3.
    #[default]
    Auto,
    /// `-1`: the broker's `default.replication.factor` (ccdc then sets no `min.insync.replicas`).
    BrokerDefault,
    /// `n` ≥ 1: exactly `n` (creating a topic fails, and is retried, while fewer brokers are up).
    Fixed(i16),
}

/// The replication factor `auto` aims for.
pub const AUTO_REPLICATION: i16 = 3;

impl ReplicationFactor {
    /// The factor to ask for in a cluster listing `brokers` brokers; `-1` is the broker's default.
    pub fn resolve(self, brokers: usize) -> i32 {
        match self {
            ReplicationFactor::Auto => {
                let brokers = i32::try_from(brokers).unwrap_or(i32::MAX);
                i32::from(AUTO_REPLICATION).min(brokers).max(1)
            }
            ReplicationFactor::BrokerDefault => -1,
            ReplicationFactor::Fixed(n) => i32::from(n),
        }
    }
}

impl<'de> Deserialize<'de> for ReplicationFactor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ReplicationFactor;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"auto\", -1 (the broker's default) or a number from 1 to 32767")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ReplicationFactor, E> {
                match v {
                    -1 => Ok(ReplicationFactor::BrokerDefault),
                    1.. => i16::try_from(v)
                        .map(ReplicationFactor::Fixed)
                        .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self)),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ReplicationFactor, E> {
                let v = i64::try_from(v)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))?;
                self.visit_i64(v)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ReplicationFactor, E> {
                if v == "auto" {
                    return Ok(ReplicationFactor::Auto);
                }
                // An environment override arrives as text.
                match v.parse::<i64>() {
                    Ok(n) => self.visit_i64(n),
                    Err(_) => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// What a stream's topic holds, which decides its built-in settings and what contradicts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// Events a consumer must each see (interactions, agent status, reconciled chats, metrics):
    /// deleted by age, never compacted.
    Events,
    /// Report rows: events too, kept longer (their record time is the row's own time).
    Reports,
    /// Records that could not be delivered or coerced: kept long for whoever investigates.
    DeadLetter,
    /// Liveness only: kept briefly; compaction (the last heartbeat per feed) is harmless.
    Heartbeat,
    /// The current state per key (`agent_state`): compacted.
    Table,
}

/// Every stream, by its `[topics]` key, and what its topic holds. A new stream gets its row here
/// (and in [`super::TopicsConfig::stream_key`]).
pub const STREAM_KINDS: &[(&str, TopicKind)] = &[
    ("interactions", TopicKind::Events),
    ("agent_status", TopicKind::Events),
    ("comm100_queue", TopicKind::Events),
    ("comm100_today", TopicKind::Events),
    ("comm100_right_now", TopicKind::Events),
    ("interactions_reconciled", TopicKind::Events),
    ("wolkvox_chat_1", TopicKind::Reports),
    ("wolkvox_diagram_9", TopicKind::Reports),
    ("dead_letter", TopicKind::DeadLetter),
    ("heartbeat", TopicKind::Heartbeat),
    ("agent_state", TopicKind::Table),
];

/// What the topic of the stream `key` holds (`None`: no such stream).
pub fn kind_of(key: &str) -> Option<TopicKind> {
    STREAM_KINDS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, t)| *t)
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The settings ccdc creates a topic of `kind` with, before `[kafka.topic_defaults]` and
/// `[kafka.topic_settings.<stream>]` (and before `min.insync.replicas`, which depends on the
/// replication factor). Why these values: README, *Topic settings*.
pub fn built_in(kind: TopicKind) -> Vec<(&'static str, String)> {
    let mut s = vec![("message.timestamp.type", "CreateTime".to_string())];
    let (policy, retention, segment) = match kind {
        TopicKind::Events => ("delete", Some(7 * DAY_MS), None),
        TopicKind::Reports => ("delete", Some(400 * DAY_MS), None),
        TopicKind::DeadLetter => ("delete", Some(30 * DAY_MS), None),
        TopicKind::Heartbeat => ("delete", Some(DAY_MS), Some(HOUR_MS)),
        TopicKind::Table => ("compact", None, Some(HOUR_MS)),
    };
    s.push(("cleanup.policy", policy.to_string()));
    if let Some(r) = retention {
        s.push(("retention.ms", r.to_string()));
    }
    if let Some(seg) = segment {
        s.push(("segment.ms", seg.to_string()));
    }
    s
}

/// `min.insync.replicas` ccdc sets on a topic created with `replication` ≥ 3 copies.
pub const MIN_INSYNC_REPLICAS: i32 = 2;

/// One topic setting and the configuration key it comes from (`built-in` for ccdc's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    pub from: String,
}

impl KafkaConfig {
    /// The settings of the stream `key`'s topic, created with `replication` copies (`-1`: the
    /// broker's default): built-in, then `[kafka.topic_defaults]`, then
    /// `[kafka.topic_settings.<key>]`, and `min.insync.replicas = 2` when `replication` ≥ 3 and
    /// the configuration does not set it.
    pub fn topic_settings_of(&self, key: &str, replication: i32) -> BTreeMap<String, Setting> {
        let mut out: BTreeMap<String, Setting> = BTreeMap::new();
        let put = |out: &mut BTreeMap<String, Setting>, name: &str, value: &str, from: String| {
            out.insert(
                name.to_string(),
                Setting {
                    value: value.to_string(),
                    from,
                },
            );
        };
        for (name, value) in kind_of(key).map(built_in).unwrap_or_default() {
            put(&mut out, name, &value, "built-in".to_string());
        }
        for (name, value) in &self.topic_defaults {
            put(
                &mut out,
                name,
                value,
                format!("kafka.topic_defaults.{name}"),
            );
        }
        for (name, value) in self.topic_settings.get(key).into_iter().flatten() {
            put(
                &mut out,
                name,
                value,
                format!("kafka.topic_settings.{key}.{name}"),
            );
        }
        if replication >= 3 && !out.contains_key("min.insync.replicas") {
            put(
                &mut out,
                "min.insync.replicas",
                &MIN_INSYNC_REPLICAS.to_string(),
                "built-in".to_string(),
            );
        }
        out
    }
}

/// A setting that contradicts the delivery guarantee (or that the broker would refuse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contradiction {
    /// The topic setting at fault (`replication.factor` for the replica count).
    pub setting: &'static str,
    pub message: String,
}

fn problem(setting: &'static str, message: impl Into<String>) -> Contradiction {
    Contradiction {
        setting,
        message: message.into(),
    }
}

/// Settings whose values are numbers of milliseconds, bytes or replicas.
const NUMERIC: &[&str] = &[
    "retention.ms",
    "retention.bytes",
    "segment.ms",
    "segment.bytes",
    "delete.retention.ms",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "min.insync.replicas",
    "message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms",
];

/// What in `settings` (a topic's, by name) contradicts ccdc's guarantee for a topic of `kind`
/// with `replication` copies (when known). A setting that is absent is the broker's default and
/// is not judged.
pub fn contradictions(
    kind: TopicKind,
    settings: &dyn Fn(&str) -> Option<String>,
    replication: Option<i32>,
) -> Vec<Contradiction> {
    let mut out = Vec::new();
    let number = |name: &'static str, out: &mut Vec<Contradiction>| -> Option<i64> {
        let v = settings(name)?;
        match v.trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                out.push(problem(name, format!("`{v}` is not a whole number")));
                None
            }
        }
    };
    for name in NUMERIC {
        number(name, &mut out);
    }
    if let Some(p) = settings("cleanup.policy") {
        policy(kind, &p, &mut out);
    }
    if settings("unclean.leader.election.enable").is_some_and(|v| v.trim() == "true") {
        out.push(problem("unclean.leader.election.enable", "`true` lets a replica that missed acknowledged records become the leader: those records are lost"));
    }
    if settings("message.timestamp.type").is_some_and(|v| v.trim() == "LogAppendTime") {
        out.push(problem("message.timestamp.type", "`LogAppendTime` replaces each record's timestamp (the event's own time) with the time the broker appended it"));
    }
    let isr = number("min.insync.replicas", &mut Vec::new());
    match (isr, replication) {
        (Some(n), _) if n < 1 => out.push(problem("min.insync.replicas", "must be at least 1")),
        (Some(n), Some(r)) if r >= 1 && n > i64::from(r) => out.push(problem(
            "min.insync.replicas",
            format!("{n} is more than the replication factor {r}: every write is refused (NOT_ENOUGH_REPLICAS) and events pile up in the outbox"),
        )),
        (Some(n), Some(r)) if r >= 3 && n < 2 => out.push(problem(
            "min.insync.replicas",
            format!("{n} with replication factor {r}: a record the leader alone acknowledged is lost with that broker (use at least 2)"),
        )),
        _ => {}
    }
    let retention = number("retention.ms", &mut Vec::new());
    if let Some(r) = retention {
        if r != -1 && r < HOUR_MS {
            out.push(problem(
                "retention.ms",
                format!("{r} ms deletes records within the hour (retention counts from each record's timestamp, the event time): use -1 or at least {HOUR_MS}"),
            ));
        }
    }
    for name in [
        "message.timestamp.before.max.ms",
        "message.timestamp.difference.max.ms",
    ] {
        let (Some(limit), Some(kept)) = (number(name, &mut Vec::new()), retention) else {
            continue;
        };
        let kept = if kept == -1 { i64::MAX } else { kept };
        if limit < kept {
            out.push(problem(name, format!("the broker refuses records older than {limit} ms although the topic keeps records for {}: events delivered after an outage longer than that are refused", if kept == i64::MAX { "ever".to_string() } else { format!("{kept} ms") })));
        }
    }
    out
}

fn policy(kind: TopicKind, value: &str, out: &mut Vec<Contradiction>) {
    let parts: Vec<&str> = value.split(',').map(str::trim).collect();
    if parts.iter().any(|p| !matches!(*p, "delete" | "compact")) {
        out.push(problem(
            "cleanup.policy",
            format!("`{value}` is not `delete`, `compact` or `compact,delete`"),
        ));
        return;
    }
    let compact = parts.contains(&"compact");
    match kind {
        TopicKind::Events | TopicKind::Reports | TopicKind::DeadLetter if compact => {
            out.push(problem("cleanup.policy", format!("`{value}` keeps only the newest record per key: earlier events of a key are deleted (this topic is a history, not a table)")));
        }
        TopicKind::Table if !compact => {
            out.push(problem("cleanup.policy", format!("`{value}` without `compact`: this table topic then holds every change until retention instead of the latest record per key, and a key not refreshed within retention disappears")));
        }
        _ => {}
    }
}

/// `[kafka.topic_defaults]` and `[kafka.topic_settings.*]`: known streams, well-formed names,
/// and no setting that contradicts the guarantee on any stream's topic.
pub(super) fn validate(k: &KafkaConfig) -> Result<(), ConfigError> {
    for name in k.topic_defaults.keys() {
        setting_name(&format!("kafka.topic_defaults.{name}"), name)?;
    }
    for (key, settings) in &k.topic_settings {
        if kind_of(key).is_none() {
            let keys: Vec<&str> = STREAM_KINDS.iter().map(|(k, _)| *k).collect();
            return Err(invalid(
                format!("kafka.topic_settings.{key}"),
                format!("no such stream (one of {})", keys.join(", ")),
            ));
        }
        for name in settings.keys() {
            setting_name(&format!("kafka.topic_settings.{key}.{name}"), name)?;
        }
    }
    let replication = match k.replication_factor {
        ReplicationFactor::Fixed(n) => Some(i32::from(n)),
        _ => None,
    };
    for (key, kind) in STREAM_KINDS {
        let settings = k.topic_settings_of(key, replication.unwrap_or(-1));
        let get = |name: &str| settings.get(name).map(|s| s.value.clone());
        if let Some(c) = contradictions(*kind, &get, replication).into_iter().next() {
            let from = settings
                .get(c.setting)
                .map(|s| s.from.clone())
                .unwrap_or_else(|| format!("kafka.topic_settings.{key}.{}", c.setting));
            let on = if from.starts_with("kafka.topic_defaults.") {
                format!(
                    " (on the `{key}` topic; set it per stream in [kafka.topic_settings.<stream>])"
                )
            } else {
                String::new()
            };
            return Err(invalid(from, format!("{}{on}", c.message)));
        }
    }
    Ok(())
}

/// A topic setting's name as Kafka spells them: lowercase words joined by dots.
fn setting_name(at: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            at,
            "not a Kafka topic setting name (lowercase words joined by dots, e.g. retention.ms)",
        ))
    }
}

#[cfg(test)]
mod tests;
