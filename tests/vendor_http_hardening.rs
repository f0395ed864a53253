//! Vendor HTTP hardening against a tiny local server: a vendor token never follows a redirect to
//! another origin, and a vendor's `Retry-After` cannot freeze a feed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccdc::config::{PollConfig, WolkvoxConfig};
use ccdc::secret::SecretRef;
use ccdc::sources::http::SourceHttp;
use ccdc::sources::wolkvox::interactions::WolkvoxInteractions;
use ccdc::sources::wolkvox::WolkvoxClient;
use ccdc::sources::SnapshotSource;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// A one-trick HTTP/1.1 server on 127.0.0.1: every request gets the response `respond` builds from
/// the request's target; the head of every request (lower-cased) is recorded.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(respond: impl Fn(&str) -> String + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (log, respond) = (seen.clone(), Arc::new(respond));
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (log, respond) = (log.clone(), respond.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                    let target = head.split(' ').nth(1).unwrap_or("/").to_string();
                    log.lock().unwrap().push(head);
                    let _ = conn.write_all(respond(&target).as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Server { port, seen }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn response(status: &str, headers: &[(&str, String)], body: &str) -> String {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out
}

const EMPTY_INTERACTIONS: &str = r#"{"code":200,"error":"","msg":"ok","data":[]}"#;

fn wolkvox(name: &str, base_url: String, token_env: &str) -> WolkvoxInteractions {
    let cfg = WolkvoxConfig {
        name: name.into(),
        base_url,
        token: SecretRef::Env(token_env.into()),
        time_zone: "America/Bogota".into(),
        max_concurrent_requests: 1,
        request_timeout: Duration::from_secs(10),
        max_response_bytes: 1024 * 1024,
        allow_insecure_http: true,
        interactions: PollConfig::default(),
        agents: PollConfig::default(),
        reports: vec![],
        daily_call_limit: None,
        agent_state: Default::default(),
    };
    WolkvoxInteractions(WolkvoxClient::new(&cfg).unwrap())
}

#[tokio::test]
async fn the_wolkvox_token_never_follows_a_redirect_to_another_origin() {
    const TOKEN: &str = "redirect-test-token-5e1f";
    std::env::set_var("REDIRECT_TEST_TOKEN", TOKEN);
    // Where a hostile (or misconfigured) vendor endpoint points: another port, so another origin.
    let trap = Server::start(|_| response("200 OK", &[], EMPTY_INTERACTIONS)).await;
    let trap_url = format!("http://127.0.0.1:{}/api/v2/real_time.php", trap.port);
    let vendor =
        Server::start(move |_| response("302 Found", &[("location", trap_url.clone())], "")).await;
    let src = wolkvox(
        "redir-wv",
        format!("http://127.0.0.1:{}/api/v2", vendor.port),
        "REDIRECT_TEST_TOKEN",
    );
    let result = src.fetch(1, None).await;
    let leaked: Vec<_> = trap
        .requests()
        .into_iter()
        .filter(|r| r.contains(&TOKEN.to_ascii_lowercase()))
        .collect();
    assert!(
        leaked.is_empty(),
        "the token reached the other origin: {leaked:?}"
    );
    assert!(
        trap.requests().is_empty(),
        "the redirect was not followed at all"
    );
    assert_eq!(vendor.requests().len(), 1, "the vendor was asked once");
    let e = result.expect_err("a cross-origin redirect fails the poll");
    let text = e.to_string();
    assert!(
        text.starts_with("redir-wv ") && text.contains("interactions"),
        "names source and endpoint: {text}"
    );
    assert!(text.contains("redirect"), "says why: {text}");
    assert!(!text.contains(TOKEN), "no token in the error: {text}");
}

#[tokio::test]
async fn a_redirect_on_the_same_origin_is_followed() {
    std::env::set_var("REDIRECT_TEST_TOKEN_SAME", "same-origin-token");
    let vendor = Server::start(|target| {
        if target.starts_with("/moved/") {
            response("200 OK", &[], EMPTY_INTERACTIONS)
        } else {
            response(
                "301 Moved Permanently",
                &[("location", "/moved/real_time.php?api=interactions".into())],
                "",
            )
        }
    })
    .await;
    let src = wolkvox(
        "same-wv",
        format!("http://127.0.0.1:{}/api/v2", vendor.port),
        "REDIRECT_TEST_TOKEN_SAME",
    );
    src.fetch(1, None)
        .await
        .expect("same-origin redirect works");
    let reqs = vendor.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert!(reqs[1].contains("wolkvox-token: same-origin-token"));
}

async fn retry_after_of(value: String) -> Option<Duration> {
    let vendor = Server::start(move |_| {
        response(
            "429 Too Many Requests",
            &[("retry-after", value.clone())],
            "",
        )
    })
    .await;
    let http = SourceHttp::new(
        "ra",
        Duration::from_secs(5),
        Arc::new(Semaphore::new(1)),
        1024,
    )
    .unwrap();
    let req = http
        .client()
        .get(format!("http://127.0.0.1:{}/x", vendor.port));
    let e = http
        .fetch("ep", req, |_| Ok(()))
        .await
        .expect_err("429 is an error");
    assert!(e.to_string().contains("rate limited"), "{e}");
    e.retry_after()
}

#[tokio::test]
async fn a_huge_retry_after_is_clamped_to_an_hour() {
    assert_eq!(
        retry_after_of("999999999".into()).await,
        Some(Duration::from_secs(3600))
    );
    assert_eq!(
        retry_after_of("30".into()).await,
        Some(Duration::from_secs(30)),
        "a sane value is kept"
    );
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_understood_and_clamped() {
    let in_two_minutes = chrono::Utc::now() + chrono::Duration::seconds(120);
    let date = in_two_minutes
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let d = retry_after_of(date)
        .await
        .expect("an HTTP-date is understood");
    assert!(
        d > Duration::from_secs(100) && d <= Duration::from_secs(120),
        "{d:?}"
    );
    let far = (chrono::Utc::now() + chrono::Duration::days(400))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    assert_eq!(retry_after_of(far).await, Some(Duration::from_secs(3600)));
    let past = "Wed, 21 Oct 2015 07:28:00 GMT".to_string();
    assert_eq!(
        retry_after_of(past).await,
        Some(Duration::ZERO),
        "a date in the past: retry now"
    );
}

#[tokio::test]
async fn the_registry_client_does_not_follow_a_redirect_to_another_origin() {
    let trap = Server::start(|_| {
        response(
            "200 OK",
            &[("content-type", "application/json".into())],
            r#"{"schema":"\"string\""}"#,
        )
    })
    .await;
    let trap_url = format!("http://127.0.0.1:{}/schemas/ids/1", trap.port);
    let registry = Server::start(move |_| {
        response(
            "307 Temporary Redirect",
            &[("location", trap_url.clone())],
            "",
        )
    })
    .await;
    let client = ccdc::registry::HttpRegistry::new(
        &format!("http://127.0.0.1:{}", registry.port),
        Some(("ccdc".into(), ccdc::secret::Secret::new("registry-pass-9"))),
        Duration::from_secs(5),
        None,
    )
    .unwrap();
    let e = client
        .schema_by_id(1)
        .await
        .expect_err("a cross-origin redirect is refused");
    assert!(trap.requests().is_empty(), "not followed");
    let text = e.to_string();
    assert!(
        text.contains("redirect") && !text.contains("registry-pass-9"),
        "{text}"
    );
}
