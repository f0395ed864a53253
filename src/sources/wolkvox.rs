//! Wolkvox (seed 000 and ../shared/vendor-notes.md).
//!
//! `GET {base_url}/real_time.php?api=interactions` with header `wolkvox-token`. Envelope
//! `{code, error, msg, data}`: `code` is a number on some endpoints and a string on others; 200, 201
//! and 202 mean success. Every field in `data` is a string (numbers tolerated); `""` means no value.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use async_trait::async_trait;
use chrono_tz::Tz;
use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::http::{token_limiter, SourceHttp};
use super::{InteractionSource, SourceError};
use crate::config::WolkvoxConfig;
use crate::diff::{ActiveInteraction, InteractionKey, InteractionSnapshot, SourceMeta};
use crate::secret::Secret;
use crate::vendor_time::vendor_local_to_utc;

pub const VENDOR: &str = "wolkvox";
pub const INTERACTIONS_ENDPOINT: &str = "real_time.php?api=interactions";

pub struct WolkvoxSource {
    meta: SourceMeta,
    http: SourceHttp,
    base_url: String,
    token: Secret,
    tz: Tz,
}

impl WolkvoxSource {
    pub fn new(cfg: &WolkvoxConfig) -> anyhow::Result<Arc<Self>> {
        let token = cfg.token.resolve()?;
        let tz = cfg.tz().map_err(anyhow::Error::msg)?;
        let limiter = token_limiter(&token, cfg.max_concurrent_requests);
        let http = SourceHttp::new(
            &cfg.name,
            cfg.request_timeout,
            limiter,
            cfg.max_response_bytes,
        )?;
        Ok(Arc::new(WolkvoxSource {
            meta: SourceMeta {
                name: cfg.name.clone(),
                vendor: VENDOR.into(),
            },
            http,
            base_url: cfg.base_url.trim_end_matches('/').to_string(),
            token,
            tz,
        }))
    }
}

#[async_trait]
impl InteractionSource for WolkvoxSource {
    fn meta(&self) -> &SourceMeta {
        &self.meta
    }
    fn endpoint(&self) -> &str {
        INTERACTIONS_ENDPOINT
    }
    async fn fetch_interactions(
        &self,
        observed_at: i64,
    ) -> Result<InteractionSnapshot, SourceError> {
        let mut token =
            reqwest::header::HeaderValue::from_str(self.token.expose()).map_err(|_| {
                SourceError::Parse {
                    source_name: self.meta.name.clone(),
                    endpoint: INTERACTIONS_ENDPOINT.into(),
                    field: "token".into(),
                    detail: "the configured token is not a valid HTTP header value".into(),
                }
            })?;
        token.set_sensitive(true);
        let req = self
            .http
            .client()
            .get(format!("{}/real_time.php", self.base_url))
            .query(&[("api", "interactions")])
            .header("wolkvox-token", token);
        let (name, tz) = (self.meta.name.clone(), self.tz);
        self.http
            .fetch(INTERACTIONS_ENDPOINT, req, move |r| {
                parse_interactions(&name, tz, observed_at, r)
            })
            .await
    }
}

