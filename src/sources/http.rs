//! Shared HTTP concerns for every vendor: one client per process (`shared_client`) with each
//! source's call timeout on its requests, a per-token concurrency limiter shared by every source
//! using the same token, a response-size ceiling enforced while reading, and status
//! classification into [`SourceError`]. A body that announces a length up to [`WHOLE_BODY_MAX`]
//! is read whole and parsed from memory (up to [`INLINE_PARSE_MAX`], on the polling task); any
//! other is streamed through its parser, never held whole.
//!
//! Redirects are followed only within the origin (scheme, host, port) of the request: vendor
//! tokens travel in headers (`wolkvox-token`, which reqwest does not strip on a cross-host
//! redirect as it does `Authorization`), so a 3xx to another host, or to plain http, fails the
//! call instead. A vendor's `Retry-After` is honoured up to [`MAX_RETRY_AFTER`].

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::TryStreamExt;
use tokio::sync::Semaphore;

use super::SourceError;
use crate::secret::Secret;

/// A response that announces its length (`Content-Length`) up to this is read whole into one
/// buffer of that size and parsed from memory ([`Body::Whole`]): parsing from a slice reads each
/// value in place instead of byte by byte through a reader, and the texts without escapes are
/// not copied twice. A longer or unannounced one is streamed through the parser ([`Body::Stream`]),
/// so a 256 MB report response never needs 256 MB.
pub const WHOLE_BODY_MAX: u64 = 32 << 20;

/// A response that announces at most this many bytes is read whole and parsed right here, on
/// the polling task, whichever `fetch` asked for it: a blocking thread per small answer cost
/// more in thread hand-offs than the parse itself (a Vonage poll is 20 answers of ≈ 200 bytes;
/// BENCHMARKS.md, P6). A parse of 64 KiB takes well under a millisecond.
pub const INLINE_PARSE_MAX: u64 = 64 << 10;

/// A response body as its parser gets it.
pub enum Body<'a> {
    /// Read whole (at most [`WHOLE_BODY_MAX`] bytes).
    Whole(&'a [u8]),
    /// Streamed, with the size limit enforced as it is read.
    Stream(&'a mut dyn Read),
}

impl Body<'_> {
    /// Parse it with a parser of readers (a whole body is read from memory).
    pub fn read_with<T>(self, parse: impl FnOnce(&mut dyn Read) -> T) -> T {
        match self {
            Body::Whole(mut bytes) => parse(&mut bytes),
            Body::Stream(r) => parse(r),
        }
    }
}

/// Limiter shared by all users of one token (keyed by the token's fingerprint, never its value).
pub fn token_limiter(token: &Secret, permits: usize) -> Arc<Semaphore> {
    static LIMITERS: OnceLock<Mutex<HashMap<u64, Arc<Semaphore>>>> = OnceLock::new();
    let map = LIMITERS.get_or_init(Default::default);
    let mut g = map.lock().unwrap_or_else(|p| p.into_inner());
    g.entry(token.fingerprint())
        .or_insert_with(|| Arc::new(Semaphore::new(permits)))
        .clone()
}

/// The longest a vendor's `Retry-After` is honoured; a longer one is cut to this, with a warning
/// (`Retry-After: 999999999` would otherwise stop a feed until the next restart).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Redirects in one chain, at most (reqwest's default).
const MAX_REDIRECTS: usize = 10;

/// Why a redirect was not followed.
#[derive(Debug, thiserror::Error)]
enum RedirectRefused {
    #[error("redirect to another origin ({to}) refused: credentials are sent only to the configured origin")]
    OtherOrigin { to: String },
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooMany,
}

/// The redirect policy of every vendor client: follow a redirect only within the origin of the
/// request (scheme, host and port), at most `MAX_REDIRECTS` times.
pub fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let to = attempt.url().origin();
        let same = attempt
            .previous()
            .first()
            .is_some_and(|first| to.is_tuple() && first.origin() == to);
        if !same {
            let to = to.ascii_serialization();
            attempt.error(RedirectRefused::OtherOrigin { to })
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(RedirectRefused::TooMany)
        } else {
            attempt.follow()
        }
    })
}

/// A `Retry-After` value: delay-seconds, or an HTTP-date (IMF-fixdate, e.g. `Wed, 21 Oct 2015
/// 07:28:00 GMT`; a date in the past is zero). Not clamped; `None` if it is neither.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// The HTTP client of every source whose connections time out after `connect_timeout`: one per
/// process, not one per source. A client holds its TLS roots, resolver and connection pool
/// (≈ 0.1 MB); a thousand sources kept a thousand of them, and as many idle connections to one
/// vendor host (BENCHMARKS.md, P6). Nothing of a source is in it: tokens travel in each request's
/// headers, the call timeout is set per request ([`SourceHttp`]), and the redirect policy is the
/// same for all.
fn shared_client(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    static CLIENTS: OnceLock<Mutex<HashMap<Duration, reqwest::Client>>> = OnceLock::new();
    let mut clients = CLIENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(c) = clients.get(&connect_timeout) {
        return Ok(c.clone());
    }
    let client = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .user_agent(concat!("ccdc/", env!("CARGO_PKG_VERSION")))
        .redirect(same_origin_redirects())
        .build()?;
    clients.insert(connect_timeout, client.clone());
    Ok(client)
}

