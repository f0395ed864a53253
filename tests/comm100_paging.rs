//! A vendor number bounds nothing by itself: a Comm100 `Agents` that claims a million pages is read
//! for at most `max_pages` pages per poll (with a warning), and the agents it did not get to are not
//! judged — never reported absent — however many polls it lasts.

use ccdc::config::{Config, SourceConfig};
use ccdc::diff::agents::AgentSnapshot;
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

/// A Comm100 `Agents` endpoint that answers each request with the next of `pages` (by
/// `pageIndex`), the whole set swapped by the test between polls.
struct Canned {
    addr: std::net::SocketAddr,
    pages: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// How long the canned server waits before answering a page after the first (ms).
static LATER_PAGES_DELAY_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Canned {
    async fn start() -> Canned {
        use axum::extract::{Query, State};
        type Pages = std::sync::Arc<std::sync::Mutex<Vec<String>>>;
        async fn agents(
            State(pages): State<Pages>,
            Query(q): Query<std::collections::HashMap<String, String>>,
        ) -> ([(&'static str, &'static str); 1], String) {
            let i: usize = q.get("pageIndex").and_then(|p| p.parse().ok()).unwrap_or(1);
            let delay = LATER_PAGES_DELAY_MS.load(std::sync::atomic::Ordering::SeqCst);
            if i > 1 && delay > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            }
            let body = {
                let pages = pages.lock().unwrap();
                pages.get(i - 1).cloned().unwrap_or_else(|| "{}".into())
            };
            ([("content-type", "application/json")], body)
        }
        let pages: Pages = Default::default();
        let app = axum::Router::new()
            .route("/v4/livechat/realTime/Agents", axum::routing::get(agents))
            .with_state(pages.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Canned { addr, pages }
    }

    fn serve(&self, pages: &[&str]) {
        *self.pages.lock().unwrap() = pages.iter().map(|p| p.to_string()).collect();
    }

    fn source(&self, dir: &std::path::Path) -> Comm100Agents {
        let token = dir.join("token");
        std::fs::write(&token, "tok").unwrap();
        let config = Config::from_toml_str(&format!(
            "state_dir = {state:?}\noutput = \"stdout\"\n[[sources]]\nvendor = \"comm100\"\nname = \"c\"\nbase_url = \"http://{addr}/v4\"\ntoken = {{ file = {token:?} }}\nallow_insecure_http = true\npage_size = 2\n",
            state = dir.join("state").display().to_string(),
            addr = self.addr,
            token = token.display().to_string(),
        ))
        .unwrap();
        let SourceConfig::Comm100(c) = &config.sources[0] else {
            panic!("a Comm100 source")
        };
        Comm100Agents(Comm100Client::new(c).unwrap())
    }
}

fn row(id: &str, status: &str) -> String {
    format!(r#"{{"agentId":"{id}","currentStatusId":{status},"ongoingChats":0}}"#)
}

fn page(total: &str, page_count: &str, rows: &[String]) -> String {
    format!(
        r#"{{"total":{total},"pageCount":{page_count},"list":[{}]}}"#,
        rows.join(",")
    )
}

/// `(agent, status)` of every event of a diff.
fn changes(source: &Comm100Agents, a: &AgentSnapshot, b: &AgentSnapshot) -> Vec<(String, String)> {
    source
        .diff(Some(a), b)
        .into_iter()
        .map(|e| match e {
            ccdc::event::Event::AgentStatus(s) => (s.agent_id, s.status),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_but_allowed_pages_neither_stop_the_feed_nor_invent_a_logout() {
    let server = Canned::start().await;
    let dir = tempfile::tempdir().unwrap();
    let source = server.source(dir.path());
    let on = r#""s-on""#;
    // Four agents on two pages.
    server.serve(&[
        &page("4", "2", &[row("a1", on), row("a2", on)]),
        &page("4", "2", &[row("a3", on), row("a4", on)]),
    ]);
    let s1 = source.fetch(1_000, None).await.unwrap();
    assert_eq!(s1.present(), 4);

    // The list moves while it is read, two polls in a row, and a3 is on no page either time:
    // each poll shows it (fewer agents than `total`), and nobody is judged absent.
    server.serve(&[
        &page("4", "2", &[row("a1", on), row("a2", on)]),
        &page("4", "2", &[row("a4", on)]),
    ]);
    let s2 = source.fetch(2_000, Some(&s1)).await.unwrap();
    let s3 = source.fetch(3_000, Some(&s2)).await.unwrap();
    assert!(changes(&source, &s1, &s2).is_empty() && changes(&source, &s2, &s3).is_empty());
    assert_eq!(s3.present(), 4);

    // Counts as floats and strings, a null status, an unreadable counter, a row without an id,
    // a null list: every poll is read, and none of it is a change or a logout.
    server.serve(&[
        &page(
            "4.0",
            r#""2""#,
            &[
                row("a1", "null"),
                r#"{"agentId":"a2","currentStatusId":"s-on","ongoingChats":1.5}"#.into(),
            ],
        ),
        &page("4", "2", &[row("a3", on), row("a4", on)]),
    ]);
    let s4 = source.fetch(4_000, Some(&s3)).await.unwrap();
    assert!(changes(&source, &s3, &s4).is_empty());
    assert_eq!(
        s4.agents["a1"].status, "s-on",
        "a null status keeps the last one"
    );
    assert_eq!(
        s4.agents["a2"].comm100.as_ref().unwrap().ongoing_chats,
        None,
        "an unreadable counter is null"
    );
    server.serve(&[
        &page("4", "2", &[row("a1", on), r#"{"agentId":null}"#.into()]),
        &page("4", "2", &[row("a3", on), row("a4", on)]),
    ]);
    let s5 = source.fetch(5_000, Some(&s4)).await.unwrap();
    let s6 = source.fetch(6_000, Some(&s5)).await.unwrap();
    assert!(
        changes(&source, &s4, &s5).is_empty() && changes(&source, &s5, &s6).is_empty(),
        "a2 may be the row without an id: not absent"
    );
    // A null list said to be whole (`total` 0, one page): read, and every agent logged out.
    server.serve(&[r#"{"total":0,"pageCount":1,"list":null}"#]);
    let s7 = source.fetch(7_000, Some(&s6)).await.unwrap();
    assert_eq!(s7.present(), 0);
    let gone = changes(&source, &s6, &s7);
    assert_eq!(gone.len(), 4, "{gone:?}");
    assert!(
        gone.iter().all(|(_, s)| s == ccdc::event::ABSENT),
        "{gone:?}"
    );
    // Three are back, on two honest pages.
    server.serve(&[
        &page("3", "2", &[row("a1", on), row("a3", on)]),
        &page("3", "2", &[row("a4", on)]),
    ]);
    let s8 = source.fetch(8_000, Some(&s7)).await.unwrap();
    assert_eq!(changes(&source, &s7, &s8).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_agent_is_seen_when_its_page_was_answered() {
    let server = Canned::start().await;
    let dir = tempfile::tempdir().unwrap();
    let source = server.source(dir.path());
    let (on, away) = (r#""s-on""#, r#""s-away""#);
    let serve = |a3: &str| {
        server.serve(&[
            &page("3", "2", &[row("a1", on), row("a2", on)]),
            &page("3", "2", &[row("a3", a3)]),
        ])
    };
    serve(on);
    let now = || chrono::Utc::now().timestamp_millis();
    let t0 = now();
    let s1 = source.fetch(t0, None).await.unwrap();
    // Page 2 answers 400 ms after page 1: a3's status changes in between, while the poll runs.
    LATER_PAGES_DELAY_MS.store(400, std::sync::atomic::Ordering::SeqCst);
    serve(away);
    let t1 = now();
    let s2 = source.fetch(t1, Some(&s1)).await.unwrap();
    LATER_PAGES_DELAY_MS.store(0, std::sync::atomic::Ordering::SeqCst);
    let (a1, a3) = (&s2.agents["a1"], &s2.agents["a3"]);
    let (seen1, seen3) = (a1.last_seen.unwrap(), a3.last_seen.unwrap());
    assert!(seen1 >= t1 && seen3 >= seen1 + 350, "{seen1} {seen3}");
    // The poll is complete when its last page is answered.
    assert_eq!(s2.observed_at, seen3);
    // a3's new status began by the answer of its page, not by the poll's start.
    assert_eq!(a3.since_bounds.before, Some(seen3));
    assert_eq!(a3.since_bounds.after, s1.agents["a3"].last_seen);
    let ev = source.diff(Some(&s1), &s2);
    let [ccdc::event::Event::AgentStatus(e)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        (e.agent_id.as_str(), e.status_since_before),
        ("a3", Some(seen3))
    );
}
