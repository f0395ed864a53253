//! The whole service in-process, with no broker and no registry to install: the built-in simulator
//! (Wolkvox, Comm100, Vonage on loopback) → the real pollers, feeds, outbox and publisher
//! ([`ccdc::app::run_with`]) → [`MemoryRegistry`] → [`MemorySink`]. Every delivered record is
//! checked for its Confluent framing and schema id, decoded with the stream's own schema text, and
//! compared with the events the scripted scenario implies.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::reader::datum::GenericDatumReader;
use ccdc::app::{run_with, Parts};
use ccdc::avro::{schema_text, STREAMS};
use ccdc::config::Config;
use ccdc::event::metrics::RightNowMetrics;
use ccdc::event::{
    AgentStatusEvent, InteractionEvent, InteractionEventType, InteractionEventType::*, Stream,
    ABSENT,
};
use ccdc::registry::{MemoryRegistry, SchemaRegistry};
use ccdc::simulator::comm100::{AWAY, ONLINE};
use ccdc::simulator::{
    vonage::CLIENT_ID, C100Agent, Route, Scenario, SimAgent, SimInteraction, SimMode, SimServer,
    SimState, VonageLatest,
};
use ccdc::sink::{MemorySink, OutRecord};
use ccdc::store::{MemoryStore, SledStore, Store};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "in-process-token-3c7e";
const WOLKVOX: &str = "wv-inproc";
const COMM100: &str = "c100-inproc";
const VONAGE: &str = "vg-inproc";
const INTERACTIONS: &str = "inproc.interactions";
const AGENTS: &str = "inproc.agent-status";
const RIGHT_NOW: &str = "inproc.c100.right-now";
/// Every wait is bounded by this; conditions are checked every [`TICK`].
const DEADLINE: Duration = Duration::from_secs(20);
const TICK: Duration = Duration::from_millis(50);
const STEPS: usize = 3;

// ---------------------------------------------------------------------------------------------
// The scenario: three steps, shared by the three vendors.

fn wolkvox_step(rows: &[(&str, &str, &[&str])]) -> Vec<SimAgent> {
    rows.iter()
        .map(|(agent, status, conns)| {
            let its = conns
                .iter()
                .map(|c| SimInteraction {
                    conn_id: c.to_string(),
                    subject: format!("subject {c}"),
                    fromname: format!("from {c}"),
                    date: "2026-11-21 10:15:00".into(),
                })
                .collect();
            SimAgent::new(agent, status, its)
        })
        .collect()
}

fn vonage_step(rows: &[(&str, Option<(&str, bool)>)]) -> BTreeMap<String, Option<VonageLatest>> {
    rows.iter()
        .map(|(agent, latest)| {
            (
                agent.to_string(),
                latest.map(|(guid, ended)| VonageLatest::new(guid, "2026-11-21T15:15:00Z", ended)),
            )
        })
        .collect()
}

fn scenario() -> Scenario {
    Scenario {
        wolkvox: vec![
            // S0: c1 active at 1001.
            wolkvox_step(&[("1001", "Busy", &["c1"]), ("1002", "Ready", &[])]),
            // S1: c1 ends, c2 starts at 1002; both agents change status.
            wolkvox_step(&[("1001", "Ready", &[]), ("1002", "Busy", &["c2"])]),
            // S2: c2 moves 1002 → 1001 (a transfer); both agents change status back.
            wolkvox_step(&[("1001", "Busy", &["c2"]), ("1002", "Ready", &[])]),
        ],
        comm100: vec![
            vec![
                C100Agent::new("a1", "Agent a1", ONLINE, 1),
                C100Agent::new("a2", "Agent a2", AWAY, 0),
            ],
            vec![
                C100Agent::new("a1", "Agent a1", AWAY, 0),
                C100Agent::new("a2", "Agent a2", AWAY, 0),
            ],
            // a2 is no longer listed (logged out).
            vec![C100Agent::new("a1", "Agent a1", AWAY, 0)],
        ],
        vonage: vec![
            vonage_step(&[("v1", Some(("g1", false))), ("v2", None)]),
            vonage_step(&[("v1", Some(("g1", true))), ("v2", Some(("g2", false)))]),
            vonage_step(&[("v1", Some(("g3", false))), ("v2", Some(("g2", true)))]),
        ],
    }
}

