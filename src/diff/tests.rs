//! The interaction diff: events, order, transfers, ids, settling.

use super::*;
use InteractionEventType::*;

#[test]
fn merge_walks_both_maps_in_key_order() {
    let a: BTreeMap<i32, char> = [(1, 'a'), (3, 'c'), (5, 'e')].into();
    let b: BTreeMap<i32, char> = [(0, 'z'), (3, 'C'), (6, 'f')].into();
    let steps: Vec<String> = merge(&a, &b)
        .map(|m| match m {
            Merged::Left(k, v) => format!("L{k}{v}"),
            Merged::Right(k, v) => format!("R{k}{v}"),
            Merged::Both(k, l, r) => format!("B{k}{l}{r}"),
        })
        .collect();
    assert_eq!(steps, ["R0z", "L1a", "B3cC", "L5e", "R6f"]);
    assert_eq!(merge(&a, &BTreeMap::new()).count(), 3);
}

fn meta() -> SourceMeta {
    SourceMeta {
        name: "ops".into(),
        vendor: "wolkvox".into(),
    }
}

fn snap(at: i64, pairs: &[(&str, &str)]) -> InteractionSnapshot {
    InteractionSnapshot {
        held: Default::default(),
        observed_at: at,
        interactions: pairs
            .iter()
            .map(|(agent, conn)| {
                (
                    InteractionKey {
                        interaction_id: conn.to_string(),
                        agent_id: agent.to_string(),
                    },
                    ActiveInteraction {
                        subject: Some(format!("subj-{conn}")),
                        ..Default::default()
                    },
                )
            })
            .collect(),
    }
}

fn brief(ev: &[InteractionEvent]) -> Vec<(InteractionEventType, &str, &str, bool, Option<&str>)> {
    ev.iter()
        .map(|e| {
            (
                e.event_type,
                e.agent_id.as_str(),
                e.interaction_id.as_str(),
                e.transfer,
                e.transfer_agent_id.as_deref(),
            )
        })
        .collect()
}

#[test]
fn initial_snapshot_starts_everything_marked_initial() {
    let cur = snap(1000, &[("a1", "c2"), ("a1", "c1"), ("a2", "c3")]);
    let ev = diff_interactions(&meta(), None, &cur);
    assert_eq!(
        brief(&ev),
        vec![
            (Started, "a1", "c1", false, None),
            (Started, "a1", "c2", false, None),
            (Started, "a2", "c3", false, None)
        ]
    );
    assert!(ev
        .iter()
        .all(|e| e.initial && e.previous_observed_at.is_none() && e.observed_at == 1000));
    assert_eq!(ev[0].subject.as_deref(), Some("subj-c1"));
}

#[test]
fn appear_and_disappear() {
    let prev = snap(1000, &[("a1", "c1"), ("a2", "c3")]);
    let cur = snap(2000, &[("a1", "c1"), ("a2", "c4")]);
    let ev = diff_interactions(&meta(), Some(&prev), &cur);
    assert_eq!(
        brief(&ev),
        vec![
            (Ended, "a2", "c3", false, None),
            (Started, "a2", "c4", false, None)
        ]
    );
    assert!(ev
        .iter()
        .all(|e| !e.initial && e.previous_observed_at == Some(1000) && e.observed_at == 2000));
    // The ended event carries what was last seen of the interaction.
    assert_eq!(ev[0].subject.as_deref(), Some("subj-c3"));
}

#[test]
fn transfer_ends_old_agent_then_starts_new_agent() {
    let prev = snap(1000, &[("a1", "c1")]);
    let cur = snap(2000, &[("a2", "c1")]);
    let ev = diff_interactions(&meta(), Some(&prev), &cur);
    assert_eq!(
        brief(&ev),
        vec![
            (Ended, "a1", "c1", true, Some("a2")),
            (Started, "a2", "c1", true, Some("a1"))
        ]
    );
}

