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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use ccdc::event::{InteractionEvent, InteractionEventType, InteractionEventType::*};
use ccdc::simulator::{SimAgent, SimInteraction, SimMode, Step};
use common::{Ccdc, RegistryDecoder, Stack};

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

type Pairs = BTreeSet<(String, String)>; // (agent, conn)

fn timeline(seed: u64, steps: usize) -> Vec<Pairs> {
    let mut rng = Rng(seed);
    let agents: Vec<String> = (0..30).map(|i| format!("{}", 1001 + i)).collect();
    let mut cur: Pairs = BTreeSet::new();
    let mut next_conn = 0;
    let mut out = Vec::new();
    for _ in 0..steps {
        let before = cur.clone();
        while cur == before {
            for _ in 0..1 + rng.below(4) {
                match rng.below(3) {
                    0 => {
                        next_conn += 1;
                        cur.insert((
                            agents[rng.below(30) as usize].clone(),
                            format!("k{next_conn:05}"),
                        ));
                    }
                    1 if !cur.is_empty() => {
                        let p = cur
                            .iter()
                            .nth(rng.below(cur.len() as u64) as usize)
                            .cloned()
                            .unwrap();
                        cur.remove(&p);
                    }
                    _ if !cur.is_empty() => {
                        let (a, c) = cur
                            .iter()
                            .nth(rng.below(cur.len() as u64) as usize)
                            .cloned()
                            .unwrap();
                        let to = agents[rng.below(30) as usize].clone();
                        if to != a {
                            cur.remove(&(a, c.clone()));
                            cur.insert((to, c));
                        }
                    }
                    _ => {}
                }
            }
        }
        out.push(cur.clone());
    }
    out
}

fn to_step(pairs: &Pairs) -> Step {
    let mut by_agent: BTreeMap<&str, Vec<SimInteraction>> = BTreeMap::new();
    for (a, c) in pairs {
        by_agent.entry(a).or_default().push(SimInteraction {
            conn_id: c.clone(),
            subject: "s".into(),
            fromname: "f".into(),
            date: "2026-11-21 10:15:00".into(),
        });
    }
    by_agent
        .into_iter()
        .map(|(a, its)| SimAgent::new(a, "Busy", its))
        .collect()
}

type Transition = (InteractionEventType, String, String); // (type, agent, conn)

/// What the timeline implies between two steps, ENDED before STARTED within an interaction.
fn implied(prev: &Pairs, cur: &Pairs) -> Vec<Transition> {
    let mut v: Vec<Transition> = prev
        .difference(cur)
        .map(|(a, c)| (Ended, a.clone(), c.clone()))
        .collect();
    v.extend(
        cur.difference(prev)
            .map(|(a, c)| (Started, a.clone(), c.clone())),
    );
    v
}

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
    let mut seen: HashSet<String> = HashSet::new();
    let mut firsts: Vec<InteractionEvent> = Vec::new();
    let (mut decoded, mut kills) = (0usize, 0u32);
    let empty = BTreeSet::new();
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
        while firsts.len() < expected.len() {
            assert!(
                Instant::now() < deadline,
                "step {k}: {} of {} events after 60 s\n{}",
                firsts.len(),
                expected.len(),
                common::read_to_string(&s.log)
            );
            reader.poll_for(Duration::from_millis(50));
            for r in &reader.records[decoded..] {
                let e: InteractionEvent = dec.decode(&r.payload);
                if seen.insert(e.event_id.clone()) {
                    firsts.push(e);
                }
            }
            decoded = reader.records.len();
        }
    }
    let _ = ccdc.terminate(Duration::from_secs(30));
    reader.poll_for(Duration::from_secs(2));
    for r in &reader.records[decoded..] {
        let e: InteractionEvent = dec.decode(&r.payload);
        if seen.insert(e.event_id.clone()) {
            firsts.push(e);
        }
    }
    let received = reader.records.len();
    let duplicates = received - firsts.len();

    // Every implied event present, nothing else (compared as multisets).
    let mut want: HashMap<Transition, i64> = HashMap::new();
    for t in &expected {
        *want.entry(t.clone()).or_default() += 1;
    }
    let mut extra = Vec::new();
    for e in &firsts {
        let t = (e.event_type, e.agent_id.clone(), e.interaction_id.clone());
        match want.get_mut(&t) {
            Some(n) if *n > 0 => *n -= 1,
            _ => extra.push(t),
        }
    }
    let lost: i64 = want.values().sum();
    let polls = s.sim.state.requests();
    println!(
        "crash suite: seed={seed} steps={} polls={polls} kills={kills} expected={} received={received} duplicates={duplicates} lost={lost} invented={} in {:.0}s",
        steps.len(),
        expected.len(),
        extra.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(lost, 0, "lost events");
    assert!(extra.is_empty(), "invented events: {extra:?}");
    assert!(polls >= 200, "at least 200 poll cycles ({polls})");
    assert!(kills >= 20, "enough kills ({kills})");
    // Per interaction, the first occurrences follow the timeline's order.
    let mut per_key: HashMap<&str, Vec<(InteractionEventType, &str)>> = HashMap::new();
    for e in &firsts {
        per_key
            .entry(&e.interaction_id)
            .or_default()
            .push((e.event_type, &e.agent_id));
    }
    for (conn, seq) in per_key {
        let want_seq: Vec<(InteractionEventType, &str)> = expected
            .iter()
            .filter(|t| t.2 == conn)
            .map(|t| (t.0, t.1.as_str()))
            .collect();
        assert_eq!(seq, want_seq, "order of {conn}");
    }
}
