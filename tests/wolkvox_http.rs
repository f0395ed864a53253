//! The Wolkvox source against the simulator over real HTTP: the documented limits (per-token
//! concurrency, response size, call time) and the token header. No broker needed.

use std::sync::Arc;
use std::time::Duration;

use ccdc::config::{PollConfig, WolkvoxConfig};
use ccdc::secret::SecretRef;
use ccdc::simulator::{Fault, SimAgent, SimInteraction, SimMode, SimServer, SimState};
use ccdc::sources::wolkvox::interactions::WolkvoxInteractions;
use ccdc::sources::wolkvox::WolkvoxClient;
use ccdc::sources::SnapshotSource;

fn big_step(agents: usize) -> Vec<SimAgent> {
    (0..agents)
        .map(|a| SimAgent {
            agent_id: format!("{}", 1000 + a),
            status: "Busy".into(),
            active_interactions: (0..3)
                .map(|i| SimInteraction {
                    conn_id: format!("c{a}-{i}"),
                    subject: "s".repeat(40),
                    fromname: "f".into(),
                    date: "2026-11-21 10:15:00".into(),
                })
                .collect(),
        })
        .collect()
}

fn source(
    name: &str,
    sim: &SimServer,
    token_env: &str,
    f: impl FnOnce(&mut WolkvoxConfig),
) -> Arc<WolkvoxInteractions> {
    let mut cfg = WolkvoxConfig {
        name: name.into(),
        base_url: sim.base_url(),
        token: SecretRef::Env(token_env.into()),
        time_zone: "America/Bogota".into(),
        max_concurrent_requests: 1,
        request_timeout: Duration::from_secs(10),
        max_response_bytes: 256 * 1024 * 1024,
        allow_insecure_http: true,
        interactions: PollConfig::default(),
        agents: PollConfig::default(),
        reports: vec![],
        daily_call_limit: None,
        agent_state: Default::default(),
    };
    f(&mut cfg);
    Arc::new(WolkvoxInteractions(WolkvoxClient::new(&cfg).unwrap()))
}

