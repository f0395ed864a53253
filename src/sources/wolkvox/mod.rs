//! Wolkvox (seeds 000–002 and ../shared/vendor-notes.md).
//!
//! Every call: `GET {base_url}/<endpoint>.php?api=...` with header `wolkvox-token`. Envelope
//! `{code, error, msg, data}`: `code` is a number on some endpoints and a string on others; 200, 201
//! and 202 mean success. Every field in `data` is a string (numbers tolerated); `""` means no value.
//! One client per source (on the process's shared HTTP client); every request of every source
//! using the same token shares one limiter.

pub mod agents;
mod flat;
pub mod interactions;
pub mod report_rows;
pub mod report_stream;

use std::borrow::Cow;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::bound::PollBound;
use super::http::{token_limiter, Body, SourceHttp};
use super::SourceError;
use crate::config::{PollConfig, WolkvoxConfig};
use crate::event::report::ReportKind;
use crate::event::SourceMeta;
use crate::secret::Secret;
use crate::store::Store;
use crate::window::Window;

pub const VENDOR: &str = "wolkvox";

pub struct WolkvoxClient {
    pub meta: SourceMeta,
    http: SourceHttp,
    base_url: String,
    token: Secret,
    pub tz: Tz,
    quota: Option<Quota>,
    /// A `chat_1` report is pulled for this source: real-time polling keeps what it saw of each
    /// interaction for the report's reconciliation ([`crate::event::reconciled::Sighting`]).
    pub reconcile: bool,
    /// How much one poll of `interactions` may decode, and how long it may take.
    pub interactions_limits: (PollBound, Duration),
    /// Likewise for `agents`.
    pub agents_limits: (PollBound, Duration),
}

/// Calls per token per day (in the operation's zone), persisted in the store; the vendor allows
/// licenses × 1000. Shared by every feed and source using the token.
struct Quota {
    store: Arc<dyn Store>,
    limit: Option<u64>,
}

impl WolkvoxClient {
    pub fn new(cfg: &WolkvoxConfig) -> anyhow::Result<Arc<Self>> {
        let token = cfg.token.resolve()?;
        let tz = cfg.tz()?;
        let limiter = token_limiter(&token, cfg.max_concurrent_requests);
        let http = SourceHttp::new(
            &cfg.name,
            cfg.request_timeout,
            limiter,
            cfg.max_response_bytes,
        )?;
        Ok(Arc::new(WolkvoxClient {
            meta: SourceMeta {
                name: cfg.name.clone(),
                vendor: VENDOR.into(),
            },
            http,
            base_url: cfg.base_url.trim_end_matches('/').to_string(),
            token,
            tz,
            quota: None,
            reconcile: cfg.interactions.enabled
                && cfg
                    .reports
                    .iter()
                    .any(|r| r.enabled && r.report == ReportKind::Chat1.name()),
            interactions_limits: limits(cfg, &cfg.interactions),
            agents_limits: limits(cfg, &cfg.agents),
        }))
    }

    /// The same client, counting every call in `store` and refusing calls past `limit` a day.
    pub fn with_quota(cfg: &WolkvoxConfig, store: Arc<dyn Store>) -> anyhow::Result<Arc<Self>> {
        let mut c = Arc::try_unwrap(Self::new(cfg)?)
            .map_err(|_| anyhow::anyhow!("client shared before configuration"))?;
        c.quota = Some(Quota {
            store,
            limit: cfg.daily_call_limit,
        });
        Ok(Arc::new(c))
    }

    fn quota_key(&self) -> String {
        let day = chrono::Utc::now()
            .with_timezone(&self.tz)
            .format("%Y-%m-%d");
        format!("quota/{:016x}/{day}", self.token.fingerprint())
    }

    /// Calls made today with this client's token (0 without quota tracking).
    pub fn calls_today(&self) -> u64 {
        self.quota
            .as_ref()
            .and_then(|q| q.store.get(&self.quota_key()).ok().flatten())
            .and_then(|v| v.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0)
    }