/// An HTTP client bound to one source: the process's shared client (`shared_client`) with the
/// source's call timeout on every request.
#[derive(Clone)]
pub struct SourceHttp {
    client: reqwest::Client,
    /// The source's `request_timeout`: the whole call, from connecting to the body's last byte.
    timeout: Duration,
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
        Ok(SourceHttp {
            client: shared_client(timeout.min(Duration::from_secs(10)))?,
            timeout,
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
    /// on a blocking thread (a body announcing at most [`INLINE_PARSE_MAX`] bytes is read whole and
    /// parsed on this task). The token's concurrency permit is held until the body is consumed,
    /// even when the caller stops waiting (a poll past its `poll_timeout`): the parser then reads on
    /// until the request's own timeout, and the token never has more calls open than allowed.
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
        Ok(self.fetch_answered(endpoint, request, parse).await?.0)
    }

    /// [`SourceHttp::fetch`], and when the vendor answered (UTC ms, when the response's headers
    /// arrived): the moment the response describes, to within the network's latency — unlike the
    /// moment the poll began, which can be long before when the token's request slot is busy (a
    /// report pull of the same token can hold it for seconds).
    pub async fn fetch_answered<T, F>(
        &self,
        endpoint: &str,
        request: reqwest::RequestBuilder,
        parse: F,
    ) -> Result<(T, i64), SourceError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Read) -> Result<T, SourceError> + Send + 'static,
    {
        let parse = move |body: Body<'_>| body.read_with(parse);
        self.fetch_inner(endpoint, request, None, parse).await
    }

    /// [`SourceHttp::fetch_answered`] with the body given to `parse` whole when it announced a
    /// length up to [`WHOLE_BODY_MAX`] (read on this task, then parsed on a blocking thread; the
    /// token's permit is released once it is read), else streamed as [`SourceHttp::fetch`] says.
    pub async fn fetch_body_answered<T, F>(
        &self,
        endpoint: &str,
        request: reqwest::RequestBuilder,
        parse: F,
    ) -> Result<(T, i64), SourceError>
    where
        T: Send + 'static,
        F: for<'b> FnOnce(Body<'b>) -> Result<T, SourceError> + Send + 'static,
    {
        self.fetch_inner(endpoint, request, Some(WHOLE_BODY_MAX), parse)
            .await
    }

    /// Send, check, then read whole (a body announcing at most `whole_max` bytes) or stream.
    async fn fetch_inner<T, F>(
        &self,
        endpoint: &str,
        request: reqwest::RequestBuilder,
        whole_max: Option<u64>,
        parse: F,
    ) -> Result<(T, i64), SourceError>
    where
        T: Send + 'static,
        F: for<'b> FnOnce(Body<'b>) -> Result<T, SourceError> + Send + 'static,
    {
        let permit =
            self.limiter
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| SourceError::Transport {
                    source_name: self.source_name.clone(),
                    endpoint: endpoint.into(),
                    detail: "shutting down".into(),
                    timeout: false,
                })?;
        let resp = request
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.transport(endpoint, &e))?;
        let answered = chrono::Utc::now().timestamp_millis();
        let resp = self.check_status(endpoint, resp).await?;
        let whole = resp
            .content_length()
            .filter(|n| *n <= INLINE_PARSE_MAX || whole_max.is_some_and(|m| *n <= m));
        if let Some(len) = whole {
            let body = self.read_whole(endpoint, resp, len).await?;
            drop(permit);
            if len <= INLINE_PARSE_MAX {
                return Ok((parse(Body::Whole(&body))?, answered));
            }
            let parsed = tokio::task::spawn_blocking(move || parse(Body::Whole(&body)))
                .await
                .map_err(|e| self.parser_task(endpoint, &e))?;
            return Ok((parsed?, answered));
        }
        Ok((
            self.parse_body(endpoint, resp, permit, parse).await?,
            answered,
        ))
    }

    /// The body of a response that announced `len` bytes, in one buffer of that size, read as
    /// it arrives (each chunk released once copied); past the size limit, [`SourceError::TooLarge`].
    async fn read_whole(
        &self,
        endpoint: &str,
        resp: reqwest::Response,
        len: u64,
    ) -> Result<Vec<u8>, SourceError> {
        let mut body = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        let mut stream = resp.bytes_stream();
        loop {
            match stream.try_next().await {
                Ok(Some(chunk)) => {
                    if (body.len() as u64).saturating_add(chunk.len() as u64) > self.max_body {
                        return Err(self.too_large(endpoint));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) => {
                    return Err(SourceError::Transport {
                        source_name: self.source_name.clone(),
                        endpoint: endpoint.into(),
                        detail: format!("reading the body: {}", cause_chain(&e)),
                        timeout: e.is_timeout(),
                    })
                }
            }
        }
    }

    fn parser_task(&self, endpoint: &str, e: &tokio::task::JoinError) -> SourceError {
        SourceError::Internal {
            source_name: self.source_name.clone(),
            endpoint: endpoint.into(),
            detail: format!("the parser task did not finish: {e}"),
        }
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
                .and_then(|v| parse_retry_after(v, chrono::Utc::now()))
                .map(|d| {
                    if d > MAX_RETRY_AFTER {
                        tracing::warn!(
                            source = %self.source_name,
                            endpoint,
                            retry_after_s = d.as_secs(),
                            max_s = MAX_RETRY_AFTER.as_secs(),
                            "the vendor's Retry-After is beyond the ceiling; waiting the ceiling instead"
                        );
                    }
                    d.min(MAX_RETRY_AFTER)
                });
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
        permit: tokio::sync::OwnedSemaphorePermit,
        parse: F,
    ) -> Result<T, SourceError>
    where
        T: Send + 'static,
        F: for<'b> FnOnce(Body<'b>) -> Result<T, SourceError> + Send + 'static,
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
            let _permit = permit;
            let mut buffered = std::io::BufReader::with_capacity(64 * 1024, &mut bridge);
            parse(Body::Stream(&mut buffered))
        })
        .await
        .map_err(|e| self.parser_task(endpoint, &e))?;
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
mod tests;
