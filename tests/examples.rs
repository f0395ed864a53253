//! The consumer recipes of `examples/` (README, "Consuming the topics").
//!
//! The Python consumer runs for real: ccdc polls the simulated Wolkvox, Comm100 and Vonage into
//! tansu through rivven-schema and stops; `examples/python/consume.py` then reads both topics from
//! offset 0 with confluent-kafka's stock deserializer and must print every interaction event with
//! its CloudEvents headers and event-time timestamp, and the agent-state table (last record per
//! key), exactly as the Rust reader decoded them.
//!
//! Flink, ksqlDB and Kafka Connect are JVM services this machine does not run: their recipes are
//! checked against ccdc's writer schemas and default topics (`tests/recipes/`), and every check is
//! shown to fail on a broken copy of its recipe (a misspelt column, a wrong type, topic or
//! converter).

mod common;
mod recipes;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ccdc::event::agent_state::AgentStateRecord;
use ccdc::event::InteractionEvent;
use ccdc::simulator::SimMode;
use common::{read_to_string, run_python, Record, Stack, TopicReader};

const TOKEN: &str = "examples-token-5e2a";
const INTERACTIONS: &str = "ccdc.interactions";
const AGENT_STATE: &str = "ccdc.agent-state";

const SOURCES: &str = r#"
[[sources]]
vendor = "wolkvox"
name = "wv"
base_url = "{wolkvox}"
token = { file = "{token_file}" }
time_zone = "America/Bogota"
allow_insecure_http = true
request_timeout = "5s"
[sources.interactions]
interval = "200ms"
max_backoff = "300ms"
[sources.agents]
interval = "200ms"
max_backoff = "300ms"

[[sources]]
vendor = "comm100"
name = "c100"
base_url = "{comm100}"
token = { file = "{token_file}" }
allow_insecure_http = true
away_statuses_url = "{comm100}/agentAwayStatuses"
request_timeout = "5s"
[sources.agents]
interval = "200ms"
max_backoff = "300ms"
[sources.queue]
enabled = false
[sources.today]
enabled = false
[sources.right_now]
enabled = false

[[sources]]
vendor = "vonage"
name = "vcc"
base_url = "{vonage}"
account_key = "acc1"
token_url = "{vonage_token}"
client_id = "ccdc-sim"
client_secret = { file = "{token_file}" }
agent_ids = ["1001", "1002", "1003", "1004"]
requests_per_second = 50
allow_insecure_http = true
request_timeout = "5s"
[sources.interactions]
interval = "200ms"
max_backoff = "300ms"
"#;

/// Every record of a topic ccdc no longer writes to: read until nothing more arrives, decoded.
fn read_all<T: serde::de::DeserializeOwned>(s: &Stack, r: &mut TopicReader) -> Vec<(Record, T)> {
    loop {
        let n = r.records.len();
        r.poll_for(Duration::from_secs(1));
        if r.records.len() == n {
            return s.read(r, n);
        }
    }
}

