//! `agent-state` end to end: the real binary polls the simulated Wolkvox (agents joined with the
//! interactions feed), Comm100 and Vonage through a scripted scenario (statuses change, agents log
//! out and back in, interactions start, end and move, a Vonage agent becomes unknown to the
//! vendor, agent polls fail), and the topic, read back from tansu through rivven-schema as a table
//! (the last record per key), must equal the simulator's truth after every step; then every agent
//! is refreshed with its unchanged content, and no record ever says what the vendor never said.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ccdc::event::agent_state::{AgentStateReason, AgentStateRecord, StatusCategory};
use ccdc::event::ABSENT;
use ccdc::simulator::agent_truth::AgentTruth;
use ccdc::simulator::comm100::{AWAY, OFFLINE, ONLINE};
use ccdc::simulator::{
    C100Agent, Fault, Route, Scenario, SimAgent, SimInteraction, SimMode, VonageLatest,
};
use common::{read_to_string, Record, Stack, TopicReader};

const TOKEN: &str = "agent-state-token-3c1f";
const TOPIC: &str = "ccdc.it.agent-state";

fn wolkvox(rows: &[(&str, &str, &[&str])]) -> Vec<SimAgent> {
    rows.iter()
        .map(|(id, status, conns)| {
            let its = conns
                .iter()
                .map(|c| SimInteraction {
                    conn_id: c.to_string(),
                    subject: "Order status".into(),
                    fromname: "Ana".into(),
                    date: "2026-11-21 07:10:30".into(),
                })
                .collect();
            SimAgent::new(id, status, its)
        })
        .collect()
}

fn comm100(rows: &[(&str, &str, i64)]) -> Vec<C100Agent> {
    rows.iter()
        .map(|(id, status, chats)| C100Agent::new(id, &format!("Agent {id}"), status, *chats))
        .collect()
}

fn vonage(rows: &[(&str, Option<(&str, bool)>)]) -> BTreeMap<String, Option<VonageLatest>> {
    rows.iter()
        .map(|(a, l)| {
            let latest = l.map(|(g, ended)| VonageLatest::new(g, "2026-11-21T15:15:00Z", ended));
            (a.to_string(), latest)
        })
        .collect()
}

fn scenario() -> Scenario {
    Scenario {
        wolkvox: vec![
            wolkvox(&[
                ("1001", "Ready", &[]),
                ("1002", "Busy", &["c1"]),
                ("1003", "Aux - Break", &[]),
            ]),
            // 1003 logs out, c1 ends, 1001 takes two chats.
            wolkvox(&[("1001", "Busy", &["c2", "c3"]), ("1002", "Ready", &[])]),
            // 1003 is back, 1004 logs in, c3 moves to 1002 (whose status says Ready: busy anyway).
            wolkvox(&[
                ("1001", "Busy", &["c2"]),
                ("1002", "Ready", &["c3"]),
                ("1003", "Ready", &[]),
                ("1004", "Aux - Lunch", &[]),
            ]),
        ],
        comm100: vec![
            comm100(&[("g1", ONLINE, 0), ("g2", AWAY, 0), ("g3", ONLINE, 1)]),
            // g2 logs out, g1 takes a chat (Online but busy), g3 goes away.
            comm100(&[("g1", ONLINE, 1), ("g3", AWAY, 0)]),
            comm100(&[("g1", ONLINE, 0), ("g3", AWAY, 0), ("g4", OFFLINE, 0)]),
        ],
        vonage: vec![
            vonage(&[
                ("v1", Some(("u1", false))),
                ("v2", None),
                ("v3", Some(("u3", false))),
            ]),
            vonage(&[
                ("v1", Some(("u1", true))),
                ("v2", Some(("u2", false))),
                ("v3", Some(("u3", true))),
            ]),
            // v3 is unknown to the vendor now (404): its last record stays as it was.
            vonage(&[("v1", Some(("u4", false))), ("v2", Some(("u2", false)))]),
        ],
    }
}

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
[sources.agent_state]
refresh_every_polls = 4

[[sources]]
vendor = "comm100"
name = "c100"
base_url = "{comm100}"
token = { file = "{token_file}" }
allow_insecure_http = true
away_statuses_url = "{comm100}/agentAwayStatuses"
page_size = 10
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
[sources.agent_state]
refresh_every_polls = 4