#[test]
fn diffs_match_a_plain_set_difference_on_random_snapshots() {
    use std::collections::BTreeSet;
    // Interactions c0..c11 at agents a0..a4, drawn by a fixed pseudo-random sequence.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut draw = || {
        let mut pairs = BTreeSet::new();
        for _ in 0..(x % 30) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            pairs.insert((format!("a{}", x % 5), format!("c{}", (x >> 8) % 12)));
        }
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        pairs
    };
    for round in 0..200 {
        let (p, c) = (draw(), draw());

        let rp: Vec<(&str, &str)> = p.iter().map(|(a, i)| (a.as_str(), i.as_str())).collect();
        let rc: Vec<(&str, &str)> = c.iter().map(|(a, i)| (a.as_str(), i.as_str())).collect();
        let ev = diff_interactions(&meta(), Some(&snap(1, &rp)), &snap(2, &rc));
        // The reference: set differences, the smallest other-side agent, sorted.
        let other =
            |side: &BTreeSet<(String, String)>, except: &BTreeSet<(String, String)>, conn: &str| {
                side.difference(except)
                    .filter(|(_, i)| i == conn)
                    .map(|(a, _)| a.clone())
                    .min()
            };
        let mut expected: Vec<(InteractionEventType, String, String, Option<String>)> = vec![];
        for (a, i) in p.difference(&c) {
            expected.push((Ended, a.clone(), i.clone(), other(&c, &p, i)));
        }
        for (a, i) in c.difference(&p) {
            expected.push((Started, a.clone(), i.clone(), other(&p, &c, i)));
        }
        expected.sort_by(|x, y| (&x.2, x.0 == Started, &x.1).cmp(&(&y.2, y.0 == Started, &y.1)));
        let got: Vec<_> = ev
            .iter()
            .map(|e| {
                let t = e.transfer_agent_id.clone();
                assert_eq!(e.transfer, t.is_some());
                (
                    e.event_type,
                    e.agent_id.clone(),
                    e.interaction_id.clone(),
                    t,
                )
            })
            .collect();
        assert_eq!(got, expected, "round {round}");
    }
}

#[test]
fn settling_reads_only_the_dates_of_new_or_changed_interactions() {
    let with = |at: i64, items: &[(&str, &str, Option<i64>)]| InteractionSnapshot {
        held: Default::default(),
        observed_at: at,
        interactions: items
            .iter()
            .map(|(conn, raw, ts)| {
                let key = InteractionKey {
                    interaction_id: conn.to_string(),
                    agent_id: "a".into(),
                };
                let v = ActiveInteraction {
                    vendor_timestamp_raw: Some(raw.to_string()),
                    vendor_timestamp: *ts,
                    first_seen: ts.map(|_| 500),
                    ..Default::default()
                };
                (key, v)
            })
            .collect(),
    };
    let prev = with(
        1000,
        &[
            ("c1", "A", Some(1)),
            ("c2", "B", Some(2)),
            ("c4", "D", None),
        ],
    );
    let mut cur = with(
        2000,
        &[
            ("c1", "A", None),
            ("c2", "B2", None),
            ("c3", "C", None),
            ("c4", "D", None),
        ],
    );
    let mut read = vec![];
    let unread = cur.settle(Some(&prev), |raw| {
        read.push(raw.to_string());
        (raw != "C").then_some(9)
    });
    read.sort();
    assert_eq!(read, ["B2", "C"], "c1 and c4 kept their reading");
    let get = |c: &str| cur.interactions.get(c, "a").unwrap();
    assert_eq!(get("c1").vendor_timestamp, Some(1));
    assert_eq!(get("c2").vendor_timestamp, Some(9));
    assert_eq!(
        (get("c3").vendor_timestamp, get("c4").vendor_timestamp),
        (None, None)
    );
    assert_eq!(unread, 2, "c3 now, c4 still");
    // Seen before: its first sighting kept; new: first seen now, after the previous poll.
    assert_eq!(
        (get("c1").first_seen, get("c1").seen_after),
        (Some(500), None)
    );
    assert_eq!(
        (get("c3").first_seen, get("c3").seen_after),
        (Some(2000), Some(1000))
    );
}

