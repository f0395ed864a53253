//! Comm100 end to end: the paged `Agents` endpoint → agent-status events (with a page-2 failure and a
//! list shift in the middle), and `Queue` / `Today` / `RightNow` → typed metrics records, all read
//! back from tansu and decoded through rivven-schema.

mod common;

use std::time::Duration;

use ccdc::event::metrics::{QueueMetrics, RightNowMetrics, TodayMetrics};
use ccdc::event::{AgentStatusEvent, ABSENT};
use ccdc::simulator::comm100::{AWAY, ONLINE};
use ccdc::simulator::{C100Agent, Fault, Route, Scenario, SimMode};
use common::{Record, Stack};
use serde::Deserialize;

const TOKEN: &str = "c100-bearer-9d1e";
const AGENTS: &str = "ccdc.it.c100.agents";

fn agents(statuses: &[(&str, &str)]) -> Vec<C100Agent> {
    statuses
        .iter()
        .map(|(id, st)| C100Agent::new(id, &format!("Agent {id}"), st, 0))
        .collect()
}

fn scenario() -> Scenario {
    let all = |over: &[(&str, &str)]| {
        let mut v: Vec<(&str, &str)> = vec![
            ("a1", ONLINE),
            ("a2", AWAY),
            ("a3", ONLINE),
            ("a4", ONLINE),
            ("a5", ONLINE),
            ("a6", ONLINE),
            ("a7", ONLINE),
        ];
        for (id, st) in over {
            match v.iter_mut().find(|(i, _)| i == id) {
                Some(e) => e.1 = st,
                None => v.push((id, st)),
            }
        }
        v.retain(|(_, st)| !st.is_empty());
        agents(&v)
    };
    Scenario {
        comm100: vec![
            all(&[]),                                       // S0: 7 agents on 3 pages
            all(&[("a1", AWAY)]),                           // S1: a1 goes away
            all(&[("a1", AWAY), ("a2", "")]),               // S2: a2 logs out
            all(&[("a1", AWAY), ("a2", ""), ("a3", AWAY)]), // S3: a3 goes away (polled during a list shift)
        ],
        ..Default::default()
    }
}

const SOURCES: &str = r#"
[[sources]]
vendor = "comm100"
name = "c100-it"
base_url = "{comm100}"
token = { file = "{token_file}" }
allow_insecure_http = true
away_statuses_url = "{comm100}/agentAwayStatuses"
status_names = { "00000000-0000-0000-0000-000000000001" = "Away (static)" }
page_size = 3
request_timeout = "5s"
[sources.agents]
interval = "200ms"
max_backoff = "300ms"
[sources.queue]
interval = "300ms"
[sources.today]
interval = "300ms"
[sources.right_now]
interval = "300ms"
"#;

type Brief = (String, Option<String>, String, bool);

fn brief(e: &AgentStatusEvent) -> Brief {
    (
        e.agent_id.clone(),
        e.previous_status.clone(),
        e.status.clone(),
        e.initial,
    )
}