/// What one interaction event must look like: (event type, interaction id, agent id, initial,
/// transfer, transfer agent).
type IBrief = (
    InteractionEventType,
    String,
    String,
    bool,
    bool,
    Option<String>,
);

fn ib(
    ty: InteractionEventType,
    interaction: &str,
    agent: &str,
    initial: bool,
    transfer_agent: Option<&str>,
) -> IBrief {
    (
        ty,
        interaction.into(),
        agent.into(),
        initial,
        transfer_agent.is_some(),
        transfer_agent.map(str::to_string),
    )
}

/// The interaction events step `step` implies, keyed by record key.
fn expected_interactions(step: usize) -> Vec<(String, IBrief)> {
    let wv = |i: &str| format!("{WOLKVOX}/{i}");
    let vg = |i: &str| format!("{VONAGE}/{i}");
    match step {
        0 => vec![
            (wv("c1"), ib(Started, "c1", "1001", true, None)),
            (vg("g1"), ib(Started, "g1", "v1", true, None)),
        ],
        1 => vec![
            (wv("c1"), ib(Ended, "c1", "1001", false, None)),
            (wv("c2"), ib(Started, "c2", "1002", false, None)),
            (vg("g1"), ib(Ended, "g1", "v1", false, None)),
            (vg("g2"), ib(Started, "g2", "v2", false, None)),
        ],
        2 => vec![
            (wv("c2"), ib(Ended, "c2", "1002", false, Some("1001"))),
            (wv("c2"), ib(Started, "c2", "1001", false, Some("1002"))),
            (vg("g2"), ib(Ended, "g2", "v2", false, None)),
            (vg("g3"), ib(Started, "g3", "v1", false, None)),
        ],
        _ => vec![],
    }
}

/// What one agent-status event must look like: (previous status, status, status name, initial).
type ABrief = (Option<String>, String, Option<String>, bool);

fn ab(previous: Option<&str>, status: &str, name: Option<&str>, initial: bool) -> ABrief {
    (
        previous.map(str::to_string),
        status.into(),
        name.map(str::to_string),
        initial,
    )
}

/// The agent-status events step `step` implies, keyed by record key.
fn expected_agents(step: usize) -> Vec<(String, ABrief)> {
    let wv = |a: &str| format!("{WOLKVOX}/{a}");
    let c = |a: &str| format!("{COMM100}/{a}");
    match step {
        0 => vec![
            (wv("1001"), ab(None, "Busy", Some("Busy"), true)),
            (wv("1002"), ab(None, "Ready", Some("Ready"), true)),
            (c("a1"), ab(None, ONLINE, Some("Online"), true)),
            (c("a2"), ab(None, AWAY, Some("Away"), true)),
        ],
        1 => vec![
            (wv("1001"), ab(Some("Busy"), "Ready", Some("Ready"), false)),
            (wv("1002"), ab(Some("Ready"), "Busy", Some("Busy"), false)),
            (c("a1"), ab(Some(ONLINE), AWAY, Some("Away"), false)),
        ],
        2 => vec![
            (wv("1001"), ab(Some("Ready"), "Busy", Some("Busy"), false)),
            (wv("1002"), ab(Some("Busy"), "Ready", Some("Ready"), false)),
            (c("a2"), ab(Some(AWAY), ABSENT, None, false)),
        ],
        _ => vec![],
    }
}

/// Comm100 `RightNow` as the simulator serves it at each step: (logged-in agents, agents in chat,
/// ongoing chats).
fn right_now_at(step: usize) -> (i64, i64, i64) {
    match step {
        0 => (2, 1, 1),
        1 => (2, 0, 0),
        2 => (1, 0, 0),
        _ => unreachable!(),
    }
}

fn right_now_step(m: &RightNowMetrics) -> usize {
    let got = (
        m.logged_in_agents.unwrap_or(-1),
        m.agents_in_chat.unwrap_or(-1),
        m.ongoing_chats.unwrap_or(-1),
    );
    (0..STEPS)
        .find(|s| right_now_at(*s) == got)
        .unwrap_or_else(|| panic!("RightNow values {got:?} match no step of the scenario"))
}

