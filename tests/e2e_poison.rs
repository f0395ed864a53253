//! No single record may stall the rest, on real parts (the `ccdc` binary, tansu, rivven-schema): an
//! acceptance run sent a Wolkvox interaction whose `subject` was 1.5 MB, the record exceeded the
//! producer's `message.max.bytes`, and nothing was ever published again. Here:
//! - c2 has a 1.5 MB subject: its events arrive with the subject cut to 32 KiB plus a marker;
//! - c3 has a 1.5 MB subject *and* from-name, and the producer's limit is 50,000 bytes: even cut,
//!   its record is too large, so its events go to the dead-letter topic with the reason and their
//!   original topic, key and event id;
//! - every other event — later polls of the same feed, and another source (Comm100) — arrives.

mod common;

use std::collections::BTreeSet;

use ccdc::event::{AgentStatusEvent, DeadLetter, InteractionEvent, InteractionEventType::*};
use ccdc::simulator::comm100::{AWAY, ONLINE};
use ccdc::simulator::{C100Agent, Scenario, SimAgent, SimInteraction, SimMode};
use common::{Record, Stack};

const TOKEN: &str = "poison-token-3c1d";
const INTERACTIONS: &str = "ccdc.it.poison.interactions";
const AGENTS: &str = "ccdc.it.poison.agents";
const DEAD: &str = "ccdc.it.poison.dead";

fn it(conn: &str, subject: &str, from: &str) -> SimInteraction {
    SimInteraction {
        conn_id: conn.into(),
        subject: subject.into(),
        fromname: from.into(),
        date: "2026-11-21 10:15:00".into(),
    }
}

fn scenario() -> Scenario {
    let huge = "ñ".repeat(750_000); // 1.5 MB of two-byte characters
    let c1 = it("c1", "normal", "Ana");
    let c2 = it("c2", &huge, "Luis");
    let c3 = it("c3", &huge, &huge);
    let c4 = it("c4", "after", "Eva");
    let wolkvox = |conns: Vec<SimInteraction>| vec![SimAgent::new("1001", "Busy", conns)];
    let comm100 = |status: &str| vec![C100Agent::new("a1", "Agent a1", status, 0)];
    Scenario {
        wolkvox: vec![
            wolkvox(vec![c1.clone()]),
            wolkvox(vec![c1.clone(), c2.clone(), c3.clone()]),
            wolkvox(vec![c1.clone(), c4.clone()]),
        ],
        comm100: vec![comm100(ONLINE), comm100(ONLINE), comm100(AWAY)],
        ..Default::default()
    }
}

const SOURCES: &str = r#"
[[sources]]
vendor = "wolkvox"
name = "poison-wv"
base_url = "{wolkvox}"
token = { file = "{token_file}" }
time_zone = "America/Bogota"
allow_insecure_http = true
[sources.interactions]
interval = "200ms"
max_backoff = "300ms"
[sources.agents]
enabled = false

[[sources]]
vendor = "comm100"
name = "poison-c100"
base_url = "{comm100}"
token = { file = "{token_file}" }
allow_insecure_http = true
[sources.agents]
interval = "200ms"
max_backoff = "300ms"
[sources.queue]
enabled = false
[sources.today]
enabled = false
[sources.right_now]
enabled = false
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_vendor_value_never_stalls_the_other_events() {
    let s = Stack::start(
        TOKEN,
        SimMode::Scenario(scenario()),
        SOURCES,
        &[
            ("interactions", INTERACTIONS),
            ("agent_status", AGENTS),
            ("dead_letter", DEAD),
        ],
    )
    .await;
    // The producer's limit: a cut record of one long field fits, one of two does not.
    let cfg = std::fs::read_to_string(&s.config).unwrap();
    let cfg = cfg.replace(
        "message_timeout = \"30s\"\n",
        "message_timeout = \"30s\"\n[kafka.properties]\n\"message.max.bytes\" = \"50000\"\n",
    );
    std::fs::write(&s.config, cfg).unwrap();
    let _ccdc = s.ccdc(&[]);
    let mut interactions = s.reader(INTERACTIONS).await;
    let mut agents = s.reader(AGENTS).await;
    let mut dead = s.reader(DEAD).await;

    let first: Vec<(Record, InteractionEvent)> = s.read(&mut interactions, 1);
    assert_eq!(first[0].1.interaction_id, "c1");
    s.sim.state.advance(); // c2 and c3 start, with their huge values
    let got: Vec<(Record, InteractionEvent)> = s.read(&mut interactions, 2);
    let c2 = &got
        .iter()
        .find(|(_, e)| e.interaction_id == "c2")
        .unwrap()
        .1;
    assert_eq!((c2.event_type, c2.interaction_id.as_str()), (Started, "c2"));
    let subject = c2.subject.as_deref().unwrap();
    assert!(
        subject.starts_with("ññ") && subject.ends_with("more bytes]"),
        "cut with a marker"
    );
    assert!(subject.len() < 33 * 1024, "{} bytes", subject.len());

    // c3's record is refused by the producer even cut: its event goes to the dead letters.
    let dl: Vec<(Record, DeadLetter)> = s.read(&mut dead, 1);
    let d = &dl[0].1;
    assert_eq!(d.original_topic.as_deref(), Some(INTERACTIONS));
    assert_eq!(d.original_key.as_deref(), Some("poison-wv/c3"));
    assert_eq!(d.report, "interaction-started");
    assert!(d.error.to_lowercase().contains("too large"), "{}", d.error);

    // Later polls and the other source go on.
    s.sim.state.advance(); // c2 and c3 end, c4 starts; a1 goes away
    let all: Vec<(Record, InteractionEvent)> = s.read(&mut interactions, 4);
    let later: BTreeSet<(String, String)> = all
        .iter()
        .filter(|(_, e)| {
            !(e.event_type == Started && ["c1", "c2"].contains(&e.interaction_id.as_str()))
        })
        .map(|(_, e)| (format!("{:?}", e.event_type), e.interaction_id.clone()))
        .collect();
    assert_eq!(
        later,
        [("Ended", "c2"), ("Started", "c4")]
            .iter()
            .map(|(t, c)| (t.to_string(), c.to_string()))
            .collect()
    );
    let dl: Vec<(Record, DeadLetter)> = s.read(&mut dead, 2);
    assert!(
        dl.iter().any(|(_, d)| d.report == "interaction-ended"),
        "c3's end too"
    );
    let statuses: Vec<(Record, AgentStatusEvent)> = s.read(&mut agents, 2);
    assert!(
        statuses.iter().any(|(_, e)| e.status == AWAY),
        "the other source's events arrive"
    );
    assert_eq!(
        all.len(),
        4,
        "c1 and c2 started, c2 ended, c4 started: nothing else"
    );
}
