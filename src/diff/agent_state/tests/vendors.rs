//! Comm100 (a count of ongoing chats, status names) and Vonage (the latest interaction, 404s).

use super::*;
use crate::diff::latest::LatestInteraction;

fn comm100(
    at: i64,
    status: &str,
    name: &str,
    ongoing: i64,
    previous: Option<&AgentSnapshot>,
) -> AgentSnapshot {
    let state = AgentState {
        status: status.into(),
        status_name: Some(name.into()),
        comm100: Some(Comm100AgentDetails {
            ongoing_chats: Some(ongoing),
            intraday_linear_chat_time_ms: Some(at),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut s = AgentSnapshot {
        observed_at: at,
        agents: [("g1".to_string(), state)].into(),
    };
    s.settle(previous, Listing::Whole);
    s
}

#[test]
fn comm100_counts_its_ongoing_chats_and_names_its_statuses() {
    let mut feed = Feed::new(0);
    let s1 = comm100(1_000, "guid-0", "Online", 1, None);
    let r = feed.poll(&s1, None);
    assert_eq!(brief(&r), vec![("g1", Initial, Busy)]);
    assert_eq!(
        (
            r[0].active_interaction_ids.clone(),
            r[0].active_interaction_count,
            r[0].interactions_observed_at
        ),
        (None, Some(1), Some(1_000))
    );
    // The running chat time alone is no change; the chat ending is.
    let s2 = comm100(2_000, "guid-0", "Online", 1, Some(&s1));
    assert!(feed.poll(&s2, None).is_empty());
    let s3 = comm100(3_000, "guid-0", "Online", 0, Some(&s2));
    let r = feed.poll(&s3, None);
    assert_eq!(brief(&r), vec![("g1", Changed, Available)]);
    // A configured id wins over its name's default rule.
    feed.categories = [("guid-7".to_string(), Busy)].into();
    let r = feed.poll(&comm100(4_000, "guid-7", "Away", 0, Some(&s3)), None);
    assert_eq!(brief(&r), vec![("g1", Changed, Busy)]);
}

fn latest(at: i64, rows: &[(&str, Option<(&str, bool)>)], not_found: &[&str]) -> LatestSnapshot {
    LatestSnapshot {
        observed_at: at,
        agents: rows
            .iter()
            .map(|(a, l)| {
                let it = l.map(|(guid, has_ended)| LatestInteraction {
                    guid: guid.into(),
                    start: Some(500),
                    start_raw: Some("1970-01-01T00:00:00.500Z".into()),
                    has_ended,
                    first_seen: None,
                    seen_after: None,
                });
                (a.to_string(), it)
            })
            .collect(),
        not_found: not_found.iter().map(|a| a.to_string()).collect(),
        listed: Default::default(),
        answered: Default::default(),
        hidden: Default::default(),
        unobserved_since: BTreeMap::new(),
    }
}

#[test]
fn vonage_agents_are_busy_with_a_running_latest_interaction_and_unknown_otherwise() {
    let mut feed = Feed::new(1);
    let s1 = latest(
        1_000,
        &[
            ("v1", Some(("g1", false))),
            ("v2", Some(("g2", true))),
            ("v3", None),
        ],
        &[],
    );
    let r = feed.poll(&s1, None);
    assert_eq!(
        brief(&r),
        vec![
            ("v1", Initial, Busy),
            ("v2", Initial, Unknown),
            ("v3", Initial, Unknown)
        ]
    );
    assert_eq!(r[0].active_interaction_ids, Some(vec!["g1".to_string()]));
    assert_eq!(
        (r[1].active_interaction_count, r[0].status.clone()),
        (Some(0), None)
    );
    let v = r[1].vonage.as_ref().unwrap();
    assert_eq!(
        (
            v.latest_interaction_id.as_deref(),
            v.latest_interaction_has_ended,
            v.latest_interaction_started_at
        ),
        (Some("g2"), Some(true), Some(500))
    );
    // v1 answered 404: its carried entry is not observed, so no record for it (the refresh is due).
    let s2 = latest(
        2_000,
        &[("v1", Some(("g1", false))), ("v2", Some(("g3", false)))],
        &["v1"],
    );
    let r = feed.poll(&s2, None);
    assert_eq!(brief(&r), vec![("v2", Changed, Busy)]);
    // v3 left the configuration: dropped from the table (its last record stays on the topic).
    let t = feed.table.as_ref().unwrap();
    assert!(t.agents.contains_key("v1") && !t.agents.contains_key("v3"));
    let s3 = latest(
        3_000,
        &[("v1", Some(("g1", false))), ("v2", Some(("g3", false)))],
        &[],
    );
    assert_eq!(
        brief(&feed.poll(&s3, None)),
        vec![("v1", Refresh, Busy), ("v2", Refresh, Busy)]
    );
}
