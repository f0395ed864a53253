//! Shared HTTP concerns for every vendor: one client per source with the call timeout, a per-token
//! concurrency limiter shared by every source using the same token, a response-size ceiling enforced
//! while streaming (never buffering the body), and status classification into [`SourceError`].

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::TryStreamExt;
use tokio::sync::Semaphore;

use super::SourceError;
use crate::secret::Secret;

/// Limiter shared by all users of one token (keyed by the token's fingerprint, never its value).
pub fn token_limiter(token: &Secret, permits: usize) -> Arc<Semaphore> {
    static LIMITERS: OnceLock<Mutex<HashMap<u64, Arc<Semaphore>>>> = OnceLock::new();
    let map = LIMITERS.get_or_init(Default::default);
    let mut g = map.lock().unwrap_or_else(|p| p.into_inner());
    g.entry(token.fingerprint())
        .or_insert_with(|| Arc::new(Semaphore::new(permits)))
        .clone()
}

/// An HTTP client bound to one source.
#[derive(Clone)]
pub struct SourceHttp {
    client: reqwest::Client,
    source_name: String,
    limiter: Arc<Semaphore>,
    max_body: u64,
}

impl SourceHttp {
    pub fn new(
        source_name: &str,
        timeout: Duration,
        limiter: Arc<Semaphore>,
        max_body: u64,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("ccdc/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(SourceHttp {
            client,
            source_name: source_name.to_string(),
            limiter,
            max_body,
        })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn transport(&self, endpoint: &str, e: &reqwest::Error) -> SourceError {
        // reqwest's Display includes the URL; our URLs carry no secrets (tokens travel in headers),
        // but strip it anyway to keep messages short and uniform.
        let chain = cause_chain(e);
        let detail = match e.url() {
            Some(u) => chain
                .replace(&format!(" ({u})"), "")
                .replace(u.as_str(), "<url>"),
            None => chain,
        };
        SourceError::Transport {
            source_name: self.source_name.clone(),
            endpoint: endpoint.into(),
            detail,
            timeout: e.is_timeout(),
        }
    }

    /// Send `request`, check the status, then stream the body (up to the size limit) through `parse`
    /// on a blocking thread. The token's concurrency permit is held until the body is consumed.
    pub async fn fetch<T, F>(
        &self,
        endpoint: &str,
        request: reqwest::RequestBuilder,
        parse: F,
    ) -> Result<T, SourceError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Read) -> Result<T, SourceError> + Send + 'static,
    {
        let _permit = self
            .limiter
            .acquire()
            .await
            .map_err(|_| SourceError::Transport {
                source_name: self.source_name.clone(),
                endpoint: endpoint.into(),
                detail: "shutting down".into(),
                timeout: false,
            })?;
        let resp = request
            .send()
            .await
            .map_err(|e| self.transport(endpoint, &e))?;
        let resp = self.check_status(endpoint, resp).await?;
        self.parse_body(endpoint, resp, parse).await
    }

    /// A successful response whose announced size is within the limit, or the error it stands for.
    async fn check_status(
        &self,
        endpoint: &str,
        resp: reqwest::Response,
    ) -> Result<reqwest::Response, SourceError> {
        let status = resp.status();
        if status.as_u16() == 429 {
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(SourceError::RateLimited {
                source_name: self.source_name.clone(),
                endpoint: endpoint.into(),
                retry_after,
            });
        }
        if !status.is_success() {
            let body = read_snippet(resp).await;
            return Err(SourceError::Http {
                source_name: self.source_name.clone(),
                endpoint: endpoint.into(),
                status: status.as_u16(),
                detail: body,
            });
        }
        if resp.content_length().is_some_and(|n| n > self.max_body) {
            return Err(self.too_large(endpoint));
        }
        Ok(resp)
    }

    /// Stream the body through a counting guard into `parse`, on a blocking thread. Past the size
    /// limit the stream fails and the result is [`SourceError::TooLarge`]; a transport timeout
    /// while reading surfaces as an I/O error of kind `TimedOut`.
    async fn parse_body<T, F>(
        &self,
        endpoint: &str,
        resp: reqwest::Response,
        parse: F,
    ) -> Result<T, SourceError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Read) -> Result<T, SourceError> + Send + 'static,
    {
        let exceeded = Arc::new(AtomicBool::new(false));
        let (limit, flag) = (self.max_body, exceeded.clone());
        let mut seen: u64 = 0;
        let stream = resp
            .bytes_stream()
            .map_err(|e| {
                let kind = if e.is_timeout() {
                    std::io::ErrorKind::TimedOut
                } else {
                    std::io::ErrorKind::Other
                };
                std::io::Error::new(kind, e)
            })
            .and_then(move |chunk| {
                seen = seen.saturating_add(chunk.len() as u64);
                let over = seen > limit;
                if over {
                    flag.store(true, Ordering::SeqCst);
                }
                futures::future::ready(if over {
                    Err(std::io::Error::other("response size limit exceeded"))
                } else {
                    Ok(chunk)
                })
            });
        let reader = tokio_util::io::StreamReader::new(stream);
        let mut bridge = tokio_util::io::SyncIoBridge::new(reader);
        let result = tokio::task::spawn_blocking(move || {
            let mut buffered = std::io::BufReader::with_capacity(64 * 1024, &mut bridge);
            parse(&mut buffered)
        })
        .await
        .map_err(|e| SourceError::Internal {
            source_name: self.source_name.clone(),
            endpoint: endpoint.into(),
            detail: format!("the parser task did not finish: {e}"),
        })?;
        if exceeded.load(Ordering::SeqCst) {
            return Err(self.too_large(endpoint));
        }
        result
    }

    fn too_large(&self, endpoint: &str) -> SourceError {
        SourceError::TooLarge {
            source_name: self.source_name.clone(),
            endpoint: endpoint.into(),
            limit: self.max_body,
        }
    }
}

/// `e` and every error beneath it, outermost first, joined by ": ", so a log line says why (for an
/// HTTP call: "error sending request: client error (Connect): tcp connect error: Connection
/// refused (os error 111)", where reqwest's own message stops at "error sending request"). A level
/// whose message is already in the one above it is not repeated.
pub fn cause_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// The first few hundred characters of an error body, for the log (vendors put their message there).
async fn read_snippet(resp: reqwest::Response) -> String {
    const MAX: usize = 300;
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Ok(Some(chunk)) = stream.try_next().await {
        out.extend_from_slice(&chunk);
        if out.len() >= MAX {
            break;
        }
    }
    let text = String::from_utf8_lossy(&out[..out.len().min(MAX)]).replace(['\n', '\r'], " ");
    if text.trim().is_empty() {
        "(empty body)".into()
    } else {
        text.trim().to_string()
    }
}

#[cfg(test)]
mod tests {
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
}
