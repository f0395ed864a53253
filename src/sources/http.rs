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
        let e2 = e.to_string();
        let detail = match e.url() {
            Some(u) => e2
                .replace(&format!(" ({u})"), "")
                .replace(u.as_str(), "<url>"),
            None => e2,
        };
        let detail = match std::error::Error::source(e) {
            Some(src) => format!("{detail}: {src}"),
            None => detail,
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
        // Stream the body through a counting guard into a synchronous reader.
        let exceeded = Arc::new(AtomicBool::new(false));
        let (limit, flag) = (self.max_body, exceeded.clone());
        let mut seen: u64 = 0;
        let stream = resp
            .bytes_stream()
            .map_err(std::io::Error::other)
            .and_then(move |chunk| {
                seen += chunk.len() as u64;
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
        .map_err(|e| SourceError::Parse {
            source_name: self.source_name.clone(),
            endpoint: endpoint.into(),
            field: "<body>".into(),
            detail: format!("parser task failed: {e}"),
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