fn by_key<T>(list: impl IntoIterator<Item = (String, T)>) -> BTreeMap<String, Vec<T>> {
    let mut out: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for (k, v) in list {
        out.entry(k).or_default().push(v);
    }
    out
}

fn interactions_upto(steps: usize) -> BTreeMap<String, Vec<IBrief>> {
    by_key((0..steps).flat_map(expected_interactions))
}

fn agents_upto(steps: usize) -> BTreeMap<String, Vec<ABrief>> {
    by_key((0..steps).flat_map(expected_agents))
}

fn count<T>(m: &BTreeMap<String, Vec<T>>) -> usize {
    m.values().map(Vec::len).sum()
}

// ---------------------------------------------------------------------------------------------
// The service, in-process.

fn config_text(sim: &SimServer, dir: &Path, token_file: &Path, right_now: bool) -> String {
    let (vonage, vonage_token) = sim.vonage_urls();
    let poll = "interval = \"100ms\"\nmax_backoff = \"100ms\"";
    format!(
        r#"
state_dir = {state:?}
shutdown_timeout = "10s"
output = "stdout"

[observability]
enabled = false
heartbeat_every_polls = 0

[topics]
interactions = "{INTERACTIONS}"
agent_status = "{AGENTS}"
comm100_right_now = "{RIGHT_NOW}"

[[sources]]
vendor = "wolkvox"
name = "{WOLKVOX}"
base_url = {wolkvox:?}
token = {{ file = {token:?} }}
time_zone = "America/Bogota"
allow_insecure_http = true
request_timeout = "5s"
[sources.interactions]
{poll}
[sources.agents]
{poll}
[sources.agent_state]
enabled = false  # agent-state is checked by tests/e2e_agent_state.rs

[[sources]]
vendor = "comm100"
name = "{COMM100}"
base_url = {comm100:?}
token = {{ file = {token:?} }}
away_statuses_url = "{comm100}/agentAwayStatuses"
allow_insecure_http = true
request_timeout = "5s"
[sources.agents]
{poll}
[sources.queue]
enabled = false
[sources.today]
enabled = false
[sources.right_now]
enabled = {right_now}
{poll}
[sources.agent_state]
enabled = false

[[sources]]
vendor = "vonage"
name = "{VONAGE}"
base_url = {vonage:?}
account_key = "acc-inproc"
token_url = {vonage_token:?}
client_id = "{CLIENT_ID}"
client_secret = {{ file = {token:?} }}
agent_ids = ["v1", "v2"]
requests_per_second = 50
allow_insecure_http = true
request_timeout = "5s"
[sources.interactions]
{poll}
[sources.agent_state]
enabled = false
"#,
        state = dir.join("state").display().to_string(),
        wolkvox = sim.base_url(),
        comm100 = sim.comm100_base_url(),
        token = token_file.display().to_string(),
    )
}

