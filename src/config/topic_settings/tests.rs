use super::*;
use crate::config::Config;

fn kafka_config(kafka_extra: &str) -> Result<Config, ConfigError> {
    std::env::set_var("CCDC_TEST_TOPIC_CFG_TOKEN", "tok");
    Config::from_toml_str(&format!(
        r#"
[kafka]
bootstrap_servers = "k:9092"
{kafka_extra}
[schema_registry]
url = "http://r:8081"
[[sources]]
vendor = "wolkvox"
name = "ops-a"
base_url = "https://wv001.wolkvox.com/api/v2"
token = {{ env = "CCDC_TEST_TOPIC_CFG_TOKEN" }}
time_zone = "America/Bogota"
"#
    ))
}

fn kafka(extra: &str) -> KafkaConfig {
    kafka_config(extra).unwrap().kafka.unwrap()
}

fn err(extra: &str) -> String {
    kafka_config(extra).unwrap_err().to_string()
}

fn values(k: &KafkaConfig, key: &str, replication: i32) -> BTreeMap<String, String> {
    k.topic_settings_of(key, replication)
        .into_iter()
        .map(|(n, s)| (n, s.value))
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn replication_factor_is_auto_by_default_and_takes_minus_one_or_a_number() {
    assert_eq!(kafka("").replication_factor, ReplicationFactor::Auto);
    let rf = |v: &str| kafka(&format!("replication_factor = {v}")).replication_factor;
    assert_eq!(rf("\"auto\""), ReplicationFactor::Auto);
    assert_eq!(rf("-1"), ReplicationFactor::BrokerDefault);
    assert_eq!(rf("3"), ReplicationFactor::Fixed(3));
    assert_eq!(
        rf("\"2\""),
        ReplicationFactor::Fixed(2),
        "as from the environment"
    );
    for bad in ["0", "-2", "40000", "\"three\""] {
        let e = err(&format!("replication_factor = {bad}"));
        assert!(e.contains("replication_factor"), "{bad}: {e}");
        assert!(e.contains("\"auto\", -1"), "{bad}: {e}");
    }
}

#[test]
fn auto_replication_is_three_capped_by_the_brokers() {
    let auto = ReplicationFactor::Auto;
    assert_eq!(auto.resolve(1), 1);
    assert_eq!(auto.resolve(2), 2);
    assert_eq!(auto.resolve(3), 3);
    assert_eq!(auto.resolve(12), 3);
    assert_eq!(
        auto.resolve(0),
        1,
        "no broker listed: ask for 1, the broker refuses"
    );
    assert_eq!(ReplicationFactor::BrokerDefault.resolve(5), -1);
    assert_eq!(
        ReplicationFactor::Fixed(4).resolve(1),
        4,
        "fixed is never capped"
    );
}

#[test]
fn each_stream_has_documented_built_in_settings() {
    let k = kafka("");
    let day = 86_400_000_i64;
    assert_eq!(
        values(&k, "interactions", 1),
        map(&[
            ("cleanup.policy", "delete"),
            ("message.timestamp.type", "CreateTime"),
            ("retention.ms", &(7 * day).to_string()),
        ])
    );
    assert_eq!(
        values(&k, "wolkvox_chat_1", 1)["retention.ms"],
        (400 * day).to_string()
    );
    assert_eq!(
        values(&k, "dead_letter", 1)["retention.ms"],
        (30 * day).to_string()
    );
    let hb = values(&k, "heartbeat", 1);
    assert_eq!(hb["retention.ms"], day.to_string());
    assert_eq!(hb["segment.ms"], "3600000");
    let table = values(&k, "agent_state", 1);
    assert_eq!(table["cleanup.policy"], "compact");
    assert!(!table.contains_key("retention.ms"));
    for (key, _) in STREAM_KINDS {
        let s = values(&k, key, 1);
        assert!(s.contains_key("cleanup.policy"), "{key}");
        assert!(
            !s.contains_key("min.insync.replicas"),
            "{key}: replication 1"
        );
        assert_eq!(values(&k, key, 3)["min.insync.replicas"], "2", "{key}");
        assert!(!values(&k, key, -1).contains_key("min.insync.replicas"));
    }
}

#[test]
fn stream_settings_override_defaults_which_override_built_ins() {
    let k = kafka(
        "[kafka.topic_defaults]\n\"retention.ms\" = \"1209600000\"\n\"compression.type\" = \"zstd\"\n\
         [kafka.topic_settings.dead_letter]\n\"retention.ms\" = \"-1\"\n\
         [kafka.topic_settings.interactions]\n\"min.insync.replicas\" = \"3\"\n",
    );
    let i = k.topic_settings_of("interactions", 3);
    assert_eq!(i["retention.ms"].value, "1209600000");
    assert_eq!(i["retention.ms"].from, "kafka.topic_defaults.retention.ms");
    assert_eq!(i["compression.type"].value, "zstd");
    assert_eq!(i["cleanup.policy"].from, "built-in");
    assert_eq!(
        i["min.insync.replicas"].value, "3",
        "the configured one wins"
    );
    let d = k.topic_settings_of("dead_letter", 3);
    assert_eq!(d["retention.ms"].value, "-1");
    assert_eq!(
        d["retention.ms"].from,
        "kafka.topic_settings.dead_letter.retention.ms"
    );
    assert_eq!(d["min.insync.replicas"].value, "2");
}

#[test]
fn settings_that_contradict_the_guarantee_are_refused_naming_their_key() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[kafka.topic_settings.interactions]\n\"cleanup.policy\" = \"compact\"",
            "kafka.topic_settings.interactions.cleanup.policy",
            "newest record per key",
        ),
        (
            "[kafka.topic_defaults]\n\"cleanup.policy\" = \"compact,delete\"",
            "kafka.topic_defaults.cleanup.policy",
            "on the `interactions` topic",
        ),
        (
            "[kafka.topic_settings.agent_state]\n\"cleanup.policy\" = \"delete\"",
            "kafka.topic_settings.agent_state.cleanup.policy",
            "without `compact`",
        ),
        (
            "[kafka.topic_settings.heartbeat]\n\"cleanup.policy\" = \"archive\"",
            "kafka.topic_settings.heartbeat.cleanup.policy",
            "is not `delete`",
        ),
        (
            "[kafka.topic_defaults]\n\"unclean.leader.election.enable\" = \"true\"",
            "kafka.topic_defaults.unclean.leader.election.enable",
            "lost",
        ),
        (
            "[kafka.topic_settings.wolkvox_chat_1]\n\"message.timestamp.type\" = \"LogAppendTime\"",
            "kafka.topic_settings.wolkvox_chat_1.message.timestamp.type",
            "event's own time",
        ),
        (
            "replication_factor = 2\n[kafka.topic_defaults]\n\"min.insync.replicas\" = \"3\"",
            "kafka.topic_defaults.min.insync.replicas",
            "more than the replication factor 2",
        ),
        (
            "replication_factor = 3\n[kafka.topic_settings.interactions]\n\"min.insync.replicas\" = \"1\"",
            "kafka.topic_settings.interactions.min.insync.replicas",
            "leader alone",
        ),
        (
            "[kafka.topic_settings.heartbeat]\n\"retention.ms\" = \"60000\"",
            "kafka.topic_settings.heartbeat.retention.ms",
            "within the hour",
        ),
        (
            "[kafka.topic_settings.dead_letter]\n\"retention.ms\" = \"a week\"",
            "kafka.topic_settings.dead_letter.retention.ms",
            "not a whole number",
        ),
        (
            "[kafka.topic_defaults]\n\"message.timestamp.before.max.ms\" = \"86400000\"",
            "kafka.topic_defaults.message.timestamp.before.max.ms",
            "refuses records older than 86400000 ms",
        ),
        (
            "[kafka.topic_settings.interactons]\n\"retention.ms\" = \"1\"",
            "kafka.topic_settings.interactons",
            "no such stream",
        ),
        (
            "[kafka.topic_defaults]\n\"Retention.MS\" = \"1\"",
            "kafka.topic_defaults.Retention.MS",
            "not a Kafka topic setting name",
        ),
    ];
    for (extra, key, says) in cases {
        let e = err(extra);
        assert!(e.contains(&format!("`{key}`")), "{extra}: {e}");
        assert!(e.contains(says), "{extra}: {e}");
    }
}

