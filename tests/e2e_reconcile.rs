//! Reconciliation on real parts: a Wolkvox source polls its interactions and pulls `chat_1`; ccdc
//! publishes `interaction-reconciled` records to tansu with the schema in rivven-schema, and a
//! stock Confluent deserializer (Python confluent-kafka) reads them back:
//! - c-a: polling saw it start and end, and the report has it → `in_report`, `seen_realtime`;
//! - c-b: polling saw it start and end, the settled report does not have it → `in_report = false`;
//! - r-1: only the report has it (too short for polling) → `seen_realtime = false`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ccdc::event::reconciled::InteractionReconciled;
use ccdc::event::{Derivation, InteractionEvent};
use ccdc::simulator::reports::{generated_row, SIM_TZ};
use ccdc::simulator::{SimAgent, SimInteraction, SimMode};
use chrono::{Duration as CDuration, NaiveDateTime, Timelike};
use common::{python_interop, Record, Stack};

const TOKEN: &str = "wv-recon-token-77";
const INTERACTIONS: &str = "ccdc.it.recon.interactions";
const RECONCILED: &str = "ccdc.it.recon.reconciled";

fn local(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_report_chats_are_reconciled_with_what_polling_saw() {
    let now = chrono::Utc::now()
        .with_timezone(&SIM_TZ)
        .naive_local()
        .with_nanosecond(0)
        .unwrap();
    let (a_at, b_at, r_at) = (
        now - CDuration::seconds(100),
        now - CDuration::seconds(90),
        now - CDuration::seconds(80),
    );
    let it = |conn: &str, at: NaiveDateTime| SimInteraction {
        conn_id: conn.into(),
        subject: "s".into(),
        fromname: "f".into(),
        date: local(at),
    };
    let steps = vec![
        vec![SimAgent::new(
            "1001",
            "Busy",
            vec![it("c-a", a_at), it("c-b", b_at)],
        )],
        vec![SimAgent::new("1001", "Ready", vec![])],
    ];
    let sources = format!(
        r#"
[[sources]]
vendor = "wolkvox"
name = "recon-it"
base_url = "{{wolkvox}}"
token = {{ file = "{{token_file}}" }}
time_zone = "America/Bogota"
allow_insecure_http = true
[sources.interactions]
interval = "200ms"
max_backoff = "300ms"
[sources.agents]
enabled = false
[[sources.reports]]
report = "chat_1"
interval = "300ms"
max_backoff = "300ms"
settle_delay = "2s"
lookback = "10m"
start_from = "{}"
"#,
        local(now - CDuration::minutes(5))
    );
    let s = Stack::start(
        TOKEN,
        SimMode::Scripted(steps),
        &sources,
        &[
            ("interactions", INTERACTIONS),
            ("interactions_reconciled", RECONCILED),
        ],
    )
    .await;
    // No generated rows: the report holds exactly the rows this test adds (a daily one fell in
    // the window when the test ran in the first minutes after the simulator's midnight).
    s.sim.state.set_report_generation(0, 60_000);
    let _ccdc = s.ccdc(&[]);
    let mut interactions = s.reader(INTERACTIONS).await;
    let started: Vec<(Record, InteractionEvent)> = s.read(&mut interactions, 2);
    assert_eq!(started.len(), 2);
    s.sim.state.advance(); // c-a and c-b end
    let ended: Vec<(Record, InteractionEvent)> = s.read(&mut interactions, 4);
    assert_eq!(ended.len(), 4);
    // The report: c-a (which polling saw) and r-1 (which it never did).
    for (conn, at, duration) in [("c-a", a_at, "00:01:10"), ("r-1", r_at, "00:00:20")] {
        let mut row = generated_row("chat_1", at);
        row.insert("conn_id".into(), conn.into());
        row.insert("agent_id".into(), "1001".into());
        row.insert("chat_duration".into(), duration.into());
        s.sim.state.add_report_row("chat_1", at, row);
    }

    let mut reader = s.reader(RECONCILED).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let by_chat = loop {
        let n = reader.records.len().max(3);
        let got: Vec<(Record, InteractionReconciled)> = s.read(&mut reader, n);
        let by_chat: BTreeMap<String, InteractionReconciled> = got
            .iter()
            .map(|(_, r)| (r.interaction_id.clone(), r.clone()))
            .collect();
        if ["c-a", "c-b", "r-1"]
            .iter()
            .all(|c| by_chat.contains_key(*c))
        {
            break (by_chat, got);
        }
        assert!(Instant::now() < deadline, "{by_chat:#?}");
        reader.poll_for(Duration::from_millis(300));
    };
    let (by_chat, got) = by_chat;
    let a = &by_chat["c-a"];
    assert!(a.in_report && a.seen_realtime, "{a:#?}");
    assert_eq!(a.report_duration_ms, Some(70_000));
    assert_eq!(a.polled_agent_ids, vec!["1001"]);
    assert!(a.first_observed_at.is_some() && a.ended_before.is_some());
    let b = &by_chat["c-b"];
    assert!(!b.in_report && b.seen_realtime, "{b:#?}");
    assert_eq!(b.report_duration_ms, None);
    let r = &by_chat["r-1"];
    assert!(r.in_report && !r.seen_realtime, "{r:#?}");
    assert_eq!(r.report_duration_ms, Some(20_000));
    assert!(got.iter().all(|(_, x)| x.derivation == Derivation::Report));
    assert_eq!(got.len(), 3, "one record per chat: {got:#?}");
    let keys: Vec<String> = got.iter().map(|(rec, _)| rec.key.clone()).collect();
    assert!(keys.iter().all(|k| k.starts_with("recon-it/")), "{keys:?}");

    // A stock Confluent deserializer reads every record, field by field.
    python_interop(&s, RECONCILED, &got);
}
