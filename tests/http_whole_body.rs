//! `SourceHttp::fetch_body_answered`: a response that announces its length up to
//! `WHOLE_BODY_MAX` reaches its parser whole (one buffer, parsed from memory); one that does not
//! announce it (chunked) or announces more is streamed; the size limit holds either way. A
//! loopback server answers each connection with one canned response.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use ccdc::sources::http::{Body, SourceHttp, WHOLE_BODY_MAX};
use tokio::sync::Semaphore;

/// Serve `response` (raw HTTP/1.1) to every connection; the base URL.
fn serve(response: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut request = [0u8; 4096];
            let _ = conn.read(&mut request);
            let _ = conn.write_all(&response);
        }
    });
    url
}

fn with_length(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut r =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for part in body.chunks(1000) {
        r.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        r.extend_from_slice(part);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"0\r\n\r\n");
    r
}

/// How the parser got the body at `url` (`"whole"` or `"stream"`) and its bytes.
async fn fetch(url: &str, max_body: u64) -> Result<(&'static str, Vec<u8>), String> {
    let http = SourceHttp::new(
        "src",
        Duration::from_secs(10),
        Arc::new(Semaphore::new(1)),
        max_body,
    )
    .unwrap();
    let req = http.client().get(url);
    http.fetch_body_answered("ep", req, |body| {
        Ok(match body {
            Body::Whole(bytes) => ("whole", bytes.to_vec()),
            Body::Stream(r) => {
                let mut out = Vec::new();
                r.read_to_end(&mut out)
                    .map_err(|e| ccdc::sources::SourceError::Internal {
                        source_name: "src".into(),
                        endpoint: "ep".into(),
                        detail: e.to_string(),
                    })?;
                ("stream", out)
            }
        })
    })
    .await
    .map(|(got, _answered)| got)
    .map_err(|e| format!("{} {e}", e.kind()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_length_is_read_whole_and_an_unannounced_one_streamed() {
    let body: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let got = fetch(&serve(with_length(&body)), 1 << 20).await.unwrap();
    assert_eq!((got.0, got.1.len()), ("whole", body.len()));
    assert_eq!(got.1, body);
    let got = fetch(&serve(chunked(&body)), 1 << 20).await.unwrap();
    assert_eq!((got.0, got.1.len()), ("stream", body.len()));
    assert_eq!(got.1, body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_limit_holds_whole_or_streamed() {
    let body = vec![b'x'; 300_000];
    for response in [with_length(&body), chunked(&body)] {
        let e = fetch(&serve(response), 100_000).await.unwrap_err();
        assert!(e.starts_with("too_large"), "{e}");
    }
    // Within the limit, whole.
    assert_eq!(
        fetch(&serve(with_length(&body)), 300_000).await.unwrap().0,
        "whole"
    );
}

#[test]
fn whole_bodies_stay_small_enough_to_hold() {
    // A 256 MB report response must stream; a 60,000-interaction snapshot (≈ 7 MB) must not.
    const _: () = assert!(WHOLE_BODY_MAX >= 16 << 20 && WHOLE_BODY_MAX <= 64 << 20);
}
