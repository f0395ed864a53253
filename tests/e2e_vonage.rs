//! Vonage Contact Center end to end: OAuth2 client credentials (expiry refresh, 401 → refresh once),
//! 429 + Retry-After, a 404 or a 500 for one agent that does not fail the others, and the
//! latest-interaction diff (two interactions of one agent shown in turn), read back from tansu and
//! decoded through rivven-schema.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use ccdc::event::{Derivation, InteractionEvent, InteractionEventType, InteractionEventType::*};
use ccdc::simulator::{Fault, Route, Scenario, SimMode, VonageLatest};
use common::{Record, Stack};

const SECRET: &str = "vcc-client-secret-77aa";
const TOPIC: &str = "ccdc.it.vonage.interactions";

fn step(rows: &[(&str, Option<(&str, bool)>)]) -> BTreeMap<String, Option<VonageLatest>> {
    rows.iter()
        .map(|(a, l)| {
            (
                a.to_string(),
                l.map(|(g, ended)| VonageLatest::new(g, "2026-11-21T15:15:00Z", ended)),
            )
        })
        .collect()
}

fn scenario() -> Scenario {
    Scenario {
        vonage: vec![
            step(&[
                ("a1", Some(("g1", false))),
                ("a2", Some(("g2", true))),
                ("a3", None),
            ]),
            step(&[
                ("a1", Some(("g1", true))),
                ("a2", Some(("g3", false))),
                ("a3", Some(("g4", true))),
            ]),
            step(&[
                ("a1", Some(("g5", false))),
                ("a2", Some(("g3", false))),
                ("a3", Some(("g4", true))),
            ]),
            // a2 takes an email (g7) while its chat g3 goes on: the vendor shows one of the two
            // running interactions, g7, then g3 again, then g7 ended (so nothing runs any more).
            step(&[
                ("a1", Some(("g5", false))),
                ("a2", Some(("g7", false))),
                ("a3", Some(("g4", true))),
            ]),
            step(&[
                ("a1", Some(("g5", false))),
                ("a2", Some(("g3", false))),
                ("a3", Some(("g4", true))),
            ]),
            step(&[
                ("a1", Some(("g5", false))),
                ("a2", Some(("g7", true))),
                ("a3", Some(("g4", true))),
            ]),
        ],
        ..Default::default()
    }
}

type Brief = (InteractionEventType, String, String, bool);

fn expected(step: usize) -> Vec<Brief> {
    let b = |t, a: &str, g: &str, i| (t, a.to_string(), g.to_string(), i);
    match step {
        0 => vec![b(Started, "a1", "g1", true)],
        1 => vec![
            b(Ended, "a1", "g1", false),
            b(Started, "a2", "g3", false),
            b(Started, "a3", "g4", false),
            b(Ended, "a3", "g4", false),
        ],
        2 => vec![b(Started, "a1", "g5", false)],
        // Not shown is not ended: g3 neither ends nor starts again until a2 has nothing running.
        3 => vec![b(Started, "a2", "g7", false)],
        4 => vec![],
        5 => vec![b(Ended, "a2", "g3", false), b(Ended, "a2", "g7", false)],
        _ => vec![],
    }
}