    /// Count one call, or refuse it when today's budget is spent.
    fn charge(&self, endpoint: &str) -> Result<(), SourceError> {
        let Some(q) = &self.quota else { return Ok(()) };
        let used = self.calls_today();
        if let Some(limit) = q.limit.filter(|l| used >= *l) {
            return Err(SourceError::Quota {
                source_name: self.meta.name.clone(),
                endpoint: endpoint.into(),
                used,
                limit,
            });
        }
        // Durable with the poll's commit, not a disk flush per call (a crash in between forgets
        // the calls of the polls in flight; BENCHMARKS.md, P6).
        let used = q
            .store
            .increment_lazily(&self.quota_key(), 1)
            .map_err(|e| SourceError::Store {
                source_name: self.meta.name.clone(),
                endpoint: endpoint.into(),
                detail: e.to_string(),
            })?;
        metrics::gauge!("ccdc_vendor_calls_today", "source" => self.meta.name.clone())
            .set(used as f64);
        if let Some(limit) = q.limit {
            metrics::gauge!("ccdc_vendor_calls_remaining_today", "source" => self.meta.name.clone()).set(limit.saturating_sub(used) as f64);
        }
        Ok(())
    }

    fn token_header(&self, endpoint: &str) -> Result<reqwest::header::HeaderValue, SourceError> {
        let mut token =
            reqwest::header::HeaderValue::from_str(self.token.expose()).map_err(|_| {
                SourceError::Parse {
                    source_name: self.meta.name.clone(),
                    endpoint: endpoint.into(),
                    field: "token".into(),
                    detail: "the configured token is not a valid HTTP header value".into(),
                }
            })?;
        token.set_sensitive(true);
        Ok(token)
    }

    /// `GET {base_url}/reports_manager.php?api={report}&date_ini=..&date_end=..`, streamed through `parse`.
    pub async fn report<T, F>(
        &self,
        report: &str,
        endpoint: &str,
        w: &Window,
        parse: F,
    ) -> Result<T, SourceError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Read) -> Result<T, SourceError> + Send + 'static,
    {
        let (ini, end) = (w.date_ini(), w.date_end());
        self.call(
            "reports_manager.php",
            &[("api", report), ("date_ini", &ini), ("date_end", &end)],
            endpoint,
            parse,
        )
        .await
        .map(|(rows, _answered)| rows)
    }

    /// [`WolkvoxClient::report`] with the body given to `parse` whole when it announced a small
    /// enough length ([`Body::Whole`]: a report window's rows are found in place), else streamed.
    pub async fn report_body<T, F>(
        &self,
        report: &str,
        endpoint: &str,
        w: &Window,
        parse: F,
    ) -> Result<T, SourceError>
    where
        T: Send + 'static,
        F: for<'b> FnOnce(Body<'b>) -> Result<T, SourceError> + Send + 'static,
    {
        let (ini, end) = (w.date_ini(), w.date_end());
        let query = [("api", report), ("date_ini", &ini), ("date_end", &end)];
        let req = self.request("reports_manager.php", &query, endpoint)?;
        Ok(self.http.fetch_body_answered(endpoint, req, parse).await?.0)
    }

    /// `GET {base_url}/real_time.php?api={api}`, the body streamed through `parse`.
    /// The parsed response, and when the vendor answered (UTC ms): the moment it describes.
    pub async fn real_time<T, F>(
        &self,
        api: &'static str,
        endpoint: &'static str,
        parse: F,
    ) -> Result<(T, i64), SourceError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Read) -> Result<T, SourceError> + Send + 'static,
    {
        self.call("real_time.php", &[("api", api)], endpoint, parse)
            .await
    }

    /// [`WolkvoxClient::real_time`] with the body given to `parse` whole when it announced a
    /// small enough length ([`Body::Whole`]; the interactions snapshot is parsed from memory).
    pub async fn real_time_body<T, F>(
        &self,
        api: &'static str,
        endpoint: &'static str,
        parse: F,
    ) -> Result<(T, i64), SourceError>
    where
        T: Send + 'static,
        F: for<'b> FnOnce(Body<'b>) -> Result<T, SourceError> + Send + 'static,
    {
        let req = self.request("real_time.php", &[("api", api)], endpoint)?;
        self.http.fetch_body_answered(endpoint, req, parse).await
    }

    /// Every Wolkvox call: counted against the daily budget, the token header, the shared limiter.
    async fn call<T, F>(
        &self,
        script: &str,
        query: &[(&str, &str)],
        endpoint: &str,
        parse: F,
    ) -> Result<(T, i64), SourceError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Read) -> Result<T, SourceError> + Send + 'static,
    {
        let req = self.request(script, query, endpoint)?;
        self.http.fetch_answered(endpoint, req, parse).await
    }

    /// The request of one call, counted against the daily budget, with the token header.
    fn request(
        &self,
        script: &str,
        query: &[(&str, &str)],
        endpoint: &str,
    ) -> Result<reqwest::RequestBuilder, SourceError> {
        self.charge(endpoint)?;
        let token = self.token_header(endpoint)?;
        Ok(self
            .http
            .client()
            .get(format!("{}/{script}", self.base_url))
            .query(query)
            .header("wolkvox-token", token))
    }
}

