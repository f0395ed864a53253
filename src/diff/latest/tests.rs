use super::*;
use InteractionEventType::*;

fn meta() -> SourceMeta {
    SourceMeta {
        name: "v".into(),
        vendor: "vonage".into(),
    }
}

/// A row of `guid`, ended or not, started (by the vendor) at 5.
fn row(guid: &str, has_ended: bool) -> LatestInteraction {
    LatestInteraction {
        guid: guid.into(),
        start: Some(5),
        start_raw: Some("x".into()),
        has_ended,
        first_seen: None,
        seen_after: None,
    }
}

fn snap(at: i64, agents: &[(&str, Option<(&str, bool)>)]) -> LatestSnapshot {
    LatestSnapshot {
        observed_at: at,
        not_found: Default::default(),
        listed: Default::default(),
        answered: Default::default(),
        hidden: Default::default(),
        unobserved_since: BTreeMap::new(),
        agents: agents
            .iter()
            .map(|(a, l)| (a.to_string(), l.map(|(g, e)| row(g, e))))
            .collect(),
    }
}

fn brief(ev: &[Event]) -> Vec<(InteractionEventType, String, String, bool)> {
    ev.iter()
        .map(|e| match e {
            Event::Interaction(i) => (
                i.event_type,
                i.agent_id.clone(),
                i.interaction_id.clone(),
                i.initial,
            ),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn first_observation_reports_only_running_interactions() {
    let s = snap(
        1,
        &[
            ("a", Some(("g1", false))),
            ("b", Some(("g2", true))),
            ("c", None),
        ],
    );
    let ev = diff_latest(&meta(), None, &s);
    assert_eq!(brief(&ev), vec![(Started, "a".into(), "g1".into(), true)]);
    let Event::Interaction(i) = &ev[0] else {
        unreachable!()
    };
    assert!(i.latest_only);
}

/// The snapshot polled after `prev`, settled against it as the source does.
fn next(prev: &LatestSnapshot, at: i64, agents: &[(&str, Option<(&str, bool)>)]) -> LatestSnapshot {
    let mut s = snap(at, agents);
    s.settle(Some(prev));
    s
}

/// `(type, guid, derivation, ended_after, ended_before)` of an event.
type End = (
    InteractionEventType,
    String,
    Derivation,
    Option<i64>,
    Option<i64>,
);

fn ends(ev: &[Event]) -> Vec<End> {
    ev.iter()
        .map(|e| match e {
            Event::Interaction(i) => (
                i.event_type,
                i.interaction_id.clone(),
                i.derivation,
                i.ended_after,
                i.ended_before,
            ),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn ended_flag_new_guid_and_short_interactions() {
    let s1 = snap(
        1,
        &[
            ("a", Some(("g1", false))),
            ("b", Some(("g2", false))),
            ("c", None),
        ],
    );
    let s2 = next(
        &s1,
        2,
        &[
            ("a", Some(("g1", true))),
            ("b", Some(("g3", false))),
            ("c", Some(("g4", true))),
        ],
    );
    // b's g2 is not shown any more, but g3 runs: g2 may still run too (hidden, no event).
    assert_eq!(
        brief(&diff_latest(&meta(), Some(&s1), &s2)),
        vec![
            (Ended, "a".into(), "g1".into(), false),
            (Started, "b".into(), "g3".into(), false),
            (Started, "c".into(), "g4".into(), false),
            (Ended, "c".into(), "g4".into(), false),
        ]
    );
    assert_eq!(s2.hidden["b"][0].interaction.guid, "g2");
    assert_eq!(s2.hidden["b"][0].last_shown, 1);
    // Nothing changes: nothing happens; an ended interaction replaced by a running one starts it.
    let s3 = next(
        &s2,
        3,
        &[
            ("a", Some(("g1", true))),
            ("b", Some(("g3", false))),
            ("c", Some(("g4", true))),
        ],
    );
    assert!(diff_latest(&meta(), Some(&s2), &s3).is_empty());
    let s4 = next(&s2, 4, &[("a", Some(("g5", false)))]);
    assert_eq!(
        brief(&diff_latest(&meta(), Some(&s2), &s4)),
        vec![(Started, "a".into(), "g5".into(), false)]
    );
}

#[test]
fn two_running_interactions_shown_in_turn_start_once_and_end_when_none_runs() {
    use Derivation::*;
    let s1 = snap(10, &[("a", Some(("chat", false)))]);
    // An email starts; the vendor now shows it (its state changed last): the chat still runs.
    let s2 = next(&s1, 20, &[("a", Some(("email", false)))]);
    assert_eq!(
        brief(&diff_latest(&meta(), Some(&s1), &s2)),
        vec![(Started, "a".into(), "email".into(), false)]
    );
    // The chat is shown again, then the email: neither starts again, neither ends.
    let s3 = next(&s2, 30, &[("a", Some(("chat", false)))]);
    assert!(diff_latest(&meta(), Some(&s2), &s3).is_empty());
    let s4 = next(&s3, 40, &[("a", Some(("email", false)))]);
    assert!(diff_latest(&meta(), Some(&s3), &s4).is_empty());
    assert_eq!(s4.hidden["a"][0].interaction.guid, "chat");
    assert_eq!(s4.hidden["a"][0].last_shown, 30);
    // The email ends, shown ended: no interaction runs any more, so the chat has ended too,
    // after the last poll that showed it running.
    let s5 = next(&s4, 50, &[("a", Some(("email", true)))]);
    assert_eq!(
        ends(&diff_latest(&meta(), Some(&s4), &s5)),
        vec![
            (Ended, "chat".into(), ReplacedByNext, Some(30), Some(50)),
            (Ended, "email".into(), VendorEndedFlag, Some(40), Some(50)),
        ]
    );
    assert!(s5.hidden.is_empty());
    // A hidden one shown again already ended ends by its flag, after it was last shown; an
    // agent that then has no interaction at all ends the one it showed running.
    let s6 = next(&s4, 50, &[("a", Some(("chat", true)))]);
    assert_eq!(
        ends(&diff_latest(&meta(), Some(&s4), &s6)),
        vec![
            (Ended, "email".into(), ReplacedByNext, Some(40), Some(50)),
            (Ended, "chat".into(), VendorEndedFlag, Some(30), Some(50)),
        ]
    );
    let s7 = next(&s1, 20, &[("a", None)]);
    assert_eq!(
        ends(&diff_latest(&meta(), Some(&s1), &s7)),
        vec![(Ended, "chat".into(), ReplacedByNext, Some(10), Some(20))]
    );
}

#[test]
fn an_unanswered_agent_keeps_its_hidden_ones_and_the_longest_hidden_end_beyond_the_bound() {
    let s1 = snap(10, &[("a", Some(("g0", false)))]);
    let mut prev = next(&s1, 20, &[("a", Some(("g1", false)))]);
    let mut s = prev.clone();
    for i in 2..=MAX_HIDDEN_PER_AGENT as i64 {
        s = next(
            &prev,
            10 * (i + 1),
            &[("a", Some((&format!("g{i}"), false)))],
        );
        let ev = diff_latest(&meta(), Some(&prev), &s);
        assert_eq!(
            brief(&ev),
            vec![(Started, "a".into(), format!("g{i}"), false)],
            "{i}"
        );
        prev = s.clone();
    }
    assert_eq!(s.hidden["a"].len(), MAX_HIDDEN_PER_AGENT);
    // One more: the longest hidden (g0, last shown at 10) ends.
    let n = MAX_HIDDEN_PER_AGENT as i64 + 1;
    let more = next(
        &prev,
        10 * (n + 1),
        &[("a", Some((&format!("g{n}"), false)))],
    );
    let ev = diff_latest(&meta(), Some(&prev), &more);
    assert_eq!(
        ends(&ev)[0],
        (
            Ended,
            "g0".into(),
            Derivation::ReplacedByNext,
            Some(10),
            Some(10 * (n + 1))
        )
    );
    assert_eq!(ev.len(), 2, "and the new one starts");
    // The vendor does not answer for the agent (404): its entry and hidden ones carry over.
    let mut gone = snap(999, &[("a", Some((&format!("g{n}"), false)))]);
    gone.not_found.insert("a".into());
    gone.settle(Some(&more));
    assert_eq!(gone.hidden, more.hidden);
    assert!(diff_latest(&meta(), Some(&more), &gone).is_empty());
}

#[test]
fn hidden_interactions_round_trip_and_states_stored_before_them_read_as_none() {
    let s1 = snap(10, &[("a", Some(("chat", false)))]);
    let s2 = next(&s1, 20, &[("a", Some(("email", false)))]);
    let json = serde_json::to_string(&s2).unwrap();
    let back: LatestSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back.hidden, s2.hidden);
    let old = serde_json::to_string(&s1).unwrap();
    assert!(!old.contains("hidden"), "{old}");
    let read: LatestSnapshot = serde_json::from_str(&old).unwrap();
    assert!(read.hidden.is_empty());
}

#[test]
fn an_agent_the_vendor_did_not_answer_for_is_bounded_from_the_last_poll_that_did() {
    let s1 = snap(
        10,
        &[("a", Some(("g1", false))), ("b", Some(("g2", false)))],
    );
    // At 20 the vendor fails for agent a alone: its entry is carried, observed at 10.
    let mut s2 = snap(
        20,
        &[("a", Some(("g1", false))), ("b", Some(("g2", false)))],
    );
    s2.not_found.insert("a".into());
    s2.settle(Some(&s1));
    assert!(diff_latest(&meta(), Some(&s1), &s2).is_empty());
    assert_eq!(s2.unobserved_since, BTreeMap::from([("a".to_string(), 10)]));
    // Not answered at 30 either: still observed last at 10.
    let mut s3 = snap(
        30,
        &[("a", Some(("g1", false))), ("b", Some(("g2", false)))],
    );
    s3.not_found.insert("a".into());
    s3.settle(Some(&s2));
    assert_eq!(s3.unobserved_since, BTreeMap::from([("a".to_string(), 10)]));
    // At 40 a shows no running interaction, b none either: g1 may have ended right after
    // 10, g2 after 30.
    let s4 = next(&s3, 40, &[("a", None), ("b", None)]);
    assert!(s4.unobserved_since.is_empty());
    let mut got = ends(&diff_latest(&meta(), Some(&s3), &s4));
    got.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(
        got,
        vec![
            (
                Ended,
                "g1".into(),
                Derivation::ReplacedByNext,
                Some(10),
                Some(40)
            ),
            (
                Ended,
                "g2".into(),
                Derivation::ReplacedByNext,
                Some(30),
                Some(40)
            ),
        ]
    );
    // A new one at an agent unobserved at the previous poll started after the last that
    // observed it.
    let s4b = next(
        &s3,
        40,
        &[("a", Some(("g9", false))), ("b", Some(("g2", false)))],
    );
    let g9 = s4b.agents["a"].as_ref().unwrap();
    assert_eq!((g9.first_seen, g9.seen_after), (Some(40), Some(10)));
    // Kept through the store (a restart while the vendor still does not answer).
    let back: LatestSnapshot = serde_json::from_str(&serde_json::to_string(&s3).unwrap()).unwrap();
    assert_eq!(back.unobserved_since, s3.unobserved_since);
}

/// [`next`] with rows listed after the first: `(agent, [(guid, ended)])`.
fn next_listed(
    prev: &LatestSnapshot,
    at: i64,
    agents: &[(&str, Option<(&str, bool)>)],
    listed: &[(&str, &[(&str, bool)])],
) -> LatestSnapshot {
    let mut s = snap(at, agents);
    for (agent, rows) in listed {
        let rows = rows.iter().map(|(g, e)| row(g, *e)).collect();
        s.listed.insert(agent.to_string(), rows);
    }
    s.settle(Some(prev));
    s
}

#[test]
fn an_agent_no_earlier_poll_observed_reports_only_what_runs_as_initial() {
    // b was not observed at the first poll (its request failed, or it was added since).
    let s1 = snap(1, &[("a", None)]);
    let s2 = next(
        &s1,
        2,
        &[
            ("a", None),
            ("b", Some(("old", true))),
            ("c", Some(("g1", false))),
        ],
    );
    // b's interaction ended at some time before: no STARTED and ENDED of now. c's runs: an initial
    // STARTED, not one bounded by a poll that never observed c.
    let ev = diff_latest(&meta(), Some(&s1), &s2);
    assert_eq!(brief(&ev), vec![(Started, "c".into(), "g1".into(), true)]);
    let Event::Interaction(g1) = &ev[0] else {
        unreachable!()
    };
    assert_eq!(g1.derivation, Derivation::InitialSnapshot);
    assert_eq!(s2.agents["c"].as_ref().unwrap().seen_after, None);
    // From then on c is observed: its next interaction is bounded by this poll.
    let s3 = next(&s2, 3, &[("a", None), ("c", Some(("g2", false)))]);
    assert_eq!(s3.agents["c"].as_ref().unwrap().seen_after, Some(2));
    assert_eq!(
        brief(&diff_latest(&meta(), Some(&s2), &s3)),
        vec![(Started, "c".into(), "g2".into(), false)]
    );
}

#[test]
fn every_row_listed_is_evidence_and_the_first_ending_does_not_end_the_others() {
    let s1 = snap(1, &[("a", None)]);
    // A phone call first, a chat listed after it: both start.
    let s2 = next_listed(
        &s1,
        2,
        &[("a", Some(("p", false)))],
        &[("a", &[("c", false)])],
    );
    assert_eq!(
        brief(&diff_latest(&meta(), Some(&s1), &s2)),
        vec![
            (Started, "a".into(), "c".into(), false),
            (Started, "a".into(), "p".into(), false)
        ]
    );
    // The call ends: it is listed first (its state changed last), the chat still runs after it.
    let s3 = next_listed(
        &s2,
        3,
        &[("a", Some(("p", true)))],
        &[("a", &[("c", false)])],
    );
    assert_eq!(
        ends(&diff_latest(&meta(), Some(&s2), &s3)),
        vec![(
            Ended,
            "p".into(),
            Derivation::VendorEndedFlag,
            Some(2),
            Some(3)
        )]
    );
    // The chat, listed alone: still the same chat, nothing happens.
    let s4 = next(&s3, 4, &[("a", Some(("c", false)))]);
    assert!(diff_latest(&meta(), Some(&s3), &s4).is_empty());
    // A new email listed first, the chat listed after it as ended: the chat ends by its flag,
    // bounded by the last poll that showed it running.
    let s5 = next_listed(
        &s4,
        5,
        &[("a", Some(("e", false)))],
        &[("a", &[("c", true)])],
    );
    assert_eq!(
        ends(&diff_latest(&meta(), Some(&s4), &s5)),
        vec![
            (
                Ended,
                "c".into(),
                Derivation::VendorEndedFlag,
                Some(4),
                Some(5)
            ),
            (Started, "e".into(), Derivation::SnapshotDiff, None, None)
        ]
    );
    // Rows listed running are running at the agent: its state shows them, the chat kept with
    // the poll that listed it (not ended when the call is listed first and ended, s3).
    assert_eq!(s3.hidden["a"][0].interaction.guid, "c");
    assert_eq!(s3.hidden["a"][0].last_shown, 3);
    // A new row after the first that has ended is older than the latest: not reported.
    let s6 = next_listed(
        &s5,
        6,
        &[("a", Some(("e", false)))],
        &[("a", &[("x", true)])],
    );
    assert!(diff_latest(&meta(), Some(&s5), &s6).is_empty());
}

#[test]
fn each_agent_is_observed_when_the_vendor_answered_for_it() {
    // The poll began at 10 s; the rate limit answered a at 11 s and b at 19 s.
    let mut s1 = snap(10_000, &[("a", Some(("g1", false))), ("b", None)]);
    s1.answered = [("a".to_string(), 11_000), ("b".to_string(), 19_000)].into();
    s1.settle(None);
    // The next poll began at 20 s: b was answered at 29 s, showing g2 started (by the vendor) at
    // 25 s, after this poll began; a at 21 s, g1 ended.
    let mut s2 = snap(
        20_000,
        &[("a", Some(("g1", true))), ("b", Some(("g2", false)))],
    );
    s2.answered = [("a".to_string(), 21_000), ("b".to_string(), 29_000)].into();
    if let Some(Some(g2)) = s2.agents.get_mut("b") {
        g2.start = Some(25_000);
    }
    s2.settle(Some(&s1));
    let ev = diff_latest(&meta(), Some(&s1), &s2);
    let [Event::Interaction(ended), Event::Interaction(started)] = &ev[..] else {
        panic!("{ev:?}")
    };
    // g1 ended after a's answer at 11 s, by a's answer at 21 s.
    assert_eq!(
        (
            ended.interaction_id.as_str(),
            ended.ended_after,
            ended.ended_before
        ),
        ("g1", Some(11_000), Some(21_000))
    );
    assert_eq!(ended.previous_observed_at, Some(11_000));
    // g2: first seen at b's answer, after b's previous answer; the vendor's start at 25 s lies
    // within that, so it stands.
    assert_eq!(
        (
            started.interaction_id.as_str(),
            started.observed_at,
            started.previous_observed_at,
            started.started_at
        ),
        ("g2", 29_000, Some(19_000), Some(25_000))
    );
    assert_eq!(s2.agents["b"].as_ref().unwrap().first_seen, Some(29_000));
    assert_eq!(s2.agents["b"].as_ref().unwrap().seen_after, Some(19_000));
}
