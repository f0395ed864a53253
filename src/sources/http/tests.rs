use super::*;

#[tokio::test]
async fn a_refused_connection_says_why_without_the_url() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let http = SourceHttp::new(
        "src",
        Duration::from_secs(5),
        Arc::new(Semaphore::new(1)),
        1024,
    )
    .expect("client");
    let req = http
        .client()
        .get(format!("http://127.0.0.1:{port}/api?secret_path=1"));
    let e = http
        .fetch("ep", req, |_| Ok(()))
        .await
        .expect_err("nothing listens there");
    let text = e.to_string();
    assert!(text.starts_with("src ep: request failed: "), "{text}");
    assert!(
        text.contains("Connection refused"),
        "the root cause: {text}"
    );
    assert!(!text.contains("secret_path"), "no URL: {text}");
}

#[test]
fn retry_after_is_seconds_or_an_http_date() {
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let p = |v| parse_retry_after(v, now);
    assert_eq!(p(" 120 "), Some(Duration::from_secs(120)));
    assert_eq!(
        p("Sat, 21 Nov 2026 10:02:00 GMT"),
        Some(Duration::from_secs(120))
    );
    assert_eq!(p("Sat, 21 Nov 2026 09:00:00 GMT"), Some(Duration::ZERO));
    assert_eq!(p("soon"), None);
    assert_eq!(p("-5"), None);
}

#[test]
fn each_level_of_a_chain_once() {
    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }
    let e = E("a: b", Some(Box::new(E("b", Some(Box::new(E("c", None)))))));
    assert_eq!(cause_chain(&e), "a: b: c");
    assert_eq!(cause_chain(&E("x", None)), "x");
}
