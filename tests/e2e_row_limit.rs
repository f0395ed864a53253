//! Wolkvox's limit of 60,000 records per call, through the real binary: a real-time answer of
//! 60,000 rows may have been cut short by the vendor, so it is not an observation. Nothing is
//! derived from it — no interaction ends, no agent logs out — and once complete answers come back,
//! what changed is published with bounds from the last complete answer, not from the refused ones.

mod common;

use std::time::{Duration, Instant};

use ccdc::event::{AgentStatusEvent, InteractionEvent, InteractionEventType};
use ccdc::simulator::SimMode;
use common::{http_status, sim_agent as agent, Stack};

/// Wolkvox's documented maximum of records per call.
const LIMIT: usize = 60_000;

const SOURCES: &str = r#"
[[sources]]
vendor = "wolkvox"
name = "lim"
base_url = "{wolkvox}"
token = { file = "{token_file}" }
time_zone = "America/Bogota"
allow_insecure_http = true
request_timeout = "20s"
[sources.interactions]
interval = "300ms"
max_backoff = "300ms"
[sources.agents]
interval = "300ms"
max_backoff = "300ms"
"#;

/// `ccdc_poll_failures_total{kind="row_limit"}` of `endpoint` (0 while absent).
fn row_limit_failures(ops_url: &str, endpoint: &str) -> f64 {
    http_status(&format!("{ops_url}/metrics"))
        .1
        .lines()
        .find(|l| {
            l.starts_with("ccdc_poll_failures_total{")
                && l.contains("kind=\"row_limit\"")
                && l.contains(&format!("endpoint=\"{endpoint}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_at_the_vendors_row_limit_is_not_an_observation() {
    let small = || {
        vec![
            agent("1001", "Busy", &["c1", "c2"]),
            agent("1002", "Ready", &[]),
        ]
    };
    // At the limit: c2 is gone from 1001, 1002 is not listed, and 59,999 other agents are: read
    // as complete, c2 would end and 1002 would log out.
    let mut at_limit = vec![agent("1001", "Busy", &["c1"])];
    at_limit.extend((1..LIMIT).map(|i| agent(&format!("9{i:05}"), "Ready", &[])));
    assert_eq!(at_limit.len(), LIMIT);
    // Complete again: c2 is gone (it really ended), 1002 is listed as before.
    let after = vec![agent("1001", "Busy", &["c1"]), agent("1002", "Ready", &[])];
    let steps = vec![small(), at_limit, after];
    let s = Stack::start(
        "row-limit-token",
        SimMode::Scripted(steps),
        SOURCES,
        &[
            ("interactions", "ccdc.it.lim.interactions"),
            ("agent_status", "ccdc.it.lim.agent-status"),
        ],
    )
    .await;
    let _ccdc = s.ccdc(&[]);
    let mut interactions = s.reader("ccdc.it.lim.interactions").await;
    let mut statuses = s.reader("ccdc.it.lim.agent-status").await;
    let first = s.read::<InteractionEvent>(&mut interactions, 2);
    assert!(first
        .iter()
        .all(|(_, e)| e.event_type == InteractionEventType::Started));
    s.read::<AgentStatusEvent>(&mut statuses, 2);

    // Answers at the limit, on both endpoints, refused as `row_limit`.
    let limit_from = chrono::Utc::now().timestamp_millis();
    s.sim.state.advance();
    let start = Instant::now();
    for endpoint in ["real_time.php?api=interactions", "real_time.php?api=agents"] {
        while row_limit_failures(&s.ops_url, endpoint) < 2.0 {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "two answers of {endpoint} refused at the row limit\n{}",
                common::read_to_string(&s.log)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    interactions.poll_for(Duration::from_secs(1));
    statuses.poll_for(Duration::from_secs(1));
    assert_eq!(
        (interactions.records.len(), statuses.records.len()),
        (2, 2),
        "nothing derived from answers at the row limit"
    );
    let log = common::read_to_string(&s.log);
    assert!(
        log.contains("lim real_time.php?api=interactions: the answer holds 60000 rows"),
        "the refusal is logged, naming source, endpoint and row count: {log}"
    );

    // Complete answers: c2 ends, bounded by the last complete answer that listed it.
    let complete_from = chrono::Utc::now().timestamp_millis();
    s.sim.state.advance();
    let all = s.read::<InteractionEvent>(&mut interactions, 3);
    let ended: Vec<_> = all
        .iter()
        .filter(|(_, e)| e.event_type == InteractionEventType::Ended)
        .map(|(_, e)| e)
        .collect();
    assert_eq!(ended.len(), 1, "{all:?}");
    let c2 = ended[0];
    assert_eq!(c2.interaction_id, "c2");
    assert!(
        c2.ended_after.is_some_and(|t| t < limit_from),
        "ended after the last complete answer, not a refused one: {c2:?}"
    );
    assert!(c2.observed_at >= complete_from, "{c2:?}");
    // No agent logged out or changed status: 1002 was never really gone.
    statuses.poll_for(Duration::from_secs(2));
    assert_eq!(statuses.records.len(), 2, "no status change was invented");
}