async fn sim(token: &str, agents: usize) -> SimServer {
    SimServer::start(
        "127.0.0.1:0".parse().unwrap(),
        SimState::new(token, SimMode::Scripted(vec![big_step(agents)])),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_sharing_a_token_never_exceed_its_concurrency_limit() {
    std::env::set_var("WV_HTTP_TOKEN_A", "token-a");
    let sim = sim("token-a", 5).await;
    sim.state.set_slow(Duration::from_millis(300));
    sim.state.inject(Fault::Slow, 6);
    // Two sources (two operations' pollers) with the same token, limit 1.
    let a = source("a", &sim, "WV_HTTP_TOKEN_A", |_| {});
    let b = source("b", &sim, "WV_HTTP_TOKEN_A", |_| {});
    let mut joins = Vec::new();
    for i in 0..6 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        joins.push(tokio::spawn(async move { s.fetch(1, None).await }));
    }
    for j in joins {
        assert_eq!(j.await.unwrap().unwrap().interactions.len(), 15);
    }
    assert_eq!(
        sim.state.max_concurrent_requests(),
        1,
        "one request at a time per token"
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_of_two_allows_two_at_once_and_no_more() {
    std::env::set_var("WV_HTTP_TOKEN_B", "token-b");
    let sim = sim("token-b", 5).await;
    sim.state.set_slow(Duration::from_millis(300));
    sim.state.inject(Fault::Slow, 6);
    let a = source("a2", &sim, "WV_HTTP_TOKEN_B", |c| {
        c.max_concurrent_requests = 2
    });
    let joins: Vec<_> = (0..6)
        .map(|_| {
            let s = a.clone();
            tokio::spawn(async move { s.fetch(1, None).await })
        })
        .collect();
    for j in joins {
        j.await.unwrap().unwrap();
    }
    assert_eq!(sim.state.max_concurrent_requests(), 2);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_responses_are_refused_with_and_without_content_length() {
    std::env::set_var("WV_HTTP_TOKEN_C", "token-c");
    let sim = sim("token-c", 2000).await;
    let s = source("big", &sim, "WV_HTTP_TOKEN_C", |c| {
        c.max_response_bytes = 50_000
    });
    // Content-Length announced: refused before reading.
    let e = s.fetch(1, None).await.unwrap_err();
    assert_eq!(e.kind(), "too_large", "{e}");
    assert!(
        e.to_string().contains("big") && e.to_string().contains("50000"),
        "{e}"
    );
    // Streamed without Content-Length: aborted once past the limit.
    sim.state.inject(Fault::Chunked, 1);
    let e = s.fetch(1, None).await.unwrap_err();
    assert_eq!(e.kind(), "too_large", "{e}");
    // Under the limit, the streamed body parses.
    let ok = source("big-ok", &sim, "WV_HTTP_TOKEN_C", |_| {});
    sim.state.inject(Fault::Chunked, 1);
    assert_eq!(ok.fetch(1, None).await.unwrap().interactions.len(), 6000);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_the_timeout_fails_as_a_timeout_and_a_wrong_token_as_auth() {
    std::env::set_var("WV_HTTP_TOKEN_D", "token-d");
    std::env::set_var("WV_HTTP_TOKEN_WRONG", "not-the-token");
    let sim = sim("token-d", 1).await;
    sim.state.set_slow(Duration::from_secs(3));
    sim.state.inject(Fault::Slow, 1);
    let s = source("slow", &sim, "WV_HTTP_TOKEN_D", |c| {
        c.request_timeout = Duration::from_secs(1)
    });
    let e = s.fetch(1, None).await.unwrap_err();
    assert_eq!(e.kind(), "timeout", "{e}");
    let wrong = source("wrong", &sim, "WV_HTTP_TOKEN_WRONG", |_| {});
    let e = wrong.fetch(1, None).await.unwrap_err();
    assert_eq!(e.kind(), "auth", "{e}");
    assert!(!e.to_string().contains("not-the-token"), "{e}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_call_limit_is_counted_persisted_and_enforced() {
    use ccdc::store::{SledStore, Store};
    std::env::set_var("WV_HTTP_TOKEN_Q", "token-q");
    let sim = sim("token-q", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = WolkvoxConfig {
        name: "quota".into(),
        base_url: sim.base_url(),
        token: SecretRef::Env("WV_HTTP_TOKEN_Q".into()),
        time_zone: "America/Bogota".into(),
        max_concurrent_requests: 1,
        request_timeout: Duration::from_secs(10),
        max_response_bytes: 1 << 20,
        allow_insecure_http: true,
        interactions: PollConfig::default(),
        agents: PollConfig::default(),
        reports: vec![],
        daily_call_limit: Some(2),
        agent_state: Default::default(),
    };
    {
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
        let src = WolkvoxInteractions(WolkvoxClient::with_quota(&cfg, store).unwrap());
        src.fetch(1, None).await.unwrap();
        src.fetch(2, None).await.unwrap();
        let e = src.fetch(3, None).await.unwrap_err();
        assert_eq!(e.kind(), "quota", "{e}");
        assert!(e.to_string().contains("2 of 2"), "{e}");
    }
    assert_eq!(
        sim.state.requests(),
        2,
        "the refused call never reached the vendor"
    );
    // Persisted per day: a restart (new store handle, same directory) still knows today's count.
    cfg.daily_call_limit = Some(3);
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
    let client = WolkvoxClient::with_quota(&cfg, store).unwrap();
    assert_eq!(client.calls_today(), 2);
    let src = WolkvoxInteractions(client);
    src.fetch(4, None).await.unwrap();
    assert_eq!(src.fetch(5, None).await.unwrap_err().kind(), "quota");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_a_transport_error_naming_source_and_endpoint() {
    std::env::set_var("WV_HTTP_TOKEN_R", "token-r");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sim = sim("unused", 1).await;
    let s = source("refused", &sim, "WV_HTTP_TOKEN_R", |c| {
        c.base_url = format!("http://127.0.0.1:{port}/api/v2")
    });
    let e = s.fetch(1, None).await.unwrap_err();
    assert_eq!(e.kind(), "transport", "{e}");
    let text = e.to_string();
    assert!(
        text.contains("refused") && text.contains("real_time.php?api=interactions"),
        "{text}"
    );
    assert!(!text.contains("token-r"));
    sim.stop().await;
}