#[test]
fn sound_overrides_are_accepted() {
    kafka(
        "replication_factor = 3\n[kafka.topic_defaults]\n\"min.insync.replicas\" = \"2\"\n\
         [kafka.topic_settings.heartbeat]\n\"cleanup.policy\" = \"compact\"\n\
         [kafka.topic_settings.agent_state]\n\"cleanup.policy\" = \"compact,delete\"\n\"retention.ms\" = \"2592000000\"\n\
         [kafka.topic_settings.dead_letter]\n\"retention.ms\" = \"-1\"\n\"message.timestamp.before.max.ms\" = \"9223372036854775807\"\n",
    );
}

#[test]
fn every_contradiction_is_found_on_a_described_topic() {
    let described = map(&[
        ("cleanup.policy", "compact"),
        ("min.insync.replicas", "4"),
        ("unclean.leader.election.enable", "true"),
        ("message.timestamp.type", "LogAppendTime"),
        ("retention.ms", "604800000"),
        ("message.timestamp.difference.max.ms", "3600000"),
    ]);
    let get = |n: &str| described.get(n).cloned();
    let found: Vec<&str> = contradictions(TopicKind::Events, &get, Some(3))
        .iter()
        .map(|c| c.setting)
        .collect();
    assert_eq!(
        found,
        [
            "cleanup.policy",
            "unclean.leader.election.enable",
            "message.timestamp.type",
            "min.insync.replicas",
            "message.timestamp.difference.max.ms",
        ]
    );
    // A broker's ordinary defaults contradict nothing.
    let defaults = map(&[
        ("cleanup.policy", "delete"),
        ("min.insync.replicas", "1"),
        ("unclean.leader.election.enable", "false"),
        ("message.timestamp.type", "CreateTime"),
        ("retention.ms", "604800000"),
        ("message.timestamp.difference.max.ms", "9223372036854775807"),
        ("message.timestamp.before.max.ms", "9223372036854775807"),
    ]);
    let get = |n: &str| defaults.get(n).cloned();
    assert_eq!(contradictions(TopicKind::Events, &get, Some(1)), vec![]);
    assert_eq!(contradictions(TopicKind::Heartbeat, &get, None), vec![]);
    // min.insync.replicas 1 is only a contradiction with three or more copies.
    let found = contradictions(TopicKind::Events, &get, Some(3));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].setting, "min.insync.replicas");
    // A table topic must be compacted.
    let found = contradictions(TopicKind::Table, &get, Some(1));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].setting, "cleanup.policy");
}