/// UTC epoch milliseconds as the example prints them (RFC 3339, milliseconds, `Z`).
fn rfc3339(ms: i64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ms).expect("a time");
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The `name=value` words of a printed line.
fn words(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

/// An enum as its Avro symbol (`STARTED`, `BUSY`).
fn symbol<T: serde::Serialize>(x: &T) -> String {
    serde_json::to_value(x)
        .expect("JSON")
        .as_str()
        .expect("a symbol")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_prints_every_event_and_the_agent_state_table() {
    let topics = [("interactions", INTERACTIONS), ("agent_state", AGENT_STATE)];
    let mode = SimMode::Random {
        seed: 11,
        agents: 4,
    };
    let s = Stack::start(TOKEN, mode, SOURCES, &topics).await;
    let ccdc = s.ccdc(&[]);
    let mut events = s.reader(INTERACTIONS).await;
    let mut states = s.reader(AGENT_STATE).await;
    // Enough of both (every agent of the three vendors has its first record), then ccdc stops so
    // that the topics hold still while both readers read them.
    s.read::<InteractionEvent>(&mut events, 10);
    s.read::<AgentStateRecord>(&mut states, 12);
    let status = ccdc.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "ccdc: {status}\n{}",
        read_to_string(&s.log)
    );
    let events: Vec<(Record, InteractionEvent)> = read_all(&s, &mut events);
    let states: Vec<(Record, AgentStateRecord)> = read_all(&s, &mut states);

    let out = run_python(
        "examples/python/consume.py",
        &[
            "--bootstrap",
            &s.infra.bootstrap,
            "--registry",
            &s.infra.registry_url,
            "--topic",
            INTERACTIONS,
            "--agent-state-topic",
            AGENT_STATE,
            "--from-beginning",
            "--until-end",
        ],
    );

    assert_events_printed(&out, &events);
    assert_table_printed(&out, &states);
}

/// Every event printed once, with its CloudEvents headers and the event time as record timestamp.
fn assert_events_printed(out: &str, events: &[(Record, InteractionEvent)]) {
    let printed: BTreeMap<(i32, i64), BTreeMap<&str, &str>> = out
        .lines()
        .filter(|l| l.starts_with("event "))
        .map(|l| {
            let w = words(l);
            let at = (
                w["p"].parse().expect("p"),
                w["offset"].parse().expect("offset"),
            );
            (at, w)
        })
        .collect();
    assert_eq!(printed.len(), events.len(), "{out}");
    for (r, e) in events {
        let got = &printed[&(r.partition, r.offset)];
        let kind = symbol(&e.event_type);
        let want = BTreeMap::from([
            ("p", r.partition.to_string()),
            ("offset", r.offset.to_string()),
            ("time", rfc3339(e.observed_at)),
            (
                "ce_type",
                format!("io.ccdc.interaction.{}.v1", kind.to_lowercase()),
            ),
            ("ce_subject", e.interaction_id.clone()),
            ("key", format!("{}/{}", e.source, e.interaction_id)),
            ("event_type", kind),
            ("agent", e.agent_id.clone()),
            ("interaction", e.interaction_id.clone()),
        ]);
        let got: BTreeMap<&str, String> = got.iter().map(|(k, v)| (*k, v.to_string())).collect();
        assert_eq!(got, want, "{out}");
    }
}

/// The table printed: the last agent-state record per key, as the Rust reader read them.
fn assert_table_printed(out: &str, states: &[(Record, AgentStateRecord)]) {
    let mut table = BTreeMap::new();
    for (r, e) in states {
        table.insert(r.key.clone(), e.clone());
    }
    for source in ["wv/", "c100/", "vcc/"] {
        assert!(
            table.keys().any(|k| k.starts_with(source)),
            "no {source} agent: {table:?}"
        );
    }
    assert!(
        out.contains(&format!("agent-state table: {} agents", table.len())),
        "{out}"
    );
    let rows: BTreeMap<String, (BTreeMap<&str, &str>, Option<String>)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("agent "))
        .map(|l| {
            let (head, status) = l.split_once(" status=").expect("status last");
            let w = words(head);
            let status = serde_json::from_str(status).expect("status as JSON");
            (w["key"].to_string(), (w, status))
        })
        .collect();
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        table.keys().collect::<Vec<_>>(),
        "{out}"
    );
    for (key, e) in &table {
        let (w, status) = &rows[key];
        let count = e
            .active_interaction_count
            .map_or("None".into(), |c| c.to_string());
        assert_eq!(w["category"], symbol(&e.status_category), "{key}");
        assert_eq!(w["active"], count, "{key}");
        assert_eq!(w["listed"], e.listed.to_string(), "{key}");
        assert_eq!(w["observed_at"], rfc3339(e.observed_at), "{key}");
        assert_eq!(status, &e.status, "{key}");
    }
}

fn recipe(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect(path)
}

/// `text` with `from` (which must occur) replaced once by `to`.
fn broken(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the recipe no longer contains {from:?}"
    );
    text.replacen(from, to, 1)
}

/// Each broken copy must produce a problem containing its expected text.
fn assert_caught(check: fn(&str) -> Vec<String>, text: &str, cases: &[(&str, &str, &str)]) {
    for (from, to, expect) in cases {
        let problems = check(&broken(text, from, to));
        assert!(
            problems.iter().any(|p| p.contains(expect)),
            "{from:?} -> {to:?}: expected a problem with {expect:?}, got {problems:#?}"
        );
    }
}

