//! `agent-state` through the real feed, poller and outbox (in-memory store, no broker): the
//! records are committed with the feed's state and events or not at all, the records table
//! survives a restart, and the Wolkvox join only ever sees committed interactions
//! (`ccdc::sources::agent_state`).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Notify;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ccdc::config::AgentStateConfig;
use ccdc::diff::agents::{diff_agents, AgentSnapshot, AgentState, Listing};
use ccdc::diff::{
    diff_interactions_events, ActiveInteraction, InteractionKey, InteractionSnapshot,
};
use ccdc::event::agent_state::{AgentStateReason, StatusCategory};
use ccdc::event::{Event, SourceMeta};
use ccdc::feed::{FeedError, SnapshotFeed};
use ccdc::poller::{CycleOutcome, Poller};
use ccdc::sources::agent_state::{
    table_key, InteractionsView, PublishInteractions, WithAgentState,
};
use ccdc::sources::scripted::{Scripted, Step};
use ccdc::sources::{FeedName, SnapshotSource, SourceError};
use ccdc::store::{outbox, MemoryStore, Store};

fn meta() -> SourceMeta {
    SourceMeta {
        name: "ops".into(),
        vendor: "wolkvox".into(),
    }
}

/// One scripted answer: `(agent, status)` rows, or `None` for a failed poll.
type Rows = Option<Vec<(&'static str, &'static str)>>;
type Script = Vec<Rows>;

/// An agents endpoint answering a script of `(agent, status)` lists (`None`: HTTP 500), settled
/// like the Wolkvox source does (one response: a missing agent is absent).
struct Agents {
    meta: SourceMeta,
    script: Mutex<VecDeque<Rows>>,
}

#[async_trait]
impl SnapshotSource for Agents {
    type Snapshot = AgentSnapshot;
    fn name(&self) -> FeedName<'_> {
        FeedName {
            meta: &self.meta,
            endpoint: "agents",
            stream: "agents",
        }
    }
    async fn fetch(
        &self,
        observed_at: i64,
        previous: Option<&AgentSnapshot>,
    ) -> Result<AgentSnapshot, SourceError> {
        let next = self.script.lock().unwrap().pop_front().flatten();
        let rows = next.ok_or_else(|| SourceError::Http {
            source_name: "ops".into(),
            endpoint: "agents".into(),
            status: 500,
            detail: "scripted failure".into(),
        })?;
        let mut s = AgentSnapshot {
            observed_at,
            agents: rows
                .iter()
                .map(|(id, status)| {
                    let state = AgentState {
                        status: status.to_string(),
                        ..Default::default()
                    };
                    (id.to_string(), state)
                })
                .collect(),
        };
        s.settle(previous, Listing::Whole);
        Ok(s)
    }
    fn diff(&self, previous: Option<&AgentSnapshot>, current: &AgentSnapshot) -> Vec<Event> {
        diff_agents(&self.meta, previous, current)
    }
    fn size(&self, s: &AgentSnapshot) -> usize {
        s.present()
    }
}

fn agents_poller(
    script: Script,
    store: &Arc<MemoryStore>,
    refresh_every: u32,
    join: Option<InteractionsView>,
) -> Poller {
    let config = AgentStateConfig {
        refresh_every_polls: refresh_every,
        ..Default::default()
    };
    let source = Agents {
        meta: meta(),
        script: Mutex::new(script.into()),
    };
    let source = WithAgentState::new(source, &config, join);
    Poller::new(
        Box::new(SnapshotFeed::new(Arc::new(source), 2)),
        store.clone(),
        Arc::new(Notify::new()),
        Duration::from_secs(1),
        Duration::from_secs(1),
    )
}

fn outbox(store: &MemoryStore) -> Vec<Event> {
    store
        .outbox_after(None, 1000)
        .unwrap()
        .into_iter()
        .map(|(_, b)| outbox::decode(&b).unwrap())
        .collect()
}