/// Outcome of decoding one interactions response (exposed for tests and benchmarks).
pub fn parse_interactions(
    source: &str,
    tz: Tz,
    observed_at: i64,
    body: &mut dyn Read,
) -> Result<InteractionSnapshot, SourceError> {
    let err = |field: String, detail: String| SourceError::Parse {
        source_name: source.into(),
        endpoint: INTERACTIONS_ENDPOINT.into(),
        field,
        detail,
    };
    let mut de = serde_json::Deserializer::from_reader(body);
    let env: Envelope<AgentRow> = match serde_path_to_error::deserialize(&mut de) {
        Ok(e) => e,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_io() {
                return Err(SourceError::Transport {
                    source_name: source.into(),
                    endpoint: INTERACTIONS_ENDPOINT.into(),
                    timeout: inner.to_string().contains("timed out"),
                    detail: format!("reading the body: {inner}"),
                });
            }
            let field = if path == "." { "<body>".into() } else { path };
            return Err(err(field, inner.to_string()));
        }
    };
    let data = env.into_data(source, INTERACTIONS_ENDPOINT)?;

    let mut snap = InteractionSnapshot {
        observed_at,
        interactions: BTreeMap::new(),
    };
    let mut bad_dates = 0usize;
    let mut duplicates = 0usize;
    for (i, agent) in data.into_iter().enumerate() {
        if agent.agent_id.is_empty() {
            return Err(err(format!("data[{i}].agent_id"), "empty agent id".into()));
        }
        for (j, it) in agent.active_interactions.into_iter().enumerate() {
            if it.conn_id.is_empty() {
                return Err(err(
                    format!("data[{i}].active_interactions[{j}].conn_id"),
                    "empty conn_id".into(),
                ));
            }
            let vendor_timestamp = it.date.as_deref().and_then(|d| vendor_local_to_utc(d, tz));
            if it.date.is_some() && vendor_timestamp.is_none() {
                bad_dates += 1;
            }
            let key = InteractionKey {
                interaction_id: it.conn_id,
                agent_id: agent.agent_id.clone(),
            };
            match snap.interactions.entry(key) {
                Entry::Vacant(v) => {
                    v.insert(ActiveInteraction {
                        subject: it.subject,
                        from_name: it.fromname,
                        vendor_timestamp,
                        vendor_timestamp_raw: it.date,
                    });
                }
                Entry::Occupied(_) => duplicates += 1,
            }
        }
    }
    if bad_dates > 0 {
        tracing::warn!(
            source = source,
            endpoint = INTERACTIONS_ENDPOINT,
            field = "date",
            count = bad_dates,
            "dates in no known format; vendor_timestamp left null, raw text kept"
        );
        metrics::counter!("ccdc_field_parse_failures_total", "source" => source.to_string(), "field" => "date").increment(bad_dates as u64);
    }
    if duplicates > 0 {
        tracing::warn!(
            source = source,
            endpoint = INTERACTIONS_ENDPOINT,
            count = duplicates,
            "duplicate (agent_id, conn_id) pairs in one response; kept the first"
        );
        metrics::counter!("ccdc_duplicate_rows_total", "source" => source.to_string())
            .increment(duplicates as u64);
    }
    Ok(snap)
}

/// The Wolkvox response envelope.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct Envelope<T> {
    #[serde(default, deserialize_with = "opt_lenient_string")]
    pub code: Option<String>,
    #[serde(default)]
    pub error: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "opt_lenient_string")]
    pub msg: Option<String>,
    #[serde(default)]
    pub data: Option<Vec<T>>,
}

impl<T> Envelope<T> {
    /// `code` 200/201/202 (number or string) → the `data` rows; anything else → a vendor error.
    pub fn into_data(self, source: &str, endpoint: &str) -> Result<Vec<T>, SourceError> {
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
            message.truncate(300);
            return Err(SourceError::Vendor {
                source_name: source.into(),
                endpoint: endpoint.into(),
                code,
                message,
            });
        }
        self.data.ok_or_else(|| SourceError::Parse {
            source_name: source.into(),
            endpoint: endpoint.into(),
            field: "data".into(),
            detail: "missing or null in a successful response".into(),
        })
    }
}

#[derive(Debug, Deserialize)]
struct AgentRow {
    #[serde(deserialize_with = "lenient_string")]
    agent_id: String,
    active_interactions: Vec<RawInteraction>,
}