#[derive(Deserialize, Debug)]
struct Rec<T> {
    event_id: String,
    source: String,
    vendor: String,
    observed_at: i64,
    department_id: Option<String>,
    metrics: T,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_agents_and_metrics_reach_their_topics() {
    let topics = [
        ("agent_status", AGENTS),
        ("comm100_queue", "ccdc.it.c100.queue"),
        ("comm100_today", "ccdc.it.c100.today"),
        ("comm100_right_now", "ccdc.it.c100.right-now"),
    ];
    let s = Stack::start(TOKEN, SimMode::Scenario(scenario()), SOURCES, &topics).await;
    let _ccdc = s.ccdc(&[]);
    let mut reader = s.reader(AGENTS).await;

    // S0: every agent, from every page, exactly once, marked initial, with the names.
    let got: Vec<(Record, AgentStatusEvent)> = s.read(&mut reader, 7);
    let mut initial: Vec<Brief> = got.iter().map(|(_, e)| brief(e)).collect();
    initial.sort();
    let want: Vec<Brief> = ["a1", "a2", "a3", "a4", "a5", "a6", "a7"]
        .iter()
        .map(|a| {
            (
                a.to_string(),
                None,
                if *a == "a2" { AWAY } else { ONLINE }.to_string(),
                true,
            )
        })
        .collect();
    assert_eq!(initial, want);
    let a1 = &got.iter().find(|(_, e)| e.agent_id == "a1").unwrap().1;
    assert_eq!(
        a1.status_name.as_deref(),
        Some("Online"),
        "name from the fetched away-status list"
    );
    assert_eq!(
        a1.comm100.as_ref().unwrap().intraday_linear_chat_time_ms,
        Some(24_837_050)
    );
    assert_eq!(
        got.iter()
            .find(|(_, e)| e.agent_id == "a2")
            .unwrap()
            .1
            .status_name
            .as_deref(),
        Some("Away (static)"),
        "static names win"
    );

    // Page 2 fails during the next poll: the whole poll produces nothing.
    s.sim
        .state
        .inject_sequence(Route::Comm100Agents, vec![None, Some(Fault::Http500)]);
    s.wait_requests(Route::Comm100Agents, 5).await;
    s.sim.state.advance();
    let got: Vec<(Record, AgentStatusEvent)> = s.read(&mut reader, 8);
    assert_eq!(
        brief(&got[7].1),
        ("a1".into(), Some(ONLINE.into()), AWAY.into(), false)
    );

    s.sim.state.advance();
    let got: Vec<(Record, AgentStatusEvent)> = s.read(&mut reader, 9);
    assert_eq!(
        brief(&got[8].1),
        ("a2".into(), Some(AWAY.into()), ABSENT.into(), false)
    );

    // S3 is first read while the list shifts between pages (a7 falls off the end): a3's change is
    // seen, a7 is not reported absent.
    s.wait_requests(Route::Comm100Agents, 3).await;
    s.sim.state.shift_comm100_list_once();
    s.sim.state.advance();
    let got: Vec<(Record, AgentStatusEvent)> = s.read(&mut reader, 10);
    assert_eq!(
        brief(&got[9].1),
        ("a3".into(), Some(ONLINE.into()), AWAY.into(), false)
    );
    s.wait_requests(Route::Comm100Agents, 6).await;
    reader.poll_for(Duration::from_secs(1));
    let got: Vec<(Record, AgentStatusEvent)> = s.read(&mut reader, 10);
    assert_eq!(
        got.len(),
        10,
        "no false ABSENT for an agent hidden by the shift, no duplicates: {:?}",
        got.iter().map(|(_, e)| brief(e)).collect::<Vec<_>>()
    );
    for (r, e) in &got {
        assert_eq!(r.key, format!("c100-it/{}", e.agent_id));
        assert_eq!(e.vendor, "comm100");
    }

    // Metrics: one record per poll, typed, durations in ms with the raw text kept.
    let mut q = s.reader("ccdc.it.c100.queue").await;
    let queue: Vec<(Record, Rec<QueueMetrics>)> = s.read(&mut q, 2);
    let (r, rec) = &queue[0];
    assert_eq!(
        (
            r.key.as_str(),
            rec.department_id.as_deref(),
            rec.vendor.as_str(),
            rec.source.as_str()
        ),
        (
            "c100-it/dep-support",
            Some("dep-support"),
            "comm100",
            "c100-it"
        )
    );
    assert_eq!(
        (
            rec.metrics.avg_wait_time_last_30_mins_ms,
            rec.metrics.avg_wait_time_last_30_mins_raw.as_deref()
        ),
        (Some(90_000), Some("00:01:30"))
    );
    assert_eq!(
        (
            rec.metrics.avg_wait_time_last_60_mins_ms,
            rec.metrics.visitors[0].wait_time_ms
        ),
        (Some(45_500), Some(42_000))
    );
    assert_ne!(queue[0].1.event_id, queue[1].1.event_id);
    assert!(queue[0].1.observed_at < queue[1].1.observed_at);
    let mut t = s.reader("ccdc.it.c100.today").await;
    let today: Vec<(Record, Rec<TodayMetrics>)> = s.read(&mut t, 1);
    assert_eq!(
        (
            today[0].0.key.as_str(),
            today[0].1.metrics.abandoned_chats,
            today[0].1.metrics.avg_score
        ),
        ("c100-it", Some(1), Some(4.5))
    );
    let mut rn = s.reader("ccdc.it.c100.right-now").await;
    let now: Vec<(Record, Rec<RightNowMetrics>)> = s.read(&mut rn, 1);
    assert_eq!(
        (
            now[0].1.metrics.chat_utilization,
            now[0].1.department_id.as_deref()
        ),
        (Some(0.5), None)
    );
    assert!(now[0].1.metrics.logged_in_agents.is_some());

    let log = common::read_to_string(&s.log);
    assert!(
        !log.contains(TOKEN),
        "the bearer token must never be logged"
    );
    assert!(
        log.contains("the agent list moved while its pages were read"),
        "the shift is reported"
    );
}

const SHIFT_TOPIC: &str = "ccdc.it.c100.shift";
const SHIFT_SOURCES: &str = r#"
[[sources]]
vendor = "comm100"
name = "c100-shift"
base_url = "{comm100}"
token = { file = "{token_file}" }
allow_insecure_http = true
page_size = 2
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
"#;

/// The interleaving an independent acceptance run found (pages of 2): between page 1 and page 2
/// of one poll, a1 (page 1) logs out and a5 logs in at the end, so a3 slides from page 2 onto the
/// page already read and is on no page of that poll, which still sees exactly `total` agents. a3
/// must never be reported absent; a1's logout is reported (one poll late, as CONFIRMED_ABSENT).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_hidden_by_a_shift_between_pages_is_never_reported_absent() {
    let scenario = Scenario {
        comm100: vec![
            agents(&[
                ("a1", ONLINE),
                ("a2", ONLINE),
                ("a3", ONLINE),
                ("a4", ONLINE),
            ]),
            agents(&[
                ("a2", ONLINE),
                ("a3", ONLINE),
                ("a4", ONLINE),
                ("a5", ONLINE),
            ]),
        ],
        ..Default::default()
    };
    let s = Stack::start(
        TOKEN,
        SimMode::Scenario(scenario),
        SHIFT_SOURCES,
        &[("agent_status", SHIFT_TOPIC)],
    )
    .await;
    let _ccdc = s.ccdc(&[]);
    let mut reader = s.reader(SHIFT_TOPIC).await;
    let initial: Vec<(Record, AgentStatusEvent)> = s.read(&mut reader, 4);
    assert!(initial.iter().all(|(_, e)| e.initial && e.status == ONLINE));

