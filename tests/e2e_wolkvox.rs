//! End to end on real parts: the `ccdc` binary polls the in-process Wolkvox simulator, publishes to a
//! fresh tansu broker with schemas in rivven-schema; the test reads every record back from offset 0,
//! decodes it through the registry and asserts exactly the events the scenario implies.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ccdc::event::{InteractionEvent, InteractionEventType, InteractionEventType::*};
use ccdc::simulator::{Fault, SimAgent, SimInteraction, SimMode, SimServer, SimState, Step};
use common::{Ccdc, Infra, Record, RegistryDecoder, TopicReader};

const TOKEN: &str = "it-token-5f2c9a71";
const SOURCE: &str = "ops-it";

fn it(conn: &str) -> SimInteraction {
    SimInteraction {
        conn_id: conn.into(),
        subject: format!("subject {conn}"),
        fromname: format!("from {conn}"),
        date: "2026-11-21 10:15:00".into(),
    }
}

fn step(rows: &[(&str, &[&str])]) -> Step {
    rows.iter()
        .map(|(a, conns)| SimAgent {
            agent_id: a.to_string(),
            active_interactions: conns.iter().map(|c| it(c)).collect(),
        })
        .collect()
}

/// The scripted timeline.
fn scenario() -> Vec<Step> {
    vec![
        step(&[("1001", &["c1", "c2"]), ("1002", &["c3"])]), // S0: initial
        step(&[("1001", &["c1"]), ("1002", &["c3", "c4"])]), // S1: c2 ends, c4 starts
        step(&[("1001", &[]), ("1002", &["c3", "c4", "c1"])]), // S2: c1 moves 1001 → 1002
        step(&[("1002", &["c4"])]),                          // S3: c1, c3 end at 1002
    ]
}

/// (type, agent, interaction, initial, transfer_agent) that each step implies.
type Expect = (
    InteractionEventType,
    &'static str,
    &'static str,
    bool,
    Option<&'static str>,
);
fn expected(step: usize) -> Vec<Expect> {
    match step {
        0 => vec![
            (Started, "1001", "c1", true, None),
            (Started, "1001", "c2", true, None),
            (Started, "1002", "c3", true, None),
        ],
        1 => vec![
            (Ended, "1001", "c2", false, None),
            (Started, "1002", "c4", false, None),
        ],
        2 => vec![
            (Ended, "1001", "c1", false, Some("1002")),
            (Started, "1002", "c1", false, Some("1001")),
        ],
        3 => vec![
            (Ended, "1002", "c1", false, None),
            (Ended, "1002", "c3", false, None),
        ],
        _ => vec![],
    }
}

fn brief(e: &InteractionEvent) -> Expect {
    let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
    (
        e.event_type,
        leak(&e.agent_id),
        leak(&e.interaction_id),
        e.initial,
        e.transfer_agent_id.as_deref().map(leak),
    )
}

struct Harness {
    infra: Infra,
    sim: SimServer,
    topic: String,
    config: PathBuf,
    log: PathBuf,
    reader: TopicReader,
    decoder: RegistryDecoder,
    ccdc: Option<Ccdc>,
}

impl Harness {
    /// Start the parts and a first `ccdc run` with `env`.
    async fn start(name: &str, env: &[(&str, &str)]) -> Harness {
        let infra = tokio::task::spawn_blocking(Infra::start).await.unwrap();
        let sim = SimServer::start(
            "127.0.0.1:0".parse().unwrap(),
            SimState::new(TOKEN, SimMode::Scripted(scenario())),
        )
        .await
        .unwrap();
        let topic = format!("ccdc.it.{name}");
        infra.relax_compatibility(&format!("{topic}-value"));
        let token_file = infra.dir.path().join("token");
        std::fs::write(&token_file, TOKEN).unwrap();
        let config = infra.dir.path().join("ccdc.toml");
        std::fs::write(
            &config,
            format!(
                r#"
state_dir = "{state}"
shutdown_timeout = "20s"
[kafka]
bootstrap_servers = "{bootstrap}"
partitions = 3
replication_factor = 1
message_timeout = "30s"
[schema_registry]
url = "{registry}"
[topics]
interactions = "{topic}"
[[sources]]
vendor = "wolkvox"
name = "{SOURCE}"
base_url = "{base}"
token = {{ file = "{token}" }}
time_zone = "America/Bogota"
allow_insecure_http = true
request_timeout = "5s"
[sources.interactions]
interval = "200ms"
max_backoff = "300ms"
"#,
                state = infra.dir.path().join("state").display(),
                bootstrap = infra.bootstrap,
                registry = infra.registry_url,
                base = sim.base_url(),
                token = token_file.display(),
            ),
        )
        .unwrap();
        let log = infra.dir.path().join("ccdc.log");
        let (b, t) = (infra.bootstrap.clone(), topic.clone());
        let ccdc = Ccdc::start(&config, &log, env);
        // The topic exists once ccdc created it at start-up.
        let reader = tokio::task::spawn_blocking(move || TopicReader::new(&b, &t))
            .await
            .unwrap();
        let decoder = RegistryDecoder::new(&infra.registry_url);
        Harness {
            infra,
            sim,
            topic,
            config,
            log,
            reader,
            decoder,
            ccdc: Some(ccdc),
        }
    }