struct Service {
    sim: SimServer,
    config: Config,
    store: Arc<dyn Store>,
    sink: MemorySink,
    registry: Arc<MemoryRegistry>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Service {
    /// The simulator on the scenario's first step and the service on it. `store` is built in the
    /// test's temporary directory; `registry_down`: the registry refuses service from the start.
    async fn start(
        right_now: bool,
        registry_down: bool,
        store: impl FnOnce(&Path) -> Arc<dyn Store>,
    ) -> Service {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("tempdir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, TOKEN).expect("token file");
        let sim = SimServer::start(
            "127.0.0.1:0".parse().unwrap(),
            SimState::new(TOKEN, SimMode::Scenario(scenario())),
        )
        .await
        .expect("simulator starts");
        let config = Config::from_toml_str(&config_text(&sim, dir.path(), &token_file, right_now))
            .expect("the test configuration is valid");
        assert_eq!(
            (
                config.topics.interactions.as_str(),
                config.topics.agent_status.as_str(),
                config.topics.comm100_right_now.as_str()
            ),
            (INTERACTIONS, AGENTS, RIGHT_NOW)
        );
        let store = store(dir.path());
        let sink = MemorySink::default();
        let registry = Arc::new(MemoryRegistry::default());
        registry.set_unavailable(registry_down);
        let parts = Parts {
            store: store.clone(),
            sink: Arc::new(sink.clone()),
            registry: Some(registry.clone()),
            create_topics: None,
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_with(config.clone(), parts, shutdown.clone()));
        Service {
            sim,
            config,
            store,
            sink,
            registry,
            shutdown,
            task,
            _dir: dir,
        }
    }

    fn delivered_on(&self, topic: &str) -> usize {
        self.sink
            .delivered()
            .iter()
            .filter(|r| r.topic == topic)
            .count()
    }

    /// The schema id the registry holds for each stream's subject `<topic>-value`.
    async fn schema_ids(&self) -> HashMap<Stream, u32> {
        let mut ids = HashMap::new();
        for s in STREAMS {
            let subject = format!("{}-value", self.config.topics.for_stream(*s));
            let id = self
                .registry
                .lookup(&subject, schema_text(*s))
                .await
                .expect("lookup")
                .unwrap_or_else(|| panic!("subject {subject} is not registered"));
            ids.insert(*s, id);
        }
        let distinct: HashSet<u32> = ids.values().copied().collect();
        assert_eq!(distinct.len(), STREAMS.len(), "one id per subject: {ids:?}");
        ids
    }

    /// Wait until the simulator served `extra` more requests on each of `routes`.
    async fn wait_requests(&self, routes: &[Route], extra: u64) {
        let targets: Vec<(Route, u64)> = routes
            .iter()
            .map(|r| (*r, self.sim.state.requests_on(*r) + extra))
            .collect();
        wait_until(&format!("{extra} more requests on {routes:?}"), || {
            targets
                .iter()
                .all(|(r, t)| self.sim.state.requests_on(*r) >= *t)
        })
        .await;
    }

    /// Cancel, and `run_with` must return `Ok` (having drained the outbox) in time.
    async fn stop(self) -> (Arc<dyn Store>, MemorySink, HashMap<Stream, u32>, Config) {
        let ids = self.schema_ids().await;
        self.shutdown.cancel();
        let res = tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("run_with returns within the deadline after shutdown")
            .expect("run_with did not panic");
        if let Err(e) = res {
            panic!("run_with failed: {e:#}");
        }
        self.sim.stop().await;
        (self.store, self.sink, ids, self.config)
    }
}

async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < DEADLINE, "{what}: not after {DEADLINE:?}");
        tokio::time::sleep(TICK).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding what was delivered.

/// The Avro shape of a Comm100 metrics record.
#[derive(Deserialize, Debug)]
struct MetricsRec<T> {
    event_id: String,
    source: String,
    vendor: String,
    observed_at: i64,
    department_id: Option<String>,
    metrics: T,
}

#[derive(Debug)]
enum Payload {
    Interaction(InteractionEvent),
    Agent(Box<AgentStatusEvent>),
    RightNow(MetricsRec<RightNowMetrics>),
}

/// Check one record's framing, schema id, key and headers against its decoded payload.
fn decode(config: &Config, ids: &HashMap<Stream, u32>, rec: &OutRecord) -> Payload {
    let stream = *STREAMS
        .iter()
        .find(|s| config.topics.for_stream(**s) == rec.topic)
        .unwrap_or_else(|| panic!("record on unconfigured topic {}", rec.topic));
    let p = &rec.payload;
    assert!(p.len() > 5, "payload too short for the wire format");
    assert_eq!(p[0], 0, "magic byte");
    let id = u32::from_be_bytes(p[1..5].try_into().unwrap());
    assert_eq!(
        id, ids[&stream],
        "schema id of {}-value ({stream:?})",
        rec.topic
    );
    let schema = apache_avro::Schema::parse_str(schema_text(stream)).expect("schema parses");
    let mut rest = &p[5..];
    let value = GenericDatumReader::builder(&schema)
        .build()
        .expect("datum reader")
        .read_value(&mut rest)
        .expect("the Avro datum decodes with the writer schema");
    assert!(rest.is_empty(), "trailing bytes after the datum");
    let (payload, event_id, _type_name, key) = match stream {
        Stream::Interactions => {
            let e: InteractionEvent = apache_avro::from_value(&value).expect("interaction event");
            let key = format!("{}/{}", e.source, e.interaction_id);
            let (id, ty) = (e.event_id.clone(), e.event_type.as_str());
            let vendor = match e.source.as_str() {
                WOLKVOX => "wolkvox",
                VONAGE => "vonage",
                other => panic!("interaction from unexpected source {other}"),
            };
            assert_eq!(e.vendor, vendor);
            assert_eq!(e.latest_only, vendor == "vonage", "latest_only: {e:?}");
            assert_eq!(e.initial, e.previous_observed_at.is_none(), "{e:?}");
            if let Some(prev) = e.previous_observed_at {
                assert!(prev < e.observed_at, "observation window of {e:?}");
            }
            if vendor == "wolkvox" {
                assert_eq!(e.vendor_timestamp, Some(1_795_274_100_000), "10:15 Bogota");
                assert_eq!(
                    e.subject.as_deref(),
                    Some(format!("subject {}", e.interaction_id).as_str())
                );
            }
            (Payload::Interaction(e), id, ty, key)
        }
        Stream::AgentStatus => {
            let e: AgentStatusEvent = apache_avro::from_value(&value).expect("agent status event");
            let key = format!("{}/{}", e.source, e.agent_id);
            let vendor = match e.source.as_str() {
                WOLKVOX => "wolkvox",
                COMM100 => "comm100",
                other => panic!("agent status from unexpected source {other}"),
            };
            assert_eq!(e.vendor, vendor);
            assert_eq!(
                (e.wolkvox.is_some(), e.comm100.is_some()),
                (
                    vendor == "wolkvox" && e.status != ABSENT,
                    vendor == "comm100" && e.status != ABSENT
                ),
                "vendor details ride along while listed: {e:?}"
            );
            let id = e.event_id.clone();
            (Payload::Agent(Box::new(e)), id, "agent-status-changed", key)
        }
        Stream::Comm100RightNow => {
            let m: MetricsRec<RightNowMetrics> =
                apache_avro::from_value(&value).expect("right-now record");
            assert_eq!(
                (
                    m.source.as_str(),
                    m.vendor.as_str(),
                    m.department_id.as_deref()
                ),
                (COMM100, "comm100", None)
            );
            assert!(m.observed_at > 0);
            let (id, key) = (m.event_id.clone(), m.source.clone());
            (Payload::RightNow(m), id, "comm100-right-now", key)
        }
        other => panic!("unexpected record of stream {other:?} on {}", rec.topic),
    };
    assert_eq!(rec.key, key, "record key");
    // The CloudEvents headers (the default `kafka.record_headers`) and the record's timestamp
    // tell what the payload tells.
    let (source, vendor, time, subject, ce_type) = match &payload {
        Payload::Interaction(e) => (
            &e.source,
            &e.vendor,
            e.observed_at,
            Some(e.interaction_id.as_str()),
            match e.event_type {
                InteractionEventType::Started => "io.ccdc.interaction.started.v1",
                InteractionEventType::Ended => "io.ccdc.interaction.ended.v1",
            },
        ),
        Payload::Agent(e) => (
            &e.source,
            &e.vendor,
            e.observed_at,
            Some(e.agent_id.as_str()),
            "io.ccdc.agent.status_changed.v1",
        ),
        Payload::RightNow(m) => (
            &m.source,
            &m.vendor,
            m.observed_at,
            None,
            "io.ccdc.comm100.right_now.v1",
        ),
    };
    let time_text = chrono::DateTime::from_timestamp_millis(time)
        .expect("a time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut want = vec![
        ("ce_specversion", "1.0".to_string()),
        ("ce_id", event_id),
        ("ce_source", format!("ccdc://{vendor}/{source}")),
        ("ce_type", ce_type.to_string()),
        ("ce_time", time_text),
    ];
    want.extend(subject.map(|s| ("ce_subject", s.to_string())));
    want.push(("content-type", "application/avro".to_string()));
    assert_eq!(rec.headers, want, "headers match the payload");
    assert_eq!(
        rec.timestamp_ms,
        Some(time),
        "the record is stamped with the event's time"
    );
    payload
}

/// Everything delivered so far, decoded and grouped by key in delivery order.
#[derive(Default, Debug)]
struct Seen {
    interactions: BTreeMap<String, Vec<IBrief>>,
    agents: BTreeMap<String, Vec<ABrief>>,
    /// The scenario step of each RightNow record, in delivery order.
    right_now_steps: Vec<usize>,
    event_ids: Vec<String>,
}

fn seen(config: &Config, ids: &HashMap<Stream, u32>, records: &[OutRecord]) -> Seen {
    let mut s = Seen::default();
    for r in records {
        let payload = decode(config, ids, r);
        s.event_ids
            .push(r.header("ce_id").expect("ce_id").to_string());
        match payload {
            Payload::Interaction(e) => s.interactions.entry(r.key.clone()).or_default().push((
                e.event_type,
                e.interaction_id,
                e.agent_id,
                e.initial,
                e.transfer,
                e.transfer_agent_id,
            )),
            Payload::Agent(e) => s.agents.entry(r.key.clone()).or_default().push((
                e.previous_status,
                e.status,
                e.status_name,
                e.initial,
            )),
            Payload::RightNow(m) => s.right_now_steps.push(right_now_step(&m.metrics)),
        }
    }
    s
}

fn assert_unique(ids: &[String]) {
    let mut set = HashSet::new();
    for id in ids {
        assert!(set.insert(id), "event id {id} delivered twice");
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_vendors_end_to_end_in_process() {
    let started = Instant::now();
    let svc = Service::start(true, false, |_| Arc::new(MemoryStore::default())).await;
    let mut ids: Option<HashMap<Stream, u32>> = None;
    for step in 0..STEPS {
        if step > 0 {
            assert_eq!(svc.sim.state.advance(), step);
        }
        let (want_i, want_a) = (interactions_upto(step + 1), agents_upto(step + 1));
        wait_until(
            &format!("step {step}: its interaction and agent events"),
            || {
                svc.delivered_on(INTERACTIONS) >= count(&want_i)
                    && svc.delivered_on(AGENTS) >= count(&want_a)
            },
        )
        .await;
        if ids.is_none() {
            ids = Some(svc.schema_ids().await);
        }
        let ids = ids.clone().expect("resolved above");
        // Each step's RightNow values reach their topic too (one record per poll).
        wait_until(
            &format!("step {step}: a RightNow record of this step"),
            || {
                seen(&svc.config, &ids, &svc.sink.delivered())
                    .right_now_steps
                    .contains(&step)
            },
        )
        .await;
        let got = seen(&svc.config, &ids, &svc.sink.delivered());
        assert_eq!(
            got.interactions, want_i,
            "interaction events per key after step {step}"
        );
        assert_eq!(got.agents, want_a, "agent events per key after step {step}");
    }
    // A few more polls of every feed on the last step: they must add nothing but RightNow records.
    svc.wait_requests(
        &[
            Route::WolkvoxInteractions,
            Route::WolkvoxAgents,
            Route::Comm100Agents,
            Route::Comm100RightNow,
            Route::VonageLatest,
        ],
        3,
    )
    .await;

    let (store, sink, ids, config) = svc.stop().await;
    assert_eq!(store.outbox_len(), 0, "the outbox is drained at shutdown");
    let records = sink.delivered();
    let got = seen(&config, &ids, &records);
    assert_eq!(
        got.interactions,
        interactions_upto(STEPS),
        "interaction events per key"
    );
    assert_eq!(got.agents, agents_upto(STEPS), "agent events per key");
    assert!(
        got.right_now_steps.windows(2).all(|w| w[0] <= w[1]),
        "RightNow records follow the scenario: {:?}",
        got.right_now_steps
    );
    assert_unique(&got.event_ids);
    assert_eq!(
        sink.sends(),
        records.len(),
        "every record handed over once, none re-sent"
    );
    let topics: HashSet<&str> = records.iter().map(|r| r.topic.as_str()).collect();
    assert_eq!(topics, HashSet::from([INTERACTIONS, AGENTS, RIGHT_NOW]));
    eprintln!(
        "{} records ({} RightNow) in {:?}",
        records.len(),
        got.right_now_steps.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_outage_at_start_holds_events_in_the_outbox_then_delivers_them_once_in_order() {
    let started = Instant::now();
    let svc = Service::start(false, true, |dir| {
        Arc::new(SledStore::open(&dir.join("store")).expect("sled store"))
    })
    .await;

    // Two steps are polled while no schema id can be resolved: their events wait in the outbox.
    for step in 0..2 {
        if step > 0 {
            assert_eq!(svc.sim.state.advance(), step);
        }
        let want = count(&interactions_upto(step + 1)) + count(&agents_upto(step + 1));
        // Counted before they are readable (the count goes up before the batch is applied and
        // flushed): wait for both.
        wait_until(&format!("step {step}: {want} events in the outbox"), || {
            svc.store.outbox_len() >= want
                && svc
                    .store
                    .outbox_after(None, 10_000)
                    .is_ok_and(|v| v.len() >= want)
        })
        .await;
        assert_eq!(svc.store.outbox_len(), want, "exactly the step's events");
    }
    assert!(
        svc.sink.delivered().is_empty(),
        "nothing published without a schema id"
    );
    assert_eq!(svc.sink.sends(), 0, "nothing even handed to the sink");
    let pending: Vec<ccdc::event::Event> = svc
        .store
        .outbox_after(None, 10_000)
        .expect("outbox readable")
        .into_iter()
        .map(|(_, bytes)| ccdc::store::outbox::decode(&bytes).expect("outbox entry decodes"))
        .collect();
    assert_eq!(pending.len(), svc.store.outbox_len());

    // The registry comes back: everything is delivered, once, in outbox order.
    svc.registry.set_unavailable(false);
    wait_until("the outbox drained after the registry came back", || {
        svc.store.outbox_len() == 0 && svc.sink.delivered().len() >= pending.len()
    })
    .await;
    let ids = svc.schema_ids().await;
    let delivered = svc.sink.delivered();
    let order = |r: &OutRecord| {
        let id = r.header("ce_id").expect("ce_id").to_string();
        (r.topic.clone(), r.key.clone(), id)
    };
    assert_eq!(
        delivered.iter().map(order).collect::<Vec<_>>(),
        pending
            .iter()
            .map(|e| (
                svc.config.topics.for_stream(e.stream()).to_string(),
                e.key(),
                e.event_id().to_string()
            ))
            .collect::<Vec<_>>(),
        "delivered exactly the outbox, in its order"
    );
    let got = seen(&svc.config, &ids, &delivered);
    assert_eq!(got.interactions, interactions_upto(2));
    assert_eq!(got.agents, agents_upto(2));

    // Publishing goes on with the resolved ids.
    assert_eq!(svc.sim.state.advance(), 2);
    let (want_i, want_a) = (interactions_upto(STEPS), agents_upto(STEPS));
    wait_until("the last step's events", || {
        svc.delivered_on(INTERACTIONS) >= count(&want_i)
            && svc.delivered_on(AGENTS) >= count(&want_a)
    })
    .await;
    svc.wait_requests(
        &[
            Route::WolkvoxInteractions,
            Route::WolkvoxAgents,
            Route::Comm100Agents,
            Route::VonageLatest,
        ],
        3,
    )
    .await;

    let (store, sink, ids, config) = svc.stop().await;
    assert_eq!(store.outbox_len(), 0, "the outbox is drained at shutdown");
    let records = sink.delivered();
    let got = seen(&config, &ids, &records);
    assert_eq!(got.interactions, want_i, "interaction events per key");
    assert_eq!(got.agents, want_a, "agent events per key");
    assert!(got.right_now_steps.is_empty(), "RightNow is disabled here");
    assert_eq!(
        records.len(),
        count(&want_i) + count(&want_a),
        "nothing else"
    );
    assert_unique(&got.event_ids);
    assert_eq!(sink.sends(), records.len(), "none re-sent");
    eprintln!("{} records in {:?}", records.len(), started.elapsed());
}