/// The decoding bound and the time bound of one poll of the endpoint polled as `poll`.
fn limits(cfg: &WolkvoxConfig, poll: &PollConfig) -> (PollBound, Duration) {
    (
        PollBound::new(poll.max_rows_per_poll, cfg.max_response_bytes),
        poll.poll_timeout_for(cfg.request_timeout),
    )
}

/// A real-time answer of `rows` data rows: one with as many as Wolkvox sends per call at most
/// (60,000 records) may have been cut short, and a row left out would read as an interaction
/// ended or an agent logged out, so it is refused ([`SourceError::AtRowLimit`]). The limit counts
/// `data` entries, as a report's rows are counted (an interactions answer's are agent rows).
pub(crate) fn check_row_limit(
    source: &str,
    endpoint: &str,
    rows: usize,
) -> Result<(), SourceError> {
    let rows = u64::try_from(rows).unwrap_or(u64::MAX);
    if rows < crate::config::limits::WOLKVOX_MAX_ROWS {
        return Ok(());
    }
    Err(SourceError::AtRowLimit {
        source_name: source.into(),
        endpoint: endpoint.into(),
        rows,
    })
}

/// The Wolkvox response envelope; `D` is what `data` decodes into (usually a `Vec` of rows).
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "D: Deserialize<'de>"))]
pub struct Envelope<D> {
    #[serde(default, deserialize_with = "opt_lenient_string")]
    pub code: Option<String>,
    #[serde(default)]
    pub error: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "opt_lenient_string")]
    pub msg: Option<String>,
    #[serde(default)]
    pub data: Option<D>,
}

impl<D: Default> Envelope<D> {
    /// `code` 200/201/202 (number or string) → the `data` rows (`null` or absent: none, as the
    /// vendor's "0 records were found"); anything else → a vendor error.
    pub fn into_data(self, source: &str, endpoint: &str) -> Result<D, SourceError> {
        let code = self.code.ok_or_else(|| SourceError::Parse {
            source_name: source.into(),
            endpoint: endpoint.into(),
            field: "code".into(),
            detail: "missing".into(),
        })?;
        if !matches!(code.trim(), "200" | "201" | "202") {
            let mut message = match self.error {
                Some(serde_json::Value::String(s)) => s,
                Some(serde_json::Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            if let Some(m) = self.msg {
                if !message.is_empty() {
                    message.push_str("; ");
                }
                message.push_str(&m);
            }
            let message: String = message.chars().take(300).collect();
            return Err(SourceError::Vendor {
                source_name: source.into(),
                endpoint: endpoint.into(),
                code,
                message,
            });
        }
        Ok(self.data.unwrap_or_default())
    }
}

/// A field of a Wolkvox row as text ([`Field`]'s rules).
pub fn row_text(row: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<String> {
    Field::deserialize(row.get(key)?).ok()?.text()
}

/// A field of a Wolkvox row as text: trimmed; a number as its JSON text; `""`, `null`, booleans,
/// lists and objects are `None` (the vendor sends every field as a string). Borrowed from the JSON
/// text unless it contains escapes. Report rows ([`report_rows`]) and agent rows
/// ([`row_text`]) share these rules.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Field<'a>(Option<Cow<'a, str>>);

/// Field text: trimmed; empty is absent.
fn trimmed(v: &str) -> Option<&str> {
    Some(crate::vendor_time::trim(v)).filter(|t| !t.is_empty())
}

impl<'a> Field<'a> {
    /// The field of a JSON string value without escapes, `v` being its text between the quotes:
    /// what deserializing that value gives.
    pub fn plain(v: &'a str) -> Self {
        Field(trimmed(v).map(Cow::Borrowed))
    }

    pub fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }
    pub fn text(&self) -> Option<String> {
        self.0.as_deref().map(str::to_string)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Field::plain(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Field(trimmed(v).map(|t| Cow::Owned(t.to_string()))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Field(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Field(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Field(
                    serde_json::Number::from_f64(v).map(|n| Cow::Owned(n.to_string())),
                ))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Field(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Field(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A string field that may arrive as a number (trimmed).
pub fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(opt_lenient_string(d)?.unwrap_or_default())
}

/// Like [`lenient_string`]; `null` and `""` are `None`.
pub fn opt_lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> de::Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string or a number")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(trimmed(v).map(str::to_string))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            self.visit_str(&v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(V)
        }
    }
    d.deserialize_any(V)
}
