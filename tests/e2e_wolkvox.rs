//! End to end on real parts: the `ccdc` binary polls the in-process Wolkvox simulator (interactions
//! and agents), publishes to a fresh tansu broker with schemas in rivven-schema; the test reads every
//! record back from offset 0, decodes it through the registry and asserts exactly the events the
//! scenario implies.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ccdc::event::{
    AgentStatusEvent, InteractionEvent, InteractionEventType, InteractionEventType::*, ABSENT,
};
use ccdc::simulator::{Fault, Route, SimAgent, SimInteraction, SimMode, Step};
use common::{python_interop, Record, Stack};

const TOKEN: &str = "it-token-5f2c9a71";
const SOURCE: &str = "ops-it";
const INTERACTIONS: &str = "ccdc.it.interactions";
const AGENTS: &str = "ccdc.it.agents";

fn it(conn: &str) -> SimInteraction {
    SimInteraction {
        conn_id: conn.into(),
        subject: format!("subject {conn}"),
        fromname: format!("from {conn}"),
        date: "2026-11-21 10:15:00".into(),
    }
}

fn step(rows: &[(&str, &str, &[&str])]) -> Step {
    rows.iter()
        .map(|(a, status, conns)| SimAgent::new(a, status, conns.iter().map(|c| it(c)).collect()))
        .collect()
}

/// The scripted timeline: (agent, status, active interactions) per step.
fn scenario() -> Vec<Step> {
    vec![
        step(&[("1001", "Busy", &["c1", "c2"]), ("1002", "Busy", &["c3"])]), // S0: initial
        step(&[("1001", "Busy", &["c1"]), ("1002", "Busy", &["c3", "c4"])]), // S1: c2 ends, c4 starts
        step(&[
            ("1001", "Ready", &[]),
            ("1002", "Busy", &["c3", "c4", "c1"]),
        ]), // S2: c1 moves 1001 → 1002
        step(&[("1002", "Busy", &["c4"])]), // S3: c1, c3 end; 1001 logs out
        // S4: 1002 lists c5 and one without a conn_id (c4 may be it): c5 starts, c4 is held.
        step(&[("1002", "Busy", &["", "c5"])]),
        step(&[("1002", "Busy", &["c5"])]), // S5: listed completely again, c4 has ended
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
        4 => vec![(Started, "1002", "c5", false, None)],
        5 => vec![(Ended, "1002", "c4", false, None)],
        _ => vec![],
    }
}