[[sources]]
vendor = "vonage"
name = "vcc"
base_url = "{vonage}"
account_key = "acc1"
token_url = "{vonage_token}"
client_id = "ccdc-sim"
client_secret = { file = "{token_file}" }
agent_ids = ["v1", "v2", "v3"]
requests_per_second = 50
allow_insecure_http = true
request_timeout = "5s"
[sources.interactions]
interval = "200ms"
max_backoff = "300ms"
[sources.agent_state]
refresh_every_polls = 4
"#;

/// The vendors' sources in this test.
fn source_of(vendor: &str) -> &'static str {
    match vendor {
        "wolkvox" => "wv",
        "comm100" => "c100",
        _ => "vcc",
    }
}

/// What a table row must say (everything a wallboard shows).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    status: Option<String>,
    status_name: Option<String>,
    category: StatusCategory,
    listed: bool,
    ids: Option<Vec<String>>,
    count: Option<i64>,
}

fn row(r: &AgentStateRecord) -> Row {
    Row {
        status: r.status.clone(),
        status_name: r.status_name.clone(),
        category: r.status_category,
        listed: r.listed,
        ids: r.active_interaction_ids.clone(),
        count: r.active_interaction_count,
    }
}

/// The category a status must get, written out for the statuses of this scenario (independently
/// of ccdc's rules): an available or unknown agent with interactions is busy.
fn category(vendor: &str, t: &AgentTruth) -> StatusCategory {
    use StatusCategory::*;
    let by_status = match (vendor, t.status.as_deref(), t.status_name.as_deref()) {
        ("wolkvox", Some("Ready"), _) | ("comm100", _, Some("Online")) => Available,
        ("wolkvox", Some("Busy"), _) => Busy,
        ("wolkvox", Some("Aux - Break" | "Aux - Lunch"), _) | ("comm100", _, Some("Away")) => Away,
        ("comm100", _, Some("Offline")) => Offline,
        _ => Unknown,
    };
    match by_status {
        Available | Unknown if t.count > 0 => Busy,
        c => c,
    }
}

fn truth_row(vendor: &str, t: &AgentTruth) -> Row {
    Row {
        status: t.status.clone(),
        // Wolkvox's status is its own name.
        status_name: t.status_name.clone().or_else(|| match vendor {
            "wolkvox" => t.status.clone(),
            _ => None,
        }),
        category: category(vendor, t),
        listed: true,
        ids: t.interactions.clone(),
        count: Some(t.count),
    }
}

fn offline(vendor: &str) -> Row {
    Row {
        status: Some(ABSENT.into()),
        status_name: None,
        category: StatusCategory::Offline,
        listed: false,
        // Wolkvox still joins the interactions feed for a logged-out agent (none here).
        ids: (vendor == "wolkvox").then(Vec::new),
        count: (vendor == "wolkvox").then_some(0),
    }
}

type Truth = BTreeMap<&'static str, BTreeMap<String, AgentTruth>>;

/// The table every step so far implies: the agents listed now as they are, the ones listed before
/// and gone (Wolkvox, Comm100) offline, a Vonage agent the vendor no longer knows as it last was.
fn expected(steps: &[Truth]) -> BTreeMap<String, Row> {
    let mut want = BTreeMap::new();
    for (i, truth) in steps.iter().enumerate() {
        for (vendor, agents) in truth {
            let key = |a: &String| format!("{}/{a}", source_of(vendor));
            if i > 0 && *vendor != "vonage" {
                for a in steps[i - 1][vendor].keys() {
                    if !agents.contains_key(a) {
                        want.insert(key(a), offline(vendor));
                    }
                }
            }
            for (a, t) in agents {
                want.insert(key(a), truth_row(vendor, t));
            }
        }
    }
    want
}

/// Every record so far, decoded, in topic order per partition.
fn read_all(s: &Stack, reader: &mut TopicReader) -> Vec<(Record, AgentStateRecord)> {
    reader.poll_for(Duration::from_millis(300));
    let n = reader.records.len();
    s.read(reader, n)
}

/// The last record per key.
fn table(records: &[(Record, AgentStateRecord)]) -> BTreeMap<String, AgentStateRecord> {
    let mut t = BTreeMap::new();
    for (r, e) in records {
        assert_eq!(
            r.key,
            format!("{}/{}", e.source, e.agent_id),
            "key = source/agent"
        );
        t.insert(r.key.clone(), e.clone());
    }
    t
}