#[derive(Debug, Deserialize)]
struct RawInteraction {
    #[serde(deserialize_with = "lenient_string")]
    conn_id: String,
    #[serde(default, deserialize_with = "opt_lenient_string")]
    subject: Option<String>,
    #[serde(default, deserialize_with = "opt_lenient_string")]
    fromname: Option<String>,
    #[serde(default, deserialize_with = "opt_lenient_string")]
    date: Option<String>,
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
            let t = v.trim();
            Ok((!t.is_empty()).then(|| t.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<InteractionSnapshot, SourceError> {
        parse_interactions(
            "ops",
            "America/Bogota".parse().unwrap(),
            42,
            &mut body.as_bytes(),
        )
    }

    #[test]
    fn seed_shape_with_string_code_parses() {
        let body = r#"{"code":"200","error":null,"msg":"2 records were found","data":[
            {"agent_id":"1001","active_interactions":[
                {"conn_id":"c1","subject":"Hola","fromname":"Ana","date":"2026-11-21 10:15:00"},
                {"conn_id":"c2","subject":"","fromname":"","date":""}]},
            {"agent_id":1002,"active_interactions":[]}]}"#;
        let s = parse(body).unwrap();
        assert_eq!(s.observed_at, 42);
        assert_eq!(s.interactions.len(), 2);
        let c1 = &s.interactions[&InteractionKey {
            interaction_id: "c1".into(),
            agent_id: "1001".into(),
        }];
        assert_eq!(c1.subject.as_deref(), Some("Hola"));
        assert_eq!(
            c1.vendor_timestamp_raw.as_deref(),
            Some("2026-11-21 10:15:00")
        );
        assert_eq!(c1.vendor_timestamp, Some(1_795_274_100_000)); // 15:15:00Z
        let c2 = &s.interactions[&InteractionKey {
            interaction_id: "c2".into(),
            agent_id: "1001".into(),
        }];
        assert_eq!((c2.subject.as_deref(), c2.vendor_timestamp), (None, None));
    }

    #[test]
    fn numeric_codes_200_201_202_are_success() {
        for code in ["200", "201", "202", "\"201\""] {
            let body = format!(r#"{{"code":{code},"data":[]}}"#);
            assert!(parse(&body).unwrap().interactions.is_empty(), "code {code}");
        }
    }

    #[test]
    fn vendor_error_code_is_an_error_with_the_vendors_message() {
        let e = parse(
            r#"{"code":401,"error":"invalid token","msg":"0 records were found","data":null}"#,
        )
        .unwrap_err();
        assert_eq!(e.kind(), "vendor_code");
        let text = e.to_string();
        assert!(
            text.contains("ops")
                && text.contains(INTERACTIONS_ENDPOINT)
                && text.contains("401")
                && text.contains("invalid token"),
            "{text}"
        );
    }

    #[test]
    fn wrong_types_and_missing_fields_name_the_field() {
        let e = parse(r#"{"code":200,"data":[{"agent_id":"1","active_interactions":"none"}]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("data[0].active_interactions"), "{e}");
        let e = parse(r#"{"code":200,"data":[{"agent_id":"1"}]}"#).unwrap_err();
        assert!(e.to_string().contains("active_interactions"), "{e}");
        let e = parse(
            r#"{"code":200,"data":[{"agent_id":"1","active_interactions":[{"subject":"x"}]}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("conn_id"), "{e}");
        let e =
            parse(r#"{"code":200,"data":[{"agent_id":"","active_interactions":[]}]}"#).unwrap_err();
        assert!(e.to_string().contains("data[0].agent_id"), "{e}");
        let e = parse(r#"{"code":200}"#).unwrap_err();
        assert!(e.to_string().contains("`data`"), "{e}");
        let e = parse(r#"{"data":[]}"#).unwrap_err();
        assert!(e.to_string().contains("`code`"), "{e}");
    }

    #[test]
    fn truncated_or_malformed_json_is_a_parse_error() {
        assert_eq!(
            parse(r#"{"code":200,"data":[{"agent_id":"1","active_inter"#)
                .unwrap_err()
                .kind(),
            "parse"
        );
        assert_eq!(
            parse("<html>502 Bad Gateway</html>").unwrap_err().kind(),
            "parse"
        );
    }

    #[test]
    fn duplicate_pairs_are_kept_once() {
        let body = r#"{"code":200,"data":[{"agent_id":"1","active_interactions":[{"conn_id":"c"},{"conn_id":"c"}]}]}"#;
        assert_eq!(parse(body).unwrap().interactions.len(), 1);
    }
}