    fn take_ccdc(&mut self) -> Ccdc {
        self.ccdc.take().expect("ccdc started")
    }

    /// Read until `n` records in total, then decode all of them.
    fn read(&mut self, n: usize) -> Vec<(Record, InteractionEvent)> {
        let log = self.log.clone();
        let recs = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.reader
                .read_at_least(n, Duration::from_secs(60))
                .to_vec()
        }))
        .unwrap_or_else(|_| panic!("ccdc log:\n{}", common::read_to_string(&log)));
        recs.into_iter()
            .map(|r| {
                let e = self.decoder.decode(&r.payload);
                (r, e)
            })
            .collect()
    }

    /// Wait until the simulator has served `extra` more requests.
    async fn wait_polls(&self, extra: u64) {
        let target = self.sim.state.requests() + extra;
        let start = Instant::now();
        while self.sim.state.requests() < target {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "ccdc stopped polling\n{}",
                common::read_to_string(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Every expectation of `steps`, flattened, in order.
fn expected_upto(steps: std::ops::Range<usize>) -> Vec<Expect> {
    steps.flat_map(expected).collect()
}

/// Assert per-key order: for each key, the records' events (deduplicated by id) follow `want`'s order.
fn assert_events(got: &[(Record, InteractionEvent)], want: &[Expect], allow_duplicates: bool) {
    let mut seen = HashSet::new();
    let mut firsts = Vec::new();
    for (r, e) in got {
        assert_eq!(
            r.key,
            format!("{SOURCE}/{}", e.interaction_id),
            "key = source/interaction"
        );
        assert_eq!(
            r.headers.get("ccdc.event_id"),
            Some(&e.event_id),
            "event id header"
        );
        assert_eq!(
            r.headers.get("ccdc.event_type").map(String::as_str),
            Some(e.event_type.as_str())
        );
        assert_eq!((e.source.as_str(), e.vendor.as_str()), (SOURCE, "wolkvox"));
        if seen.insert(e.event_id.clone()) {
            firsts.push(e.clone());
        } else {
            assert!(
                allow_duplicates,
                "duplicate event id {} not allowed here",
                e.event_id
            );
        }
    }
    // Same multiset of transitions.
    let mut a: Vec<Expect> = firsts.iter().map(brief).collect();
    let mut b = want.to_vec();
    a.sort();
    b.sort();
    assert_eq!(a, b, "exactly the events the scenario implies");
    // Per-key order: within one interaction the sequence of (type, agent) matches the timeline.
    let mut per_key: HashMap<&str, Vec<(InteractionEventType, &str)>> = HashMap::new();
    for e in &firsts {
        per_key
            .entry(&e.interaction_id)
            .or_default()
            .push((e.event_type, &e.agent_id));
    }
    for (k, seq) in per_key {
        let want_seq: Vec<(InteractionEventType, &str)> = want
            .iter()
            .filter(|w| w.2 == k)
            .map(|w| (w.0, w.1))
            .collect();
        assert_eq!(seq, want_seq, "order of interaction {k}");
    }
    // Observation windows: each non-initial event's window is closed and ordered.
    for e in &firsts {
        match e.previous_observed_at {
            None => assert!(e.initial),
            Some(p) => assert!(p < e.observed_at, "window of {}", e.event_id),
        }
        assert_eq!(
            e.vendor_timestamp_raw.as_deref(),
            Some("2026-11-21 10:15:00")
        );
        assert_eq!(
            e.vendor_timestamp,
            Some(1_795_274_100_000),
            "10:15 Bogota = 15:15Z"
        );
        assert_eq!(
            e.subject.as_deref(),
            Some(format!("subject {}", e.interaction_id).as_str())
        );
    }
}

fn python_interop(h: &Harness, got: &[(Record, InteractionEvent)]) {
    let expected: Vec<serde_json::Value> = got
        .iter()
        .map(|(_, e)| serde_json::to_value(e).unwrap())
        .collect();
    let file = h.infra.dir.path().join("expected.json");
    std::fs::write(&file, serde_json::to_string(&expected).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/consume.py");
    let python = std::env::var("CCDC_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(python)
        .arg(script)
        .args([
            "--bootstrap",
            &h.infra.bootstrap,
            "--registry",
            &h.infra.registry_url,
            "--topic",
            &h.topic,
            "--expected",
        ])
        .arg(&file)
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "python confluent-kafka interop failed:\n{text}"
    );
    assert!(
        text.contains(&format!("interop ok: {} records", got.len())),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_scenario_publishes_exactly_the_implied_events() {
    let mut h = Harness::start("scenario", &[]).await;
    let ccdc = h.take_ccdc();
    let mut total = 0;
    for s in 0..scenario().len() {
        if s > 0 {
            if s == 3 {
                // A bad stretch before S3: every failed poll must produce nothing.
                for f in [
                    Fault::Http500,
                    Fault::VendorError,
                    Fault::Malformed,
                    Fault::Truncated,
                    Fault::Http429,
                    Fault::Empty,
                ] {
                    h.sim.state.inject(f, 1);
                }
                h.wait_polls(6).await;
            }
            h.sim.state.advance();
        }
        total += expected(s).len();
        let got = h.read(total);
        assert_events(&got, &expected_upto(0..s + 1), false);
        if s == 2 {
            // Identical snapshots yield nothing.
            h.wait_polls(3).await;
        }
    }
    // Nothing more arrives.
    h.reader.poll_for(Duration::from_secs(1));
    let got = h.read(total);
    assert_eq!(got.len(), total, "no extra records");
    assert_events(&got, &expected_upto(0..4), false);
    // Transfers share the key, so they are on one partition: ENDED then STARTED.
    let c1: Vec<_> = got
        .iter()
        .filter(|(_, e)| e.interaction_id == "c1")
        .map(|(r, e)| (r.partition, r.offset, e.event_type))
        .collect();
    assert!(
        c1.windows(2).all(|w| w[0].0 == w[1].0 && w[0].1 < w[1].1),
        "{c1:?}"
    );
    let st = ccdc.terminate(Duration::from_secs(30));
    assert!(st.success(), "clean exit on SIGTERM: {st:?}");
    let log = common::read_to_string(&h.log);
    assert!(
        !log.contains(TOKEN),
        "the vendor token must never be logged"
    );
    assert!(log.contains("poll failed"), "failed polls are reported");
    python_interop(&h, &got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_scenario_then_restart_loses_nothing() {
    let mut h = Harness::start("sigterm", &[]).await;
    let ccdc = h.take_ccdc();
    h.read(expected(0).len());
    h.sim.state.advance();
    h.read(expected_upto(0..2).len());
    let st = ccdc.terminate(Duration::from_secs(30));
    assert!(st.success(), "{st:?}");
    // The world moves on while ccdc is down.
    h.sim.state.advance();
    let _ccdc = Ccdc::start(&h.config, &h.log, &[]);
    let got = h.read(expected_upto(0..3).len());
    h.sim.state.advance();
    let got2 = h.read(got.len() + expected(3).len());
    assert_events(&got2, &expected_upto(0..4), true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_outbox_commit_and_publish_loses_nothing() {
    // This process SIGKILLs itself right after its 2nd commit: S1's snapshot and events are durable
    // in sled, none of the events has been published.
    let mut h = Harness::start("sigkill", &[("CCDC_FAILPOINT", "kill-after-commit:2")]).await;
    let doomed = h.take_ccdc();
    h.read(expected(0).len());
    h.sim.state.advance();
    let st = doomed.wait(Duration::from_secs(30));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(libc::SIGKILL),
        "{st:?}"
    );
    // Restarted, ccdc will not derive S1's events again (its stored snapshot is S1): they can only
    // come from the outbox.
    let _ccdc = Ccdc::start(&h.config, &h.log, &[]);
    h.sim.state.advance();
    let want = expected_upto(0..3);
    h.read(want.len());
    h.reader.poll_for(Duration::from_secs(1));
    let n = h.reader.records.len();
    let got = h.read(n);
    assert_events(&got, &want, true);
}
