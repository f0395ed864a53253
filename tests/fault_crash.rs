//! The crash suite (Debezium's promise: never misses an event, may repeat events after a fault).
//!
//! A seeded random timeline of 200 snapshot steps (interactions starting, ending and moving between
//! 30 agents) is served by the simulator while ccdc polls every 100 ms; at random moments (seeded,
//! reproducible) the driver SIGKILLs ccdc and restarts it. The driver advances the timeline only once
//! the current step's events are on the topic, so every step is observed at least once. At the end
//! every record is read back from offset 0 and checked: every event the timeline implies is present
//! (0 lost), nothing else is (no invented events), duplicates only repeat an already-seen event id,
//! and per interaction the order holds. The figures are printed.

mod common;

use std::time::{Duration, Instant};

use ccdc::event::InteractionEvent;
use ccdc::simulator::SimMode;
use common::timeline::{implied, timeline, to_step, Rng, Tally, Transition};
use common::{Ccdc, RegistryDecoder, Stack};

const SOURCES: &str = r#"
[[sources]]
vendor = "wolkvox"
name = "crash"
base_url = "{wolkvox}"
token = { file = "{token_file}" }
time_zone = "America/Bogota"
allow_insecure_http = true
request_timeout = "5s"
[sources.interactions]
interval = "100ms"
max_backoff = "200ms"
confirm_empty_polls = 1
[sources.agents]
enabled = false
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sigkills_lose_nothing_and_invent_nothing() {
    let seed: u64 = std::env::var("CCDC_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261121);
    let steps = timeline(seed, 200);
    let s = Stack::start(
        "crash-token",
        SimMode::Scripted(steps.iter().map(to_step).collect()),
        SOURCES,
        &[("interactions", "ccdc.it.crash")],
    )
    .await;
    let mut ccdc: Ccdc = s.ccdc(&[]);
    let mut reader = s.reader("ccdc.it.crash").await;
    let mut dec = RegistryDecoder::new(&s.infra.registry_url);
    let mut rng = Rng(seed ^ 0x5eed);

    let mut expected: Vec<Transition> = Vec::new();
    let mut tally = Tally::default();
    let (mut decoded, mut kills) = (0usize, 0u32);
    let empty = Default::default();
    let started = Instant::now();
    for (k, cur) in steps.iter().enumerate() {
        if k > 0 {
            s.sim.state.advance();
        }
        expected.extend(implied(if k == 0 { &empty } else { &steps[k - 1] }, cur));
        if rng.below(100) < 20 {
            // Kill at a random moment of the cycle: before, during or after the poll, commit or publish.
            tokio::time::sleep(Duration::from_millis(rng.below(150))).await;
            // SAFETY: kill(2) with a pid we own.
            unsafe { libc::kill(ccdc.child.id() as i32, libc::SIGKILL) };
            let _ = ccdc.child.wait();
            kills += 1;
            ccdc = s.ccdc(&[]);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while tally.firsts.len() < expected.len() {
            assert!(
                Instant::now() < deadline,
                "step {k}: {} of {} events after 60 s\n{}",
                tally.firsts.len(),
                expected.len(),
                common::read_to_string(&s.log)
            );
            reader.poll_for(Duration::from_millis(50));
            for r in &reader.records[decoded..] {
                tally.add(dec.decode::<InteractionEvent>(&r.payload));
            }
            decoded = reader.records.len();
        }
    }
    let _ = ccdc.terminate(Duration::from_secs(30));
    reader.poll_for(Duration::from_secs(2));
    for r in &reader.records[decoded..] {
        tally.add(dec.decode::<InteractionEvent>(&r.payload));
    }
    let v = tally.verdict(&expected);
    let polls = s.sim.state.requests();
    println!(
        "crash suite: seed={seed} steps={} polls={polls} kills={kills} expected={} received={} duplicates={} lost={} invented={} in {:.0}s",
        steps.len(),
        expected.len(),
        tally.received,
        v.duplicates,
        v.lost,
        v.invented.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(v.lost, 0, "lost events");
    assert!(v.invented.is_empty(), "invented events: {:?}", v.invented);
    assert!(polls >= 200, "at least 200 poll cycles ({polls})");
    assert!(kills >= 20, "enough kills ({kills})");
    tally.assert_order(&expected);
}
