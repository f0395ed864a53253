//! A vendor number bounds nothing by itself: a Comm100 `Agents` that claims a million pages is read
//! for at most `max_pages` pages per poll (with a warning), and the agents it did not get to are not
//! judged — never reported absent — however many polls it lasts.

use ccdc::config::{Config, SourceConfig};
use ccdc::simulator::comm100::ONLINE;
use ccdc::simulator::{C100Agent, Route, Scenario, SimMode, SimServer, SimState};
use ccdc::sources::comm100::{Comm100Agents, Comm100Client};
use ccdc::sources::SnapshotSource;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_million_pages_are_read_up_to_max_pages_and_nobody_is_judged_absent() {
    let agents = ["a1", "a2", "a3", "a4", "a5", "a6"]
        .iter()
        .map(|id| C100Agent::new(id, id, ONLINE, 0))
        .collect();
    let scenario = Scenario {
        comm100: vec![agents],
        ..Default::default()
    };
    let sim = SimServer::start(
        "127.0.0.1:0".parse().unwrap(),
        SimState::new("tok", SimMode::Scenario(scenario)),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok").unwrap();
    let config = Config::from_toml_str(&format!(
        "state_dir = {state:?}\noutput = \"stdout\"\n[[sources]]\nvendor = \"comm100\"\nname = \"c\"\nbase_url = {base:?}\ntoken = {{ file = {token:?} }}\nallow_insecure_http = true\npage_size = 2\nmax_pages = 2\n",
        state = dir.path().join("state").display().to_string(),
        base = sim.comm100_base_url(),
        token = token.display().to_string(),
    ))
    .unwrap();
    let SourceConfig::Comm100(c) = &config.sources[0] else {
        panic!("a Comm100 source")
    };
    let source = Comm100Agents(Comm100Client::new(c).unwrap());

    // The honest list first: 6 agents on 3 pages of 2, over max_pages: 4 agents read.
    let first = source.fetch(1_000, None).await.unwrap();
    assert_eq!(first.present(), 4);
    assert_eq!(sim.state.requests_on(Route::Comm100Agents), 2);
    // Then the vendor claims a million pages: still 2 requests a poll, and nobody read before
    // is judged absent while the list is clamped, poll after poll.
    sim.state.claim_comm100_page_count(1_000_000);
    let mut previous = first;
    for at in [2_000, 3_000, 4_000] {
        let before = sim.state.requests_on(Route::Comm100Agents);
        let next = source.fetch(at, Some(&previous)).await.unwrap();
        assert_eq!(sim.state.requests_on(Route::Comm100Agents) - before, 2);
        assert!(
            source.diff(Some(&previous), &next).is_empty(),
            "no event from a clamped list at {at}"
        );
        assert_eq!(next.present(), 4);
        previous = next;
    }
    sim.stop().await;
}
