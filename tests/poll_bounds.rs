//! A poll is bounded in rows and in time, as configured and wired by `app::feeds`, against the
//! simulated vendors over real HTTP: a Wolkvox response with more interactions than
//! `max_rows_per_poll`, and a Comm100 `Agents` list whose pages come slowly past `poll_timeout`,
//! each fail their poll whole (`over_bound`, `timeout`) — no events, no state — and the next poll
//! diffs against the last good one.

use std::sync::Arc;
use std::time::Duration;

use ccdc::config::Config;
use ccdc::event::Event;
use ccdc::feed::{Feed, FeedError};
use ccdc::poller::{CycleOutcome, Poller};
use ccdc::simulator::comm100::{AWAY, ONLINE};
use ccdc::simulator::{
    C100Agent, Fault, Route, Scenario, SimAgent, SimInteraction, SimMode, SimServer, SimState,
};
use ccdc::store::{outbox, MemoryStore, Store};
use tokio::sync::Notify;

/// `sources` under a stdout configuration, the token in a file of `dir`.
fn config(dir: &tempfile::TempDir, sources: &str) -> Config {
    let token = dir.path().join("token");
    std::fs::write(&token, "tok").unwrap();
    let text = format!(
        "state_dir = {state:?}\noutput = \"stdout\"\n{}",
        sources.replace("TOKEN_FILE", &token.display().to_string()),
        state = dir.path().join("state").display().to_string(),
    );
    Config::from_toml_str(&text).unwrap()
}

/// The configured feed polling `endpoint`, in a poller over `store`.
fn poller(config: &Config, store: &Arc<MemoryStore>, endpoint: &str) -> Poller {
    let store: Arc<dyn Store> = store.clone();
    let (feed, poll) = ccdc::app::feeds(config, &store)
        .unwrap()
        .into_iter()
        .find(|(f, _)| f.endpoint() == endpoint)
        .unwrap_or_else(|| panic!("no feed polls {endpoint}"));
    let feed: Box<dyn Feed> = feed;
    Poller::new(
        feed,
        store,
        Arc::new(Notify::new()),
        poll.interval,
        poll.max_backoff,
    )
}

/// Every event in the outbox, in order.
fn events(store: &MemoryStore) -> Vec<Event> {
    store
        .outbox_after(None, 10_000)
        .unwrap()
        .into_iter()
        .map(|(_, b)| outbox::decode(&b).unwrap())
        .collect()
}

/// The agent-status events in the outbox: (agent, status).
fn statuses(store: &MemoryStore) -> Vec<(String, String)> {
    events(store)
        .into_iter()
        .filter_map(|e| match e {
            Event::AgentStatus(s) => Some((s.agent_id, s.status)),
            _ => None,
        })
        .collect()
}

