use super::*;
use crate::diff::agents::{AgentState, Listing};
use crate::diff::{ActiveInteraction, InteractionKey};
use crate::event::agent_state::AgentStateReason::{self, Changed, Initial, Refresh};
use crate::event::agent_state::StatusCategory::{self, Available, Away, Busy, Offline, Unknown};

mod vendors;

fn meta() -> SourceMeta {
    SourceMeta {
        name: "ops".into(),
        vendor: "wolkvox".into(),
    }
}

/// A fresh Wolkvox observation: `(agent, status, calls)`, settled against `previous`.
fn agents(
    at: i64,
    rows: &[(&str, &str, i64)],
    previous: Option<&AgentSnapshot>,
    listing: Listing,
) -> AgentSnapshot {
    let mut s = AgentSnapshot {
        observed_at: at,
        agents: rows
            .iter()
            .map(|(id, status, calls)| {
                let state = AgentState {
                    name: Some(format!("Agent {id}")),
                    status: status.to_string(),
                    status_name: Some(status.to_string()),
                    wolkvox: Some(WolkvoxAgentDetails {
                        calls: Some(*calls),
                        // A counter that runs with the clock: different on every poll.
                        time_state_now_s: Some(at / 1000),
                        raw: format!("{{\"agent_id\":\"{id}\",\"at\":{at}}}"),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                (id.to_string(), state)
            })
            .collect(),
    };
    s.settle(previous, listing);
    s
}

fn interactions(at: i64, pairs: &[(&str, &str)]) -> AgentInteractions {
    let snap = InteractionSnapshot {
        held: Default::default(),
        observed_at: at,
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
    };
    AgentInteractions::of(&snap)
}

/// Runs polls of one feed through [`derive`], keeping the table as a feed would.
struct Feed {
    table: Option<AgentStateTable>,
    previous_at: Option<i64>,
    refresh_every: u32,
    categories: BTreeMap<String, StatusCategory>,
}

impl Feed {
    fn new(refresh_every: u32) -> Self {
        Feed {
            table: None,
            previous_at: None,
            refresh_every,
            categories: BTreeMap::new(),
        }
    }

    fn poll(
        &mut self,
        snapshot: &impl AgentViews,
        join: Option<&AgentInteractions>,
    ) -> Vec<AgentStateRecord> {
        let m = meta();
        let poll = Poll {
            meta: &m,
            previous_at: self.previous_at,
            observed_at: snapshot.observed_at(),
            categories: &self.categories,
            refresh_every: self.refresh_every,
        };
        let (table, events) = derive(&poll, self.table.as_ref(), snapshot.agent_views(join));
        self.table = Some(table);
        self.previous_at = Some(snapshot.observed_at());
        events
            .into_iter()
            .map(|e| match e {
                Event::AgentState(r) => *r,
                other => panic!("{other:?}"),
            })
            .collect()
    }
}

fn brief(records: &[AgentStateRecord]) -> Vec<(&str, AgentStateReason, StatusCategory)> {
    records
        .iter()
        .map(|r| (r.agent_id.as_str(), r.reason, r.status_category))
        .collect()
}

#[test]
fn first_records_join_the_interactions_and_map_the_categories() {
    let mut feed = Feed::new(0);
    let s1 = agents(
        10_000,
        &[("a", "Ready", 1), ("b", "Aux - Break", 0)],
        None,
        Listing::Whole,
    );
    let join = interactions(9_000, &[("a", "c2"), ("a", "c1"), ("z", "c9")]);
    let r = feed.poll(&s1, Some(&join));
    // An available agent with an interaction is busy; the ids are sorted.
    assert_eq!(brief(&r), vec![("a", Initial, Busy), ("b", Initial, Away)]);
    let a = &r[0];
    assert_eq!(
        a.active_interaction_ids,
        Some(vec!["c1".to_string(), "c2".to_string()])
    );
    assert_eq!(
        (
            a.active_interaction_count,
            a.interactions_observed_at,
            a.observed_at
        ),
        (Some(2), Some(9_000), 10_000)
    );
    assert_eq!((a.status.as_deref(), a.listed), (Some("Ready"), true));
    assert_eq!(a.derivation, Derivation::InitialSnapshot);
    assert_eq!(
        a.event_id,
        id::agent_state("ops", "a", "initial").to_string()
    );
    assert_eq!(a.wolkvox.as_ref().and_then(|w| w.calls), Some(1));
    assert_eq!(r[1].active_interaction_ids, Some(vec![]));
    assert_eq!(r[1].active_interaction_count, Some(0));
    // Without the interactions feed: unknown, not zero.
    let r = Feed::new(0).poll(&s1, None);
    assert_eq!(r[0].active_interaction_ids, None);
    assert_eq!(r[0].active_interaction_count, None);
    assert_eq!(r[0].status_category, Available);
}

#[test]
fn a_record_follows_every_change_and_nothing_else() {
    let mut feed = Feed::new(0);
    let join = interactions(1, &[("a", "c1")]);
    let s1 = agents(
        10_000,
        &[("a", "Ready", 1), ("b", "Ready", 0)],
        None,
        Listing::Whole,
    );
    feed.poll(&s1, Some(&join));
    // Only the running counters moved: nothing.
    let s2 = agents(
        20_000,
        &[("a", "Ready", 1), ("b", "Ready", 0)],
        Some(&s1),
        Listing::Whole,
    );
    assert!(feed.poll(&s2, Some(&join)).is_empty());
    // A call counted, a status, an interaction: one record each, with this poll's id.
    let s3 = agents(
        30_000,
        &[("a", "Ready", 2), ("b", "Ready", 0)],
        Some(&s2),
        Listing::Whole,
    );
    let r = feed.poll(&s3, Some(&join));
    assert_eq!(brief(&r), vec![("a", Changed, Busy)]);
    assert_eq!(
        r[0].event_id,
        id::agent_state("ops", "a", "20000").to_string()
    );
    assert_eq!(r[0].derivation, Derivation::SnapshotDiff);
    let s4 = agents(
        40_000,
        &[("a", "Ready", 2), ("b", "Aux", 0)],
        Some(&s3),
        Listing::Whole,
    );
    let moved = interactions(35_000, &[("b", "c1")]);
    let r = feed.poll(&s4, Some(&moved));
    assert_eq!(
        brief(&r),
        vec![("a", Changed, Available), ("b", Changed, Away)]
    );
    assert_eq!(r[1].active_interaction_ids, Some(vec!["c1".to_string()]));
    // The status time is the agent-status one: b's Aux began between the two polls.
    assert_eq!(
        (
            r[1].status_since_after,
            r[1].status_since,
            r[1].status_since_before
        ),
        (Some(30_000), Some(35_000), Some(40_000))
    );
    // Derived again from the same base (a crash before the commit): the same ids.
    let mut again = Feed::new(0);
    again.table = feed.table.clone();
    again.previous_at = Some(40_000);
    let s5 = agents(
        50_000,
        &[("a", "Busy", 2), ("b", "Aux", 0)],
        Some(&s4),
        Listing::Whole,
    );
    let s5b = agents(
        51_000,
        &[("a", "Busy", 2), ("b", "Aux", 0)],
        Some(&s4),
        Listing::Whole,
    );
    let (x, y) = (feed.poll(&s5, Some(&moved)), again.poll(&s5b, Some(&moved)));
    assert_eq!(x[0].event_id, y[0].event_id);
}

#[test]
fn unchanged_agents_are_refreshed_every_n_polls_and_a_change_restarts_the_count() {
    let mut feed = Feed::new(3);
    let mut prev = agents(
        1_000,
        &[("a", "Ready", 0), ("b", "Ready", 0)],
        None,
        Listing::Whole,
    );
    feed.poll(&prev, None);
    let mut seen = Vec::new();
    for (i, a_status) in ["Ready", "Busy", "Busy", "Busy", "Busy", "Busy"]
        .iter()
        .enumerate()
    {
        let at = 2_000 + 1_000 * i as i64;
        let s = agents(
            at,
            &[("a", a_status, 0), ("b", "Ready", 0)],
            Some(&prev),
            Listing::Whole,
        );
        for r in feed.poll(&s, None) {
            seen.push((at, r.agent_id.clone(), r.reason));
        }
        prev = s;
    }
    assert_eq!(
        seen,
        vec![
            (3_000, "a".to_string(), Changed),
            (4_000, "b".to_string(), Refresh),
            (6_000, "a".to_string(), Refresh),
            (7_000, "b".to_string(), Refresh),
        ]
    );
    let ids: std::collections::BTreeSet<_> = seen.iter().map(|(at, a, _)| (at, a)).collect();
    assert_eq!(
        ids.len(),
        seen.len(),
        "every refresh is a record of its own poll"
    );
}

#[test]
fn a_logged_out_agent_gets_an_offline_record_and_keeps_being_refreshed() {
    let mut feed = Feed::new(2);
    let s1 = agents(
        1_000,
        &[("a", "Ready", 0), ("b", "Ready", 0)],
        None,
        Listing::Whole,
    );
    feed.poll(&s1, None);
    let s2 = agents(2_000, &[("a", "Ready", 0)], Some(&s1), Listing::Whole);
    let r = feed.poll(&s2, None);
    assert_eq!(brief(&r), vec![("b", Changed, Offline)]);
    let b = &r[0];
    assert_eq!(
        (b.status.as_deref(), b.listed, b.wolkvox.is_none()),
        (Some(ABSENT), false, true)
    );
    assert_eq!(b.agent_name.as_deref(), Some("Agent b"));
    assert_eq!(
        (b.status_since_after, b.status_since_before),
        (Some(1_000), Some(2_000))
    );
    let s3 = agents(3_000, &[("a", "Ready", 0)], Some(&s2), Listing::Whole);
    assert_eq!(
        brief(&feed.poll(&s3, None)),
        vec![("a", Refresh, Available)]
    );
    let s4 = agents(4_000, &[("a", "Ready", 0)], Some(&s3), Listing::Whole);
    let r = feed.poll(&s4, None);
    assert_eq!(brief(&r), vec![("b", Refresh, Offline)]);
    assert_eq!(r[0].observed_at, 4_000);
    // Back: a change.
    let s5 = agents(
        5_000,
        &[("a", "Ready", 0), ("b", "Ready", 0)],
        Some(&s4),
        Listing::Whole,
    );
    assert_eq!(
        brief(&feed.poll(&s5, None)),
        vec![("a", Refresh, Available), ("b", Changed, Available)]
    );
}

#[test]
fn a_paged_miss_publishes_nothing_until_the_absence_is_confirmed() {
    let mut feed = Feed::new(1);
    let s1 = agents(
        1_000,
        &[("a", "Online", 0), ("b", "Online", 0)],
        None,
        Listing::Paged,
    );
    feed.poll(&s1, None);
    // b missing once from a paged list: not judged, no record for it (not even the refresh due).
    let s2 = agents(2_000, &[("a", "Online", 0)], Some(&s1), Listing::Paged);
    assert_eq!(
        brief(&feed.poll(&s2, None)),
        vec![("a", Refresh, Available)]
    );
    // Missing again: confirmed absent.
    let s3 = agents(3_000, &[("a", "Online", 0)], Some(&s2), Listing::Paged);
    let r = feed.poll(&s3, None);
    assert_eq!(
        brief(&r),
        vec![("a", Refresh, Available), ("b", Changed, Offline)]
    );
    assert_eq!(r[1].derivation, Derivation::ConfirmedAbsent);
    // Absent agents are refreshed only by a whole listing: a paged one may hide a return.
    let s4 = agents(4_000, &[("a", "Online", 0)], Some(&s3), Listing::Paged);
    assert_eq!(
        brief(&feed.poll(&s4, None)),
        vec![("a", Refresh, Available)]
    );
    let s5 = agents(5_000, &[("a", "Online", 0)], Some(&s4), Listing::Whole);
    assert_eq!(
        brief(&feed.poll(&s5, None)),
        vec![("a", Refresh, Available), ("b", Refresh, Offline)]
    );
    // A partial list (more pages than read): an agent not read is not judged at all.
    let s6 = agents(6_000, &[("b", "Online", 0)], Some(&s5), Listing::Partial);
    assert_eq!(
        brief(&feed.poll(&s6, None)),
        vec![("b", Changed, Available)]
    );
}

#[test]
fn the_fingerprint_ignores_id_poll_reason_and_running_counters() {
    let s = agents(1_000, &[("a", "Ready", 3)], None, Listing::Whole);
    let r = Feed::new(0).poll(&s, None).remove(0);
    let mut other = r.clone();
    other.event_id = "x".into();
    other.observed_at += 5;
    other.reason = Refresh;
    other.interactions_observed_at = Some(77);
    if let Some(w) = other.wolkvox.as_mut() {
        w.time_state_now_s = Some(999);
        w.login_time_s = Some(1);
        w.raw = "{}".into();
    }
    assert_eq!(fingerprint(&r), fingerprint(&other));
    other.agent_name = Some("renamed".into());
    assert_ne!(fingerprint(&r), fingerprint(&other));
}

#[test]
fn the_table_round_trips_through_the_store_encoding() {
    let mut feed = Feed::new(0);
    feed.poll(
        &agents(1_000, &[("a", "Ready", 0)], None, Listing::Whole),
        None,
    );
    let t = feed.table.unwrap();
    let back: AgentStateTable = serde_json::from_slice(&serde_json::to_vec(&t).unwrap()).unwrap();
    assert_eq!(back, t);
}