#[test]
fn identical_and_empty_snapshots_yield_nothing() {
    let prev = snap(1000, &[("a1", "c1")]);
    assert!(diff_interactions(&meta(), Some(&prev), &snap(2000, &[("a1", "c1")])).is_empty());
    assert!(diff_interactions(&meta(), Some(&snap(1, &[])), &snap(2, &[])).is_empty());
    assert!(diff_interactions(&meta(), None, &snap(2, &[])).is_empty());
}

#[test]
fn everything_ending_is_reported_when_the_snapshot_says_so() {
    let prev = snap(1000, &[("a1", "c1"), ("a2", "c2")]);
    let ev = diff_interactions(&meta(), Some(&prev), &snap(2000, &[]));
    assert_eq!(
        brief(&ev),
        vec![
            (Ended, "a1", "c1", false, None),
            (Ended, "a2", "c2", false, None)
        ]
    );
}

#[test]
fn ids_are_stable_for_the_same_transition_and_differ_for_a_later_one() {
    let prev = snap(1000, &[]);
    let cur = snap(2000, &[("a1", "c1")]);
    let first = diff_interactions(&meta(), Some(&prev), &cur);
    // Re-deriving from the same base (e.g. after a crash before commit) gives the same id,
    // even if the re-poll happened at another time.
    let again = diff_interactions(&meta(), Some(&prev), &snap(2500, &[("a1", "c1")]));
    assert_eq!(first[0].event_id, again[0].event_id);
    // The same interaction starting again at the same agent later is a different transition.
    let later = diff_interactions(
        &meta(),
        Some(&snap(3000, &[])),
        &snap(4000, &[("a1", "c1")]),
    );
    assert_ne!(first[0].event_id, later[0].event_id);
}

#[test]
fn snapshot_round_trips_through_json() {
    let s = snap(5, &[("a1", "c1"), ("a2", "c1")]);
    let back: InteractionSnapshot =
        serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(s, back);
}

#[test]
fn an_agent_held_at_the_previous_poll_is_bounded_from_its_last_complete_listing() {
    // The poll at 1,000 listed agent 1 completely; the one at 2,000 did not (an interaction
    // without an id: its interactions carried, held since 1,000); the one at 3,000 does again.
    let mut held = snap(2_000, &[("1", "a"), ("2", "b")]);
    held.held.insert("1".into(), 1_000);
    let mut now = snap(3_000, &[("1", "c")]);
    now.settle(Some(&held), |_| None);
    let ev = diff_interactions(&meta(), Some(&held), &now);
    let get = |id: &str| ev.iter().find(|e| e.interaction_id == id).unwrap();
    // a may have ended before the held poll; b's agent was listed completely at 2,000.
    assert_eq!(
        (get("a").ended_after, get("a").ended_before),
        (Some(1_000), Some(3_000))
    );
    assert_eq!(
        (get("b").ended_after, get("b").ended_before),
        (Some(2_000), Some(3_000))
    );
    // c may be the interaction the held poll could not read: it started after 1,000.
    assert_eq!(get("c").event_type, Started);
    assert_eq!(
        now.interactions.get("c", "1").unwrap().seen_after,
        Some(1_000)
    );
    let seen = sightings(Some(&held), &now);
    let a = seen.iter().find(|(k, _)| k.interaction_id == "a").unwrap();
    assert_eq!(a.1.ended_after, Some(1_000));
    // Held again at a later poll: the time stays that of the last complete listing.
    let next = held.hold(&["1".to_string(), "2".to_string()]);
    assert_eq!(
        next,
        BTreeMap::from([("1".into(), 1_000), ("2".into(), 2_000)])
    );
    // Nothing held: every bound is the previous poll, as before.
    let plain = snap(2_000, &[("1", "a")]);
    let ev = diff_interactions(&meta(), Some(&plain), &snap(3_000, &[]));
    assert_eq!(ev[0].ended_after, Some(2_000));
}
