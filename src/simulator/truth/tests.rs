//! The truth world's own checks: deterministic, consistent, and served as the vendor would.

use super::*;
use serde_json::json;

fn spec() -> TruthSpec {
    TruthSpec::new(7, 12, 1_795_263_000_000, 500)
}

#[test]
fn the_same_seed_draws_the_same_world_and_it_is_consistent() {
    let (a, b) = (Truth::generate(&spec()), Truth::generate(&spec()));
    assert_eq!(a.chats, b.chats);
    assert_eq!(a.statuses, b.statuses);
    assert!(a.chats.len() > 50, "{} chats", a.chats.len());
    let i = spec().interval_ms;
    assert!(a.chats.iter().any(|c| c.duration_ms() < i));
    assert!(a.chats.iter().any(|c| c.duration_ms() > 4 * i));
    assert!(a.chats.iter().any(|c| c.segments.len() == 2));
    for c in &a.chats {
        assert!(c.duration_ms() > 0 && c.duration_ms() <= spec().max_chat_ms);
        assert_eq!(c.segments[0].start_ms, c.start_ms);
        assert_eq!(c.segments.last().map(|s| s.end_ms), Some(c.end_ms));
        assert!(c.segments.windows(2).all(|w| w[0].end_ms == w[1].start_ms));
    }
    // Busy exactly while a chat is at the agent.
    let t = spec().start_ms;
    for agent in a.interactions_at(t) {
        let busy = a.status_at(&agent.agent_id, t).map(|c| c.status.as_str()) == Some(BUSY);
        assert_eq!(busy, !agent.active_interactions.is_empty());
    }
    let breaks = a.statuses.values().flatten().filter(|c| c.status == BREAK);
    assert!(breaks.count() > 0);
}

#[test]
fn the_report_lists_the_chats_started_in_the_range_and_ended() {
    let truth = Truth::generate(&spec());
    let c = &truth.chats[10];
    let (ini, end) = (c.local_start(), c.local_start());
    assert!(!truth
        .report_at(ini, end, c.end_ms - 1)
        .iter()
        .any(|r| r.conn_id == c.conn_id));
    assert!(truth
        .report_at(ini, end, c.end_ms)
        .iter()
        .any(|r| r.conn_id == c.conn_id));
    let row = TruthWorld::chat_row(c);
    assert_eq!(
        row["chat_duration"],
        json!(c.report_duration_s().to_string())
    );
    assert_eq!(row["agent_id"], json!(c.last_agent()));
}