/// Read until the table equals `want`; the table and the records read.
fn converge(
    s: &Stack,
    reader: &mut TopicReader,
    want: &BTreeMap<String, Row>,
    what: &str,
) -> (
    BTreeMap<String, AgentStateRecord>,
    Vec<(Record, AgentStateRecord)>,
) {
    let start = Instant::now();
    loop {
        let records = read_all(s, reader);
        let t = table(&records);
        let got: BTreeMap<String, Row> = t.iter().map(|(k, r)| (k.clone(), row(r))).collect();
        if &got == want {
            return (t, records);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what}: the table never matched the truth\n got: {got:#?}\nwant: {want:#?}\nccdc log:\n{}",
            read_to_string(&s.log)
        );
    }
}

/// No record says what the vendor never said: each status and interaction set is one the agent
/// had at some step (the Wolkvox join may pair a status with the interactions of the step before).
fn assert_nothing_invented(records: &[(Record, AgentStateRecord)], steps: &[Truth]) {
    type Said = (BTreeSet<Option<String>>, BTreeSet<Option<Vec<String>>>);
    let mut said: BTreeMap<String, Said> = BTreeMap::new();
    for truth in steps {
        for (vendor, agents) in truth {
            for (a, t) in agents {
                let e = said
                    .entry(format!("{}/{a}", source_of(vendor)))
                    .or_default();
                e.0.insert(t.status.clone());
                e.1.insert(t.interactions.clone());
                e.0.insert(Some(ABSENT.into()));
            }
        }
    }
    for (r, e) in records {
        let (statuses, ids) = &said[&r.key];
        assert!(statuses.contains(&e.status), "{e:?}");
        let ids_ok = ids.contains(&e.active_interaction_ids) || e.active_interaction_ids.is_none();
        assert!(ids_ok, "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_state_topic_read_as_a_table_is_the_simulators_truth() {
    let s = Stack::start(
        TOKEN,
        SimMode::Scenario(scenario()),
        SOURCES,
        &[("agent_state", TOPIC)],
    )
    .await;
    let _ccdc = s.ccdc(&[]);
    let mut reader = s.reader(TOPIC).await;
    let mut steps: Vec<Truth> = vec![s.sim.state.agent_truth()];
    let (_, records) = converge(&s, &mut reader, &expected(&steps), "step 0");
    let first: Vec<&AgentStateRecord> = records.iter().map(|(_, e)| e).collect();
    assert!(
        first.iter().any(|e| e.reason == AgentStateReason::Initial),
        "{first:?}"
    );
    for step in 1..3 {
        // Failed agent polls on the way: nothing from them, the next good poll goes on.
        s.sim
            .state
            .inject_at(Route::WolkvoxAgents, Fault::Http500, 2);
        s.sim
            .state
            .inject_at(Route::Comm100Agents, Fault::Malformed, 1);
        assert_eq!(s.sim.state.advance(), step);
        steps.push(s.sim.state.agent_truth());
        converge(&s, &mut reader, &expected(&steps), &format!("step {step}"));
    }
    let (t, records) = converge(&s, &mut reader, &expected(&steps), "final");
    assert_eq!(t["wv/1002"].status_category, StatusCategory::Busy);
    assert_eq!(t["wv/1003"].reason, AgentStateReason::Changed);
    assert!(t["wv/1001"].interactions_observed_at.is_some());
    assert!(t["c100/g1"].comm100.is_some() && t["wv/1001"].wolkvox.is_some());
    assert!(t["vcc/v1"].vonage.is_some());

    // Nothing changes any more: every observed agent is refreshed every 4 polls with the same
    // content, a newer observed_at and an id of its own.
    let seen = records.len();
    let start = Instant::now();
    let refreshed = loop {
        let records = read_all(&s, &mut reader);
        let later: BTreeMap<&str, Vec<&AgentStateRecord>> =
            records[seen..]
                .iter()
                .fold(BTreeMap::new(), |mut m, (r, e)| {
                    m.entry(r.key.as_str()).or_default().push(e);
                    m
                });
        let observed = t.keys().filter(|k| *k != "vcc/v3");
        if observed
            .clone()
            .all(|k| later.get(k.as_str()).is_some_and(|v| v.len() >= 2))
        {
            break records;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no refreshes: {later:?}\n{}",
            read_to_string(&s.log)
        );
    };
    let ids: BTreeSet<&str> = refreshed.iter().map(|(_, e)| e.event_id.as_str()).collect();
    let distinct_records = refreshed
        .iter()
        .map(|(_, e)| (e.event_id.as_str(), e.observed_at))
        .collect::<BTreeSet<_>>()
        .len();
    assert_eq!(
        ids.len(),
        distinct_records,
        "one id per record (duplicates repeat both)"
    );
    for (r, e) in &refreshed[seen..] {
        assert_eq!(e.reason, AgentStateReason::Refresh, "{e:?}");
        assert_eq!(row(e), row(&t[&r.key]), "a refresh repeats the content");
        assert!(e.observed_at > t[&r.key].observed_at);
        assert_ne!(r.key, "vcc/v3", "an agent not observed is not refreshed");
    }
    assert_nothing_invented(&refreshed, &steps);
}

fn sample() -> AgentStateRecord {
    use ccdc::event::agent_state::VonageAgentDetails;
    use ccdc::event::{Comm100AgentDetails, Derivation, WolkvoxAgentDetails};
    AgentStateRecord {
        event_id: "4a54bc17-1a30-52e9-9c86-53edc57d9207".into(),
        source: "wv".into(),
        vendor: "wolkvox".into(),
        agent_id: "1001".into(),
        agent_name: Some("Ana Gómez".into()),
        status: Some("Aux - Break".into()),
        status_name: Some("Aux - Break".into()),
        status_category: StatusCategory::Away,
        listed: true,
        status_since: Some(1_795_263_030_000),
        status_since_after: Some(1_795_263_029_001),
        status_since_before: None,
        active_interaction_ids: Some(vec!["00000001".into(), "00000007".into()]),
        active_interaction_count: Some(2),
        interactions_observed_at: Some(1_795_263_035_527),
        observed_at: 1_795_263_036_029,
        reason: AgentStateReason::Changed,
        derivation: Derivation::SnapshotDiff,
        wolkvox: Some(WolkvoxAgentDetails {
            calls: Some(12),
            ocupation: Some("87%".into()),
            raw: "{}".into(),
            ..Default::default()
        }),
        comm100: Some(Comm100AgentDetails {
            ongoing_chats: Some(1),
            ..Default::default()
        }),
        vonage: Some(VonageAgentDetails {
            latest_interaction_id: Some("u1".into()),
            latest_interaction_has_ended: Some(false),
            ..Default::default()
        }),
    }
}

/// The record ccdc writes is the schema's: a generic Avro reader decodes it back, field for field
/// (with the context fields every schema ends with).
#[test]
#[allow(deprecated)] // from_avro_datum: the plain generic reader, independent of ccdc's writer.
fn a_record_round_trips_through_its_avro_schema() {
    use ccdc::avro::{parse_schema, RecordContext, StreamEncoder};
    use ccdc::event::{Event, Stream};
    let enc = StreamEncoder::new(Stream::AgentState, 7).unwrap();
    let ctx = RecordContext::new(Some("America/Bogota".into()), None);
    let payload = enc
        .encode_event(&Event::AgentState(Box::new(sample())), &ctx)
        .unwrap();
    assert_eq!(&payload[..5], &[0, 0, 0, 0, 7]);
    let schema = parse_schema(Stream::AgentState).unwrap();
    let value = apache_avro::from_avro_datum(&schema, &mut &payload[5..], None).unwrap();
    let back: AgentStateRecord = apache_avro::from_value(&value).unwrap();
    assert_eq!(back, sample());
    let mut quiet = sample();
    (
        quiet.active_interaction_ids,
        quiet.wolkvox,
        quiet.comm100,
        quiet.vonage,
    ) = (None, None, None, None);
    quiet.status = None;
    let payload = enc
        .encode_event(&Event::AgentState(Box::new(quiet.clone())), &ctx)
        .unwrap();
    let value = apache_avro::from_avro_datum(&schema, &mut &payload[5..], None).unwrap();
    assert_eq!(
        apache_avro::from_value::<AgentStateRecord>(&value).unwrap(),
        quiet
    );
}