const SOURCES: &str = r#"
[[sources]]
vendor = "vonage"
name = "vcc-it"
base_url = "{vonage}"
account_key = "acc1"
token_url = "{vonage_token}"
client_id = "ccdc-sim"
client_secret = { file = "{token_file}" }
agent_ids = ["a1", "a2", "a3", "a404"]
requests_per_second = 50
allow_insecure_http = true
request_timeout = "5s"
[sources.interactions]
interval = "200ms"
max_backoff = "300ms"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_interactions_with_token_refresh_rate_limits_and_unknown_agents() {
    let s = Stack::start(
        SECRET,
        SimMode::Scenario(scenario()),
        SOURCES,
        &[("interactions", TOPIC)],
    )
    .await;
    // Tokens live 2 s: ccdc must refresh before expiry without failing a poll.
    s.sim.state.set_vonage_token_lifetime(2);
    let _ccdc = s.ccdc(&[]);
    let mut reader = s.reader(TOPIC).await;
    let mut total = expected(0).len();
    s.read::<InteractionEvent>(&mut reader, total);

    tokio::time::sleep(Duration::from_secs(3)).await;
    let issued = s.sim.state.vonage_tokens_issued();
    assert!(issued >= 2, "token refreshed before expiry");
    // From the next refresh on, tokens live an hour: only the 401 path can recover from a revocation.
    s.sim.state.set_vonage_token_lifetime(3600);
    let start = std::time::Instant::now();
    while s.sim.state.vonage_tokens_issued() == issued {
        assert!(start.elapsed() < Duration::from_secs(10), "no refresh");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let issued = s.sim.state.vonage_tokens_issued();

    // The server forgets every token (401) and throttles twice (429, Retry-After: 1): ccdc refreshes
    // once, waits, and the poll still succeeds.
    s.sim.state.revoke_vonage_tokens();
    s.sim
        .state
        .inject_at(Route::VonageLatest, Fault::Http429, 2);
    s.sim.state.advance();
    total += expected(1).len();
    s.read::<InteractionEvent>(&mut reader, total);

    assert_eq!(
        s.sim.state.vonage_tokens_issued(),
        issued + 1,
        "exactly one refresh after the 401"
    );

    for step in 2..=5 {
        if step == 3 {
            // One agent's request fails (HTTP 500): that agent keeps its previous state for the
            // poll, the others go on; nothing is invented for it (the totals below are exact).
            s.sim
                .state
                .inject_at(Route::VonageLatest, Fault::Http500, 1);
        }
        s.sim.state.advance();
        total += expected(step).len();
        s.read::<InteractionEvent>(&mut reader, total);
        // Two polls of the four agents on this step before the next one.
        s.wait_requests(Route::VonageLatest, 8).await;
    }
    reader.poll_for(Duration::from_secs(1));
    let got: Vec<(Record, InteractionEvent)> = s.read(&mut reader, total);
    assert_eq!(got.len(), total, "no extra records");

    let mut briefs: Vec<Brief> = got
        .iter()
        .map(|(_, e)| {
            (
                e.event_type,
                e.agent_id.clone(),
                e.interaction_id.clone(),
                e.initial,
            )
        })
        .collect();
    let mut want: Vec<Brief> = (0..6).flat_map(expected).collect();
    // Per interaction, STARTED precedes ENDED.
    for g in ["g1", "g4", "g7"] {
        let seq: Vec<_> = briefs.iter().filter(|b| b.2 == g).map(|b| b.0).collect();
        assert_eq!(seq, vec![Started, Ended], "{g}");
    }
    briefs.sort();
    want.sort();
    assert_eq!(briefs, want);
    for (r, e) in &got {
        assert_eq!(r.key, format!("vcc-it/{}", e.interaction_id));
        assert!(e.latest_only, "Vonage events say what polling cannot see");
        assert_eq!(
            (e.vendor.as_str(), e.vendor_timestamp),
            ("vonage", Some(1_795_274_100_000))
        );
    }

    // g3 ended after the last poll that showed it running (step 4) and by the first that showed
    // a2 with nothing running (step 5).
    let g3 = got
        .iter()
        .map(|(_, e)| e)
        .find(|e| e.interaction_id == "g3" && e.event_type == Ended)
        .expect("g3 ended");
    assert_eq!(g3.derivation, Derivation::ReplacedByNext);
    let (after, before) = (g3.ended_after.unwrap(), g3.ended_before.unwrap());
    assert!(after < before && before == g3.observed_at, "{g3:?}");

    let log = common::read_to_string(&s.log);
    assert!(
        log.contains("a404") && log.contains("404"),
        "the unknown agent is reported"
    );
    assert!(log.contains("rate limited"), "429 is reported");
    assert!(
        log.contains("no answer for this agent"),
        "one agent's 500 is reported and does not fail the poll"
    );
    assert!(
        !log.contains(SECRET),
        "the client secret must never be logged"
    );
    assert!(!log.contains("vtok-"), "access tokens must never be logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_request_is_a_configuration_error_with_the_vendors_message() {
    let s = Stack::start(
        SECRET,
        SimMode::Scenario(scenario()),
        SOURCES,
        &[("interactions", TOPIC)],
    )
    .await;
    s.sim
        .state
        .inject_at(Route::VonageLatest, Fault::Http400, 1);
    let _ccdc = s.ccdc(&[]);
    let mut reader = s.reader(TOPIC).await;
    // One agent's 400: that agent is not observed by the poll (the others go on), and is at its
    // first observation on the next one: its running interaction is reported as initial.
    let got: Vec<(Record, InteractionEvent)> = s.read(&mut reader, 1);
    assert_eq!(
        (
            got[0].1.event_type,
            got[0].1.interaction_id.as_str(),
            got[0].1.initial
        ),
        (Started, "g1", true)
    );
    let log = common::read_to_string(&s.log);
    assert!(
        log.contains("configuration error")
            && log.contains("The InteractionType field is required."),
        "{log}"
    );
}