#[test]
fn the_flink_tables_declare_exactly_the_writer_schemas_of_default_topics() {
    let sql = recipe("examples/flink/interactions.sql");
    assert_eq!(recipes::flink::check(&sql), Vec::<String>::new());
    assert_caught(
        recipes::flink::check,
        &sql,
        &[
            (
                "`ended_before` TIMESTAMP(3),",
                "`ended_befor` TIMESTAMP(3),",
                "`ended_befor` is no field",
            ),
            (
                "`initial` BOOLEAN NOT NULL",
                "`initial` BOOLEAN",
                "column `initial` is declared",
            ),
            (
                "`raw` STRING NOT NULL>",
                "`raw` STRING>",
                "column `wolkvox` is declared",
            ),
            (
                "`account_id` STRING,\n  -- Event time",
                "-- Event time",
                "field `account_id`",
            ),
            (
                "'ccdc.interactions'",
                "'ccdc.interaction'",
                "none of ccdc's default topics",
            ),
            (
                "'value.avro-confluent.schema' = '{",
                "'value.avro-confluent.schemas' = '{",
                "no avro-confluent.schema",
            ),
            (
                "\"symbols\": [\"STARTED\", \"ENDED\"",
                "\"symbols\": [\"ENDED\"",
                "not ccdc's writer schema",
            ),
            (
                "WATERMARK FOR `event_time`",
                "WATERMARK FOR `source`",
                "watermark column `source`",
            ),
            (
                "WHERE `event_type` = 'STARTED'",
                "WHERE `event_typ` = 'STARTED'",
                "`event_typ`",
            ),
            ("WHERE `listed`", "WHERE listd", "`listd`"),
            (
                "'key.format' = 'raw',\n  'value.format' = 'avro-confluent'",
                "'value.format' = 'avro-confluent'",
                "key.format must be raw",
            ),
        ],
    );
}

#[test]
fn the_ksqldb_statements_name_only_fields_of_the_schemas_of_default_topics() {
    let sql = recipe("examples/ksqldb/agent-state.sql");
    assert_eq!(recipes::ksql::check(&sql), Vec::<String>::new());
    assert_caught(
        recipes::ksql::check,
        &sql,
        &[
            (
                "WHERE status_category = 'BUSY'",
                "WHERE status_categry = 'BUSY'",
                "`status_categry`",
            ),
            (
                "SELECT agent_key, status_name",
                "SELECT agent_key, status_nam",
                "`status_nam`",
            ),
            (
                "WHERE event_type = 'STARTED'",
                "WHERE event_kind = 'STARTED'",
                "`event_kind`",
            ),
            (
                "SELECT `SOURCE`, COUNT(*) AS busy_agents",
                "SELECT `source`, COUNT(*) AS busy_agents",
                "`source`",
            ),
            (
                "'ccdc.agent-state'",
                "'ccdc.agent_state'",
                "none of ccdc's default topics",
            ),
            (
                "(agent_key VARCHAR PRIMARY KEY)",
                "(agent_key INT PRIMARY KEY)",
                "must be VARCHAR",
            ),
            (
                "VALUE_FORMAT = 'AVRO');\n\n-- The current",
                "VALUE_FORMAT = 'JSON');\n\n-- The current",
                "VALUE_FORMAT must be",
            ),
        ],
    );
}

#[test]
fn the_connect_sink_converts_string_keys_and_registry_avro_values_of_default_topics() {
    let json = recipe("examples/connect/s3-sink.json");
    assert_eq!(recipes::connect::check(&json), Vec::<String>::new());
    assert_caught(
        recipes::connect::check,
        &json,
        &[
            (
                "io.confluent.connect.avro.AvroConverter",
                "org.apache.kafka.connect.json.JsonConverter",
                "value.converter must be",
            ),
            (
                "org.apache.kafka.connect.storage.StringConverter",
                "org.apache.kafka.connect.converters.ByteArrayConverter",
                "key.converter must be",
            ),
            (
                "ccdc.agent-status,",
                "ccdc.agent-statuses,",
                "none of ccdc's default topics",
            ),
            (
                "\"timestamp.extractor\": \"Record\"",
                "\"timestamp.extractor\": \"Wallclock\"",
                "not the event time",
            ),
            (
                "\"timestamp.extractor\": \"Record\"",
                "\"timestamp.extractor\": \"RecordField\", \"timestamp.field\": \"observed\"",
                "`observed` is no field",
            ),
            (
                "\"tasks.max\": \"2\"",
                "\"tasks.max\": 2",
                "every setting as a string",
            ),
        ],
    );
}
