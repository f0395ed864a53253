use super::*;

fn meta() -> SourceMeta {
    SourceMeta {
        name: "s".into(),
        vendor: "comm100".into(),
    }
}

fn snap(at: i64, agents: &[(&str, &str)], previous: Option<&AgentSnapshot>) -> AgentSnapshot {
    let mut s = AgentSnapshot {
        observed_at: at,
        agents: agents
            .iter()
            .map(|(id, st)| {
                (
                    id.to_string(),
                    AgentState {
                        name: Some(format!("n{id}")),
                        status: st.to_string(),
                        ..Default::default()
                    },
                )
            })
            .collect(),
    };
    s.settle(previous, Listing::Whole);
    s
}

fn brief(ev: &[Event]) -> Vec<(String, Option<String>, String, bool)> {
    ev.iter()
        .map(|e| match e {
            Event::AgentStatus(a) => (
                a.agent_id.clone(),
                a.previous_status.clone(),
                a.status.clone(),
                a.initial,
            ),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn first_sight_is_initial_then_changes_absence_and_return() {
    let s1 = snap(1, &[("a", "Ready"), ("b", "Aux")], None);
    assert_eq!(
        brief(&diff_agents(&meta(), None, &s1)),
        vec![
            ("a".into(), None, "Ready".into(), true),
            ("b".into(), None, "Aux".into(), true)
        ]
    );
    let s2 = snap(2, &[("a", "Busy"), ("b", "Aux"), ("c", "Ready")], Some(&s1));
    assert_eq!(
        brief(&diff_agents(&meta(), Some(&s1), &s2)),
        vec![
            ("a".into(), Some("Ready".into()), "Busy".into(), false),
            ("c".into(), None, "Ready".into(), true)
        ]
    );
    let s3 = snap(3, &[("a", "Busy"), ("c", "Ready")], Some(&s2));
    assert_eq!(
        brief(&diff_agents(&meta(), Some(&s2), &s3)),
        vec![("b".into(), Some("Aux".into()), ABSENT.into(), false)]
    );
    assert_eq!(s3.present(), 2);
    // Still absent: nothing. Back: a change from ABSENT, not a new initial.
    let s4 = snap(4, &[("a", "Busy"), ("c", "Ready")], Some(&s3));
    assert!(diff_agents(&meta(), Some(&s3), &s4).is_empty());
    let s5 = snap(
        5,
        &[("a", "Busy"), ("b", "Ready"), ("c", "Ready")],
        Some(&s4),
    );
    assert_eq!(
        brief(&diff_agents(&meta(), Some(&s4), &s5)),
        vec![("b".into(), Some(ABSENT.into()), "Ready".into(), false)]
    );
}

#[test]
fn counters_alone_emit_nothing_and_ids_are_stable() {
    let s1 = snap(1, &[("a", "Ready")], None);
    let mut s2 = snap(2, &[("a", "Ready")], Some(&s1));
    s2.agents.get_mut("a").unwrap().comm100 = Some(Comm100AgentDetails {
        ongoing_chats: Some(3),
        ..Default::default()
    });
    assert!(diff_agents(&meta(), Some(&s1), &s2).is_empty());
    let s3 = snap(3, &[("a", "Busy")], Some(&s1));
    let a = diff_agents(&meta(), Some(&s1), &s3);
    let b = diff_agents(&meta(), Some(&s1), &snap(4, &[("a", "Busy")], Some(&s1)));
    assert_eq!(a[0].event_id(), b[0].event_id());
}

fn listed(at: i64, ids: &[&str], previous: &AgentSnapshot, listing: Listing) -> AgentSnapshot {
    let mut s = AgentSnapshot {
        observed_at: at,
        agents: ids
            .iter()
            .map(|id| {
                let state = AgentState {
                    status: "Online".into(),
                    ..Default::default()
                };
                (id.to_string(), state)
            })
            .collect(),
    };
    s.settle(Some(previous), listing);
    s
}

/// The interleaving an acceptance run found: pages of 2; between page 1 and page 2 of one poll,
/// a1 (page 1) logs out and a5 logs in at the end, so a3 slides from page 2 onto page 1 and is
/// on no page: that poll sees a1, a2, a4, a5 — exactly `total` distinct agents.
#[test]
fn an_agent_hidden_by_a_shift_between_pages_is_not_reported_absent() {
    let mut s0 = AgentSnapshot {
        observed_at: 1_000,
        ..Default::default()
    };
    for id in ["a1", "a2", "a3", "a4"] {
        s0.agents.insert(
            id.into(),
            AgentState {
                status: "Online".into(),
                ..Default::default()
            },
        );
    }
    s0.settle(None, Listing::Paged);
    let s1 = listed(2_000, &["a1", "a2", "a4", "a5"], &s0, Listing::Paged);
    let e1 = diff_agents(&meta(), Some(&s0), &s1);
    assert_eq!(brief(&e1), vec![("a5".into(), None, "Online".into(), true)]);
    assert_eq!(s1.agents["a3"].status, "Online", "a3 keeps its state");
    // The next poll lists everyone as they are now: a3 is back on page 1, a1 is missing once.
    let s2 = listed(3_000, &["a2", "a3", "a4", "a5"], &s1, Listing::Paged);
    assert!(
        diff_agents(&meta(), Some(&s1), &s2).is_empty(),
        "no a3 return, no a1 yet"
    );
    // A second miss: a1 is gone, between the last poll that listed it and the first that did not.
    let s3 = listed(4_000, &["a2", "a3", "a4", "a5"], &s2, Listing::Paged);
    let e3 = diff_agents(&meta(), Some(&s2), &s3);
    assert_eq!(
        brief(&e3),
        vec![("a1".into(), Some("Online".into()), ABSENT.into(), false)]
    );
    let Event::AgentStatus(a1) = &e3[0] else {
        panic!()
    };
    assert_eq!(a1.derivation, Derivation::ConfirmedAbsent);
    assert_eq!(
        (
            a1.status_since_after,
            a1.status_since_before,
            a1.status_since
        ),
        (Some(2_000), Some(3_000), Some(2_500))
    );
    // One response is one moment: a missing agent is gone at once.
    let s4 = listed(5_000, &["a2", "a3", "a4"], &s3, Listing::Whole);
    let e4 = diff_agents(&meta(), Some(&s3), &s4);
    assert_eq!(
        brief(&e4),
        vec![("a5".into(), Some("Online".into()), ABSENT.into(), false)]
    );
    let Event::AgentStatus(a5) = &e4[0] else {
        panic!()
    };
    assert_eq!(a5.derivation, Derivation::SnapshotDiff);
}

#[test]
fn status_times_are_bounded_by_polls_or_told_by_the_vendor() {
    let hinted = |at: i64, status: &str, since: Option<i64>| AgentSnapshot {
        observed_at: at,
        agents: [(
            "a".to_string(),
            AgentState {
                status: status.into(),
                since_hint: since,
                ..Default::default()
            },
        )]
        .into(),
    };
    // Initial: the vendor's time when it tells (Wolkvox, whole seconds: the status began in
    // the second before 4,000), else unknown.
    let mut s1 = hinted(10_000, "Ready", Some(4_000));
    s1.settle(None, Listing::Whole);
    assert_eq!(s1.agents["a"].since, Some(3_500));
    assert_eq!(
        s1.agents["a"].since_bounds,
        Bounds {
            after: Some(3_001),
            before: Some(4_000)
        }
    );
    let mut quiet = hinted(10_000, "Ready", None);
    quiet.settle(None, Listing::Whole);
    assert_eq!(quiet.agents["a"].since, None);
    // The same status later keeps its start, whatever the vendor's counter says now.
    let mut s2 = hinted(20_000, "Ready", Some(19_000));
    s2.settle(Some(&s1), Listing::Whole);
    assert_eq!(s2.agents["a"].since, Some(3_500));
    // A change whose vendor counter points before the window (18,000 < 20,000): the polls win.
    let mut s3 = hinted(30_000, "Busy", Some(18_000));
    s3.settle(Some(&s2), Listing::Whole);
    let e = diff_agents(&meta(), Some(&s2), &s3);
    let Event::AgentStatus(busy) = &e[0] else {
        panic!()
    };
    assert_eq!(
        busy.status_since,
        Some(25_000),
        "a vendor counter outside the window: the polls' window"
    );
    assert_eq!(busy.previous_status_since, Some(3_500));
    assert_eq!(busy.previous_status_duration_ms, Some(21_500));
    // A vendor counter inside the window: the second it names.
    let mut inside = hinted(30_000, "Busy", Some(25_000));
    inside.settle(Some(&s2), Listing::Whole);
    assert_eq!(
        inside.agents["a"].since_bounds,
        Bounds {
            after: Some(24_001),
            before: Some(25_000)
        }
    );
    // Without the vendor's time: the middle of the window, with its bounds.
    let mut s4 = hinted(40_000, "Away", None);
    s4.settle(Some(&s3), Listing::Whole);
    let e = diff_agents(&meta(), Some(&s3), &s4);
    let Event::AgentStatus(away) = &e[0] else {
        panic!()
    };
    assert_eq!(
        (
            away.status_since,
            away.status_since_after,
            away.status_since_before
        ),
        (Some(35_000), Some(30_000), Some(40_000))
    );
    assert_eq!(away.previous_status_duration_ms, Some(10_000));
    assert_eq!(
        (
            away.previous_status_duration_min_ms,
            away.previous_status_duration_max_ms
        ),
        (Some(0), Some(20_000))
    );
    assert_eq!(away.derivation, Derivation::SnapshotDiff);
}

/// A fresh observation of agent `a` in `status` (not settled yet).
fn agent_a(at: i64, status: &str) -> AgentSnapshot {
    let state = AgentState {
        status: status.into(),
        ..Default::default()
    };
    AgentSnapshot {
        observed_at: at,
        agents: [("a".to_string(), state)].into(),
    }
}

#[test]
fn a_change_seen_after_a_paged_miss_is_bounded_by_the_last_poll_that_listed_the_agent() {
    let mut s0 = agent_a(1_000, "Online");
    s0.settle(None, Listing::Paged);
    let s1 = listed(2_000, &[], &s0, Listing::Paged); // missed once: kept
    let mut s2 = agent_a(3_000, "Away");
    s2.settle(Some(&s1), Listing::Paged);
    let e = diff_agents(&meta(), Some(&s1), &s2);
    let Event::AgentStatus(away) = &e[0] else {
        panic!()
    };
    assert_eq!(
        (away.status_since_after, away.status_since_before),
        (Some(1_000), Some(3_000)),
        "the 2,000 poll did not list the agent: the change may be from before it"
    );
}

#[test]
fn an_agent_missing_from_a_partial_list_is_never_judged() {
    let mut s0 = agent_a(1_000, "Online");
    s0.settle(None, Listing::Whole);
    let mut s = s0;
    for at in [2_000, 3_000, 4_000] {
        let next = listed(at, &[], &s, Listing::Partial);
        assert!(diff_agents(&meta(), Some(&s), &next).is_empty(), "at {at}");
        assert_eq!(next.agents["a"].missed, 0);
        s = next;
    }
}
