//! The schema registry is down when ccdc starts: polling goes on, events wait in the outbox, nothing
//! is published without a schema id, readiness says why; when it comes back everything is delivered.
//! Down again mid-run: the cached schema ids keep publishing.

mod common;

use std::time::Duration;

use ccdc::event::InteractionEvent;
use ccdc::simulator::{Route, SimAgent, SimMode};
use common::{free_port, http_status as status, spawn_registry, RegistryDecoder, Stack};

const SOURCES: &str = r#"
[[sources]]
vendor = "wolkvox"
name = "reg-it"
base_url = "{wolkvox}"
token = { file = "{token_file}" }
time_zone = "America/Bogota"
allow_insecure_http = true
[sources.interactions]
interval = "200ms"
max_backoff = "200ms"
[sources.agents]
enabled = false
"#;

fn step(conns: &[&str]) -> Vec<SimAgent> {
    vec![common::sim_agent("1001", "Busy", conns)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_published_without_a_schema_id_and_everything_arrives_after_the_outage() {
    let s = Stack::start(
        "reg-token",
        SimMode::Scripted(vec![
            step(&["c1", "c2"]),
            step(&["c2", "c3"]),
            step(&["c3"]),
        ]),
        SOURCES,
        &[("interactions", "ccdc.it.reg")],
    )
    .await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let cfg = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace(&s.infra.registry_url, &url);
    std::fs::write(&s.config, cfg).unwrap();
    let _ccdc = s.ccdc(&[]);
    let mut reader = s.reader("ccdc.it.reg").await;

    s.wait_requests(Route::WolkvoxInteractions, 5).await;
    s.sim.state.advance();
    s.wait_requests(Route::WolkvoxInteractions, 5).await;
    reader.poll_for(Duration::from_secs(2));
    assert_eq!(
        reader.records.len(),
        0,
        "nothing published without a schema id"
    );
    let (code, why) = status(&format!("{}/readyz", s.ops_url));
    assert_eq!(code, 503);
    assert!(why.contains("publisher is not running"), "{why}");
    assert!(common::read_to_string(&s.log).contains("schema registry unavailable"));

    // The registry comes up: both steps' events (2 initial + 1 ended + 1 started) are delivered.
    let registry = spawn_registry(port);
    reader.read_at_least(4, Duration::from_secs(60));
    let mut dec = RegistryDecoder::new(&url);
    let got: Vec<InteractionEvent> = reader
        .records
        .iter()
        .map(|r| dec.decode(&r.payload))
        .collect();
    let mut ids: Vec<(String, String)> = got
        .iter()
        .map(|e| (format!("{:?}", e.event_type), e.interaction_id.clone()))
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![
            ("Ended".into(), "c1".into()),
            ("Started".into(), "c1".into()),
            ("Started".into(), "c2".into()),
            ("Started".into(), "c3".into())
        ]
    );

    // Down again mid-run: schema ids are cached, publishing goes on.
    drop(registry);
    s.sim.state.advance();
    reader.read_at_least(5, Duration::from_secs(60));
    let last: InteractionEvent = dec.decode(&reader.records[4].payload);
    assert_eq!(
        (
            format!("{:?}", last.event_type),
            last.interaction_id.as_str()
        ),
        ("Ended".to_string(), "c2")
    );
}