/// `(type, agent, reason)` of every outbox event in order.
fn brief(store: &MemoryStore) -> Vec<(&'static str, String, Option<AgentStateReason>)> {
    outbox(store)
        .iter()
        .map(|e| match e {
            Event::AgentStatus(a) => (e.type_name(), a.agent_id.clone(), None),
            Event::AgentState(a) => (e.type_name(), a.agent_id.clone(), Some(a.reason)),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn records_are_committed_with_the_state_or_not_at_all_and_survive_a_restart() {
    use AgentStateReason::*;
    let store = Arc::new(MemoryStore::default());
    let script: Script = vec![
        Some(vec![("a", "Ready"), ("b", "Ready")]),
        None,
        Some(vec![("a", "Aux - Break"), ("b", "Ready")]),
    ];
    let mut p = agents_poller(script, &store, 3, None);
    p.cycle(1_000).await.unwrap();
    let status = "agent-status-changed";
    assert_eq!(
        brief(&store),
        vec![
            (status, "a".into(), None),
            (status, "b".into(), None),
            ("agent-state", "a".into(), Some(Initial)),
            ("agent-state", "b".into(), Some(Initial)),
        ]
    );
    let table = store.get(&table_key("ops/agents")).unwrap().unwrap();
    // A failed poll: no record, the table untouched.
    assert!(matches!(p.cycle(2_000).await, Err(FeedError::Source(_))));
    assert_eq!(outbox(&store).len(), 4);
    assert_eq!(store.get(&table_key("ops/agents")).unwrap().unwrap(), table);
    p.cycle(3_000).await.unwrap();
    let events = outbox(&store);
    let Event::AgentState(a) = &events[5] else {
        panic!("{:?}", events[5])
    };
    assert_eq!((a.agent_id.as_str(), a.reason), ("a", Changed));
    assert_eq!(a.status_category, StatusCategory::Away);
    assert_eq!(
        a.event_id,
        ccdc::event::id::agent_state("ops", "a", "1000").to_string()
    );
    assert_eq!(events.len(), 6, "b unchanged, its refresh not due yet");

    // A restart resumes from the stored table: no second INITIAL, and b's refresh count goes on
    // (1 poll, then 2 here, the 3rd is due).
    let script: Script = vec![
        Some(vec![("a", "Aux - Break"), ("b", "Ready")]),
        Some(vec![("a", "Aux - Break"), ("b", "Ready")]),
    ];
    let mut p = agents_poller(script, &store, 3, None);
    p.load().unwrap();
    p.cycle(4_000).await.unwrap();
    assert_eq!(outbox(&store).len(), 6, "nothing new after the restart");
    p.cycle(5_000).await.unwrap();
    assert_eq!(
        brief(&store)[6..],
        [("agent-state", "b".into(), Some(Refresh))]
    );
}

#[tokio::test]
async fn an_unconfirmed_empty_poll_publishes_no_offline_records() {
    let store = Arc::new(MemoryStore::default());
    let script: Script = vec![Some(vec![("a", "Ready")]), Some(vec![]), Some(vec![])];
    let mut p = agents_poller(script, &store, 0, None);
    p.cycle(1_000).await.unwrap();
    assert!(matches!(
        p.cycle(2_000).await.unwrap(),
        CycleOutcome::Held { .. }
    ));
    assert_eq!(outbox(&store).len(), 2, "nothing from the held poll");
    p.cycle(3_000).await.unwrap();
    let events = outbox(&store);
    let Event::AgentState(a) = events.last().unwrap() else {
        panic!()
    };
    assert_eq!(
        (a.listed, a.status_category),
        (false, StatusCategory::Offline)
    );
}

fn interactions(pairs: &[(&str, &str)]) -> InteractionSnapshot {
    InteractionSnapshot {
        held: Default::default(),
        observed_at: 0,
        interactions: pairs
            .iter()
            .map(|(agent, conn)| {
                let key = InteractionKey {
                    interaction_id: conn.to_string(),
                    agent_id: agent.to_string(),
                };
                (key, ActiveInteraction::default())
            })
            .collect(),
    }
}

fn interactions_poller(
    script: Vec<Step<InteractionSnapshot>>,
    store: &Arc<MemoryStore>,
    view: &InteractionsView,
) -> Poller {
    let inner = Scripted::new(
        meta(),
        script,
        diff_interactions_events,
        |s: &InteractionSnapshot| s.interactions.len(),
        |s, at| s.observed_at = at,
    );
    let source = PublishInteractions {
        inner,
        view: view.clone(),
    };
    Poller::new(
        Box::new(SnapshotFeed::new(Arc::new(source), 2)),
        store.clone(),
        Arc::new(Notify::new()),
        Duration::from_secs(1),
        Duration::from_secs(1),
    )
}

fn ids(view: &InteractionsView, agent: &str) -> Option<Vec<String>> {
    view.current()
        .map(|v| v.by_agent.get(agent).cloned().unwrap_or_default())
}

#[tokio::test]
async fn the_join_sees_committed_interactions_only_and_again_after_a_restart() {
    let store = Arc::new(MemoryStore::default());
    let view = InteractionsView::default();
    let mut p = interactions_poller(
        vec![
            Step::Snapshot(interactions(&[("a", "c1")])),
            Step::Fail("boom"),
            Step::Snapshot(interactions(&[])),
            Step::Snapshot(interactions(&[("a", "c2")])),
        ],
        &store,
        &view,
    );
    assert_eq!(ids(&view, "a"), None, "nothing committed yet");
    p.cycle(1_000).await.unwrap();
    assert_eq!(ids(&view, "a"), Some(vec!["c1".to_string()]));
    assert!(p.cycle(2_000).await.is_err());
    // An empty snapshot not believed yet: the view keeps the committed one.
    assert!(matches!(
        p.cycle(3_000).await.unwrap(),
        CycleOutcome::Held { .. }
    ));
    assert_eq!(ids(&view, "a"), Some(vec!["c1".to_string()]));
    assert_eq!(view.current().unwrap().observed_at, 1_000);
    p.cycle(4_000).await.unwrap();
    assert_eq!(ids(&view, "a"), Some(vec!["c2".to_string()]));

    // The agents feed reads it...
    let script: Script = vec![Some(vec![("a", "Ready")])];
    let mut agents = agents_poller(script, &store, 0, Some(view.clone()));
    agents.cycle(5_000).await.unwrap();
    let Some(Event::AgentState(a)) = outbox(&store).pop() else {
        panic!()
    };
    assert_eq!(a.active_interaction_ids, Some(vec!["c2".to_string()]));
    assert_eq!(a.interactions_observed_at, Some(4_000));
    assert_eq!(a.status_category, StatusCategory::Busy);

    // ...and after a restart the view is the stored snapshot before any poll.
    let fresh = InteractionsView::default();
    let mut p = interactions_poller(vec![], &store, &fresh);
    p.load().unwrap();
    assert_eq!(ids(&fresh, "a"), Some(vec!["c2".to_string()]));
}