/// (agent, previous status, status, initial) that each step implies.
type AgentExpect = (&'static str, Option<&'static str>, &'static str, bool);
fn expected_agents(step: usize) -> Vec<AgentExpect> {
    match step {
        0 => vec![("1001", None, "Busy", true), ("1002", None, "Busy", true)],
        2 => vec![("1001", Some("Busy"), "Ready", false)],
        3 => vec![("1001", Some("Ready"), ABSENT, false)],
        _ => vec![],
    }
}

fn expected_upto(steps: std::ops::Range<usize>) -> Vec<Expect> {
    steps.flat_map(expected).collect()
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn brief(e: &InteractionEvent) -> Expect {
    (
        e.event_type,
        leak(&e.agent_id),
        leak(&e.interaction_id),
        e.initial,
        e.transfer_agent_id.as_deref().map(leak),
    )
}

const SOURCES: &str = r#"
[[sources]]
vendor = "wolkvox"
name = "ops-it"
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
"#;

async fn stack() -> Stack {
    Stack::start(
        TOKEN,
        SimMode::Scripted(scenario()),
        SOURCES,
        &[("interactions", INTERACTIONS), ("agent_status", AGENTS)],
    )
    .await
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
        // The CloudEvents headers (binary mode) and the record timestamp tell what the payload
        // does (`ce_time` is checked by the Python consumer, with the CloudEvents SDK).
        let header = |k: &str| r.headers.get(k).map(String::as_str);
        assert_eq!(
            header("ce_id"),
            Some(e.event_id.as_str()),
            "event id header"
        );
        assert_eq!(
            header("ce_type"),
            Some(match e.event_type {
                Started => "io.ccdc.interaction.started.v1",
                Ended => "io.ccdc.interaction.ended.v1",
            })
        );
        assert_eq!(header("ce_source"), Some("ccdc://wolkvox/ops-it"));
        assert_eq!(header("ce_subject"), Some(e.interaction_id.as_str()));
        assert_eq!(
            (header("ce_specversion"), header("content-type")),
            (Some("1.0"), Some("application/avro"))
        );
        assert_eq!(
            r.create_time,
            Some(e.observed_at),
            "the record's timestamp is the event's time"
        );
        assert_eq!(
            (e.source.as_str(), e.vendor.as_str(), e.latest_only),
            (SOURCE, "wolkvox", false)
        );
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
    let mut a: Vec<Expect> = firsts.iter().map(brief).collect();
    let mut b = want.to_vec();
    a.sort();
    b.sort();
    assert_eq!(a, b, "exactly the events the scenario implies");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_scenario_publishes_exactly_the_implied_events() {
    let s = stack().await;
    let ccdc = s.ccdc(&[]);
    let mut interactions = s.reader(INTERACTIONS).await;
    let mut agents = s.reader(AGENTS).await;
    let (mut total, mut agent_total) = (0, 0);
    for step in 0..scenario().len() {
        if step > 0 {
            if step == 3 {
                // A bad stretch before S3: every failed poll must produce nothing.
                for f in [
                    Fault::Http500,
                    Fault::VendorError,
                    Fault::Malformed,
                    Fault::Truncated,
                    Fault::Http429,
                    Fault::Empty,
                ] {
                    s.sim.state.inject(f, 1);
                }
                s.wait_requests(Route::WolkvoxInteractions, 6).await;
            }
            s.sim.state.advance();
        }
        total += expected(step).len();
        let got: Vec<(Record, InteractionEvent)> = s.read(&mut interactions, total);
        assert_events(&got, &expected_upto(0..step + 1), false);
        agent_total += expected_agents(step).len();
        s.read::<AgentStatusEvent>(&mut agents, agent_total);
        if step == 2 {
            // Identical snapshots yield nothing.
            s.wait_requests(Route::WolkvoxInteractions, 3).await;
        }
    }
    interactions.poll_for(Duration::from_secs(1));
    agents.poll_for(Duration::from_secs(1));
    let got: Vec<(Record, InteractionEvent)> = s.read(&mut interactions, total);
    assert_eq!(got.len(), total, "no extra records");
    assert_events(&got, &expected_upto(0..scenario().len()), false);
    // c4 was last listed before S4's first poll (which first saw c5): its end is bounded from
    // then, not from the polls that listed its agent incompletely.
    let find = |id: &str, ty| {
        let mut events = got.iter().map(|(_, e)| e);
        events
            .find(|e| e.interaction_id == id && e.event_type == ty)
            .unwrap()
    };
    let (c4, c5) = (find("c4", Ended), find("c5", Started));
    assert!(
        c4.ended_after.is_some() && c4.ended_after < Some(c5.observed_at),
        "c4 ended after {:?}, c5 first seen {}",
        c4.ended_after,
        c5.observed_at
    );
    // Every record says where it comes from (the context fields, decoded by a generic reader).
    let contexts: Vec<(Record, common::RecordContext)> = s.read(&mut interactions, total);
    for (_, c) in &contexts {
        assert_eq!(
            c,
            &common::RecordContext {
                source_time_zone: Some("America/Bogota".into()),
                ccdc_version: Some(env!("CARGO_PKG_VERSION").into()),
                account_id: None,
            }
        );
    }
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

    let agent_events: Vec<(Record, AgentStatusEvent)> = s.read(&mut agents, agent_total);
    assert_eq!(agent_events.len(), agent_total, "no extra agent records");
    let mut briefs: Vec<AgentExpect> = agent_events
        .iter()
        .map(|(r, e)| {
            assert_eq!(r.key, format!("{SOURCE}/{}", e.agent_id));
            assert_eq!(
                e.wolkvox.is_some(),
                e.status != ABSENT,
                "Wolkvox details ride along while listed"
            );
            (
                leak(&e.agent_id),
                e.previous_status.as_deref().map(leak),
                leak(&e.status),
                e.initial,
            )
        })
        .collect();
    let mut want: Vec<AgentExpect> = (0..scenario().len()).flat_map(expected_agents).collect();
    briefs.sort();
    want.sort();
    assert_eq!(briefs, want);
    let busy = agent_events
        .iter()
        .find(|(_, e)| e.agent_id == "1002")
        .map(|(_, e)| e.wolkvox.clone().unwrap())
        .unwrap();
    assert_eq!(
        (busy.time_state_now_s, busy.login_time_s),
        (Some(125), Some(28_800)),
        "time counters as numbers"
    );

    let st = ccdc.terminate(Duration::from_secs(30));
    assert!(st.success(), "clean exit on SIGTERM: {st:?}");
    let log = common::read_to_string(&s.log);
    assert!(
        !log.contains(TOKEN),
        "the vendor token must never be logged"
    );
    assert!(log.contains("poll failed"), "failed polls are reported");
    python_interop(&s, INTERACTIONS, &got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_scenario_then_restart_loses_nothing() {
    let s = stack().await;
    let ccdc = s.ccdc(&[]);
    let mut reader = s.reader(INTERACTIONS).await;
    s.read::<InteractionEvent>(&mut reader, expected(0).len());
    s.sim.state.advance();
    s.read::<InteractionEvent>(&mut reader, expected_upto(0..2).len());
    let st = ccdc.terminate(Duration::from_secs(30));
    assert!(st.success(), "{st:?}");
    // The world moves on while ccdc is down.
    s.sim.state.advance();
    let _ccdc = s.ccdc(&[]);
    let got: Vec<(Record, InteractionEvent)> = s.read(&mut reader, expected_upto(0..3).len());
    s.sim.state.advance();
    let got2: Vec<(Record, InteractionEvent)> = s.read(&mut reader, got.len() + expected(3).len());
    assert_events(&got2, &expected_upto(0..4), true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_outbox_commit_and_publish_loses_nothing() {
    let s = stack().await;
    // This process SIGKILLs itself right after the 2nd commit that carries interaction events (S1's):
    // S1's snapshot and events are durable in sled, none of them has been published.
    let doomed = s.ccdc(&[("CCDC_FAILPOINT", "kill-after-commit:ops-it/interactions:2")]);
    let mut reader = s.reader(INTERACTIONS).await;
    s.read::<InteractionEvent>(&mut reader, expected(0).len());
    s.sim.state.advance();
    let st = doomed.wait(Duration::from_secs(30));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(libc::SIGKILL),
        "{st:?}"
    );
    // Restarted, ccdc will not derive S1's events again (its stored snapshot is S1): they can only
    // come from the outbox.
    let restarted_at = chrono::Utc::now().timestamp_millis();
    let _ccdc = s.ccdc(&[]);
    s.sim.state.advance();
    let want = expected_upto(0..3);
    s.read::<InteractionEvent>(&mut reader, want.len());
    reader.poll_for(Duration::from_secs(1));
    let n = reader.records.len();
    let got: Vec<(Record, InteractionEvent)> = s.read(&mut reader, n);
    assert_events(&got, &want, true);
    // S1's events were drained from the outbox only after the restart, and still carry the time
    // of the poll that saw them (assert_events: timestamp = observed_at), before the restart.
    let drained_late: Vec<_> = got
        .iter()
        .filter(|(_, e)| expected(1).contains(&brief(e)))
        .collect();
    assert!(drained_late.len() >= expected(1).len(), "{got:?}");
    for (r, e) in drained_late {
        assert!(
            r.create_time.is_some_and(|t| t < restarted_at),
            "{:?} sent after the restart, stamped {:?}",
            e.event_id,
            r.create_time
        );
    }
}