    // The change happens in the middle of the next poll.
    s.sim.state.advance_comm100_between_pages_once();
    let got: Vec<(Record, AgentStatusEvent)> = s.read(&mut reader, 6);
    // Several more polls: nothing else may arrive (in particular nothing about a3).
    s.wait_requests(Route::Comm100Agents, 8).await;
    reader.poll_for(Duration::from_millis(500));
    let n = reader.records.len();
    let all: Vec<(Record, AgentStatusEvent)> = s.read(&mut reader, n);
    assert_eq!(
        all.len(),
        6,
        "{:#?}",
        all.iter().map(|(_, e)| brief(e)).collect::<Vec<_>>()
    );
    // Different keys may sit on different partitions: compare without their order.
    let mut later: Vec<Brief> = got[4..].iter().map(|(_, e)| brief(e)).collect();
    later.sort();
    assert_eq!(
        later,
        vec![
            ("a1".into(), Some(ONLINE.into()), ABSENT.into(), false),
            ("a5".into(), None, ONLINE.into(), true),
        ]
    );
    let a1 = &got.iter().find(|(_, e)| e.status == ABSENT).unwrap().1;
    assert_eq!(a1.derivation, ccdc::event::Derivation::ConfirmedAbsent);
    let (after, before) = (
        a1.status_since_after.unwrap(),
        a1.status_since_before.unwrap(),
    );
    assert!(after < before && before < a1.observed_at, "{a1:?}");
    assert!(
        all.iter().filter(|(_, e)| e.agent_id == "a3").count() == 1,
        "a3 only has its initial status"
    );
}