fn agent(id: &str, interactions: usize) -> SimAgent {
    SimAgent {
        agent_id: id.into(),
        status: "Busy".into(),
        active_interactions: (0..interactions)
            .map(|i| SimInteraction {
                conn_id: format!("{id}-c{i}"),
                subject: "Hola".into(),
                fromname: "Ana".into(),
                date: "2026-11-21 10:15:00".into(),
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_with_more_rows_than_the_bound_fails_the_poll_and_the_next_one_goes_on() {
    // 6 interactions, then 12 (over the bound of 10), then 8.
    let steps = vec![
        vec![agent("a1", 3), agent("a2", 3)],
        vec![agent("a1", 6), agent("a2", 6)],
        vec![agent("a1", 4), agent("a2", 4)],
    ];
    let sim = SimServer::start(
        "127.0.0.1:0".parse().unwrap(),
        SimState::new("tok", SimMode::Scripted(steps)),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &dir,
        &format!(
            r#"[[sources]]
vendor = "wolkvox"
name = "wv"
base_url = "{}"
token = {{ file = "TOKEN_FILE" }}
time_zone = "America/Bogota"
allow_insecure_http = true
[sources.interactions]
max_rows_per_poll = 10
[sources.agents]
enabled = false
"#,
            sim.base_url()
        ),
    );
    let store = Arc::new(MemoryStore::default());
    let mut p = poller(&cfg, &store, "real_time.php?api=interactions");

    assert!(matches!(
        p.cycle(1_000).await.unwrap(),
        CycleOutcome::Committed { events: 6, .. }
    ));
    let state = store.get("wv/interactions").unwrap();
    sim.state.advance();
    let Err(FeedError::Source(e)) = p.cycle(2_000).await else {
        panic!("12 interactions over a bound of 10 must fail the poll")
    };
    assert_eq!(e.kind(), "over_bound");
    assert_eq!(
        e.to_string(),
        "wv real_time.php?api=interactions: the response has more than 10 rows (max_rows_per_poll); refused whole, nothing of this poll is used"
    );
    assert_eq!(events(&store).len(), 6, "no event from the refused poll");
    assert_eq!(
        store.get("wv/interactions").unwrap(),
        state,
        "state untouched"
    );

    // Back under the bound: diffed against the 6 of the first poll, not against a truncated 10.
    sim.state.advance();
    assert!(matches!(
        p.cycle(3_000).await.unwrap(),
        CycleOutcome::Committed { size: 8, .. }
    ));
    let mut later: Vec<String> = events(&store)[6..]
        .iter()
        .map(|e| match e {
            Event::Interaction(i) => format!("{} {}", i.event_type.as_str(), i.interaction_id),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    later.sort();
    assert_eq!(
        later,
        ["interaction-started a1-c3", "interaction-started a2-c3"]
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_whose_pages_come_slowly_is_abandoned_past_poll_timeout_and_commits_nothing() {
    let team = |a1_status| {
        ["a1", "a2", "a3", "a4", "a5", "a6"]
            .iter()
            .map(|id| C100Agent::new(id, id, if *id == "a1" { a1_status } else { ONLINE }, 0))
            .collect::<Vec<_>>()
    };
    let scenario = Scenario {
        comm100: vec![team(ONLINE), team(AWAY)],
        ..Default::default()
    };
    let sim = SimServer::start(
        "127.0.0.1:0".parse().unwrap(),
        SimState::new("tok", SimMode::Scenario(scenario)),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &dir,
        &format!(
            r#"[[sources]]
vendor = "comm100"
name = "c"
base_url = "{}"
token = {{ file = "TOKEN_FILE" }}
allow_insecure_http = true
page_size = 2
[sources.agents]
poll_timeout = "2s"
[sources.queue]
enabled = false
[sources.today]
enabled = false
[sources.right_now]
enabled = false
"#,
            sim.comm100_base_url()
        ),
    );
    let store = Arc::new(MemoryStore::default());
    let mut p = poller(&cfg, &store, "livechat/realTime/Agents");

    // 6 agents on 3 pages.
    assert!(matches!(
        p.cycle(1_000).await.unwrap(),
        CycleOutcome::Committed { size: 6, .. }
    ));
    assert_eq!(statuses(&store).len(), 6);
    let committed = events(&store).len();
    let state = store.get("c/agents").unwrap();
    // a1 goes away; the next poll's first two pages take 1.5 s each: 3 pages need over 3 s.
    sim.state.advance();
    sim.state.set_slow(Duration::from_millis(1_500));
    sim.state.inject_at(Route::Comm100Agents, Fault::Slow, 2);
    let Err(FeedError::Source(e)) = p.cycle(2_000).await else {
        panic!("a poll of over 3 s under a poll_timeout of 2 s must fail")
    };
    assert_eq!(e.kind(), "timeout");
    assert_eq!(
        e.to_string(),
        "c livechat/realTime/Agents: the poll took longer than poll_timeout (2s); abandoned, nothing committed"
    );
    assert_eq!(
        events(&store).len(),
        committed,
        "no event from the abandoned poll"
    );
    assert_eq!(store.get("c/agents").unwrap(), state, "state untouched");

    // The vendor answers promptly again: a1's change, once.
    assert!(matches!(
        p.cycle(3_000).await.unwrap(),
        CycleOutcome::Committed { size: 6, .. }
    ));
    assert_eq!(
        statuses(&store)[6..],
        [("a1".to_string(), AWAY.to_string())]
    );
    sim.stop().await;
}
