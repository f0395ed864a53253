//! Confluent-compatible Schema Registry: the [`SchemaRegistry`] trait, the HTTP client and an
//! in-memory implementation. Subjects follow TopicNameStrategy (`<topic>-value`).

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use crate::secret::Secret;

mod memory;
pub use memory::MemoryRegistry;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry refused the schema (HTTP 409 incompatible, 422 invalid): retrying will not help.
    #[error("schema registry refused subject `{subject}` (HTTP {status}, code {code}): {message}")]
    Rejected {
        subject: String,
        status: u16,
        code: i64,
        message: String,
    },
    /// Authentication or authorisation failed: fix the credentials.
    #[error("schema registry: HTTP {status} for `{subject}`: {message}")]
    Auth {
        subject: String,
        status: u16,
        message: String,
    },
    /// The registry is down or failing; retry later.
    #[error("schema registry unavailable ({context}): {message}")]
    Unavailable { context: String, message: String },
    #[error("schema registry: subject `{0}` does not hold this schema")]
    NotRegistered(String),
}

impl RegistryError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, RegistryError::Unavailable { .. })
    }
}

/// Result of a compatibility check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compatibility {
    /// The subject exists and the schema is compatible with it.
    Compatible,
    /// The subject does not exist yet: registration would create it.
    NewSubject,
    /// Registration would be refused, with the registry's reasons.
    Incompatible(Vec<String>),
}

pub fn subject_for_topic(topic: &str) -> String {
    format!("{topic}-value")
}

#[async_trait]
pub trait SchemaRegistry: Send + Sync {
    /// Register (idempotently) and return the schema id.
    async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError>;
    /// The id of `schema` under `subject`, if registered.
    async fn lookup(&self, subject: &str, schema: &str) -> Result<Option<u32>, RegistryError>;
    /// Would registering `schema` under `subject` succeed?
    async fn check(&self, subject: &str, schema: &str) -> Result<Compatibility, RegistryError>;
    /// The compatibility level in force for `subject` (its own, else the registry's default), if
    /// the registry says.
    async fn compatibility_level(&self, subject: &str) -> Result<Option<String>, RegistryError>;
}

/// The levels that keep ccdc's schema evolution safe for consumers: a consumer with the newest
/// schema reads every record ccdc wrote before (ccdc only adds optional fields with defaults).
pub const EXPECTED_LEVELS: &[&str] =
    &["BACKWARD", "BACKWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"];

/// Register or look up every schema a publisher needs, returning the id.
pub async fn resolve_id(
    reg: &dyn SchemaRegistry,
    subject: &str,
    schema: &str,
    auto_register: bool,
) -> Result<u32, RegistryError> {
    if auto_register {
        reg.register(subject, schema).await
    } else {
        reg.lookup(subject, schema)
            .await?
            .ok_or_else(|| RegistryError::NotRegistered(subject.into()))
    }
}

pub struct HttpRegistry {
    client: reqwest::Client,
    base: String,
    auth: Option<(String, Secret)>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error_code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct IdBody {
    id: u32,
}

#[derive(Deserialize)]
struct VersionBody {
    id: u32,
    schema: String,
}

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

impl HttpRegistry {
    /// `ca_pem`: an extra trusted root (PEM) for a registry behind a private CA.
    pub fn new(
        url: &str,
        auth: Option<(String, Secret)>,
        timeout: Duration,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, RegistryError> {
        let err = |message: String| RegistryError::Unavailable {
            context: "client".into(),
            message,
        };
        // Credentials never follow a redirect off the registry's origin (reqwest would keep them on
        // a same-host switch from https to plain http).
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(crate::sources::http::same_origin_redirects());
        if let Some(pem) = ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| err(format!("ca_file: {e}")))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| err(e.to_string()))?;
        Ok(HttpRegistry {
            client,
            base: url.trim_end_matches('/').to_string(),
            auth,
        })
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .header("Accept", CONTENT_TYPE);
        if let Some((user, pass)) = &self.auth {
            r = r.basic_auth(user, Some(pass.expose()));
        }
        r
    }

    /// Send; return (status, body text). Transport failures are `Unavailable`.
    async fn send(
        &self,
        subject: &str,
        r: reqwest::RequestBuilder,
    ) -> Result<(u16, String), RegistryError> {
        let resp = r.send().await.map_err(|e| RegistryError::Unavailable {
            context: subject.into(),
            message: crate::sources::http::cause_chain(&e.without_url()),
        })?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| RegistryError::Unavailable {
            context: subject.into(),
            message: crate::sources::http::cause_chain(&e.without_url()),
        })?;
        Ok((status, body))
    }

    fn error(subject: &str, status: u16, body: &str) -> RegistryError {
        let parsed: Option<ErrorBody> = serde_json::from_str(body).ok();
        let (code, message) = match parsed {
            Some(b) => (b.error_code, b.message),
            None => (0, body.chars().take(300).collect()),
        };
        match status {
            401 | 403 => RegistryError::Auth {
                subject: subject.into(),
                status,
                message,
            },
            409 | 422 => RegistryError::Rejected {
                subject: subject.into(),
                status,
                code,
                message,
            },
            _ => RegistryError::Unavailable {
                context: format!("{subject}: HTTP {status}"),
                message,
            },
        }
    }

    fn parse<T: for<'de> Deserialize<'de>>(subject: &str, body: &str) -> Result<T, RegistryError> {
        serde_json::from_str(body).map_err(|e| RegistryError::Unavailable {
            context: subject.into(),
            message: format!("unexpected response: {e}"),
        })
    }

    /// Set a subject's compatibility level (used by tests and operators' tooling).
    pub async fn set_compatibility(&self, subject: &str, level: &str) -> Result<(), RegistryError> {
        let r = self
            .req(reqwest::Method::PUT, &format!("/config/{subject}"))
            .header("Content-Type", CONTENT_TYPE)
            .body(json!({ "compatibility": level }).to_string());
        match self.send(subject, r).await? {
            (200, _) => Ok(()),
            (s, b) => Err(Self::error(subject, s, &b)),
        }
    }

    /// The schema text registered under `id`.
    pub async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        #[derive(Deserialize)]
        struct S {
            schema: String,
        }
        let ctx = format!("schema id {id}");
        match self
            .send(
                &ctx,
                self.req(reqwest::Method::GET, &format!("/schemas/ids/{id}")),
            )
            .await?
        {
            (200, b) => Ok(Self::parse::<S>(&ctx, &b)?.schema),
            (s, b) => Err(Self::error(&ctx, s, &b)),
        }
    }
}

fn same_schema(a: &str, b: &str) -> bool {
    match (
        apache_avro::Schema::parse_str(a),
        apache_avro::Schema::parse_str(b),
    ) {
        (Ok(x), Ok(y)) => x.canonical_form() == y.canonical_form(),
        _ => a == b,
    }
}

#[async_trait]
impl SchemaRegistry for HttpRegistry {
    async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let r = self
            .req(
                reqwest::Method::POST,
                &format!("/subjects/{subject}/versions"),
            )
            .header("Content-Type", CONTENT_TYPE)
            .body(json!({ "schema": schema }).to_string());
        match self.send(subject, r).await? {
            (200, b) => Ok(Self::parse::<IdBody>(subject, &b)?.id),
            (s, b) => Err(Self::error(subject, s, &b)),
        }
    }

    async fn lookup(&self, subject: &str, schema: &str) -> Result<Option<u32>, RegistryError> {
        // The standard lookup; some registries do not serve it, so fall back to listing versions.
        let r = self
            .req(reqwest::Method::POST, &format!("/subjects/{subject}"))
            .header("Content-Type", CONTENT_TYPE)
            .body(json!({ "schema": schema }).to_string());
        if let (200, b) = self.send(subject, r).await? {
            if let Ok(v) = serde_json::from_str::<IdBody>(&b) {
                return Ok(Some(v.id));
            }
        }
        let versions: Vec<i64> = match self
            .send(
                subject,
                self.req(
                    reqwest::Method::GET,
                    &format!("/subjects/{subject}/versions"),
                ),
            )
            .await?
        {
            (200, b) => Self::parse(subject, &b)?,
            (404, _) => return Ok(None),
            (s, b) => return Err(Self::error(subject, s, &b)),
        };
        for v in versions.iter().rev().take(100) {
            if let (200, b) = self
                .send(
                    subject,
                    self.req(
                        reqwest::Method::GET,
                        &format!("/subjects/{subject}/versions/{v}"),
                    ),
                )
                .await?
            {
                let vb: VersionBody = Self::parse(subject, &b)?;
                if same_schema(&vb.schema, schema) {
                    return Ok(Some(vb.id));
                }
            }
        }
        Ok(None)
    }

    async fn check(&self, subject: &str, schema: &str) -> Result<Compatibility, RegistryError> {
        #[derive(Deserialize)]
        struct C {
            is_compatible: bool,
            #[serde(default)]
            messages: Vec<String>,
        }
        // Ask whether the subject exists first: not every registry answers the check with 404 for a
        // missing subject (rivven-schema says "compatible").
        let versions = self.req(
            reqwest::Method::GET,
            &format!("/subjects/{subject}/versions"),
        );
        match self.send(subject, versions).await? {
            (404, _) => return Ok(Compatibility::NewSubject),
            (200, b) if Self::parse::<Vec<i64>>(subject, &b)?.is_empty() => {
                return Ok(Compatibility::NewSubject)
            }
            (200, _) => {}
            (s, b) => return Err(Self::error(subject, s, &b)),
        }
        let r = self
            .req(
                reqwest::Method::POST,
                &format!("/compatibility/subjects/{subject}/versions/latest?verbose=true"),
            )
            .header("Content-Type", CONTENT_TYPE)
            .body(json!({ "schema": schema }).to_string());
        match self.send(subject, r).await? {
            (200, b) => {
                let c: C = Self::parse(subject, &b)?;
                Ok(if c.is_compatible {
                    Compatibility::Compatible
                } else {
                    Compatibility::Incompatible(c.messages)
                })
            }
            (404, _) => Ok(Compatibility::NewSubject),
            (422, b) => Ok(Compatibility::Incompatible(vec![Self::error(
                subject, 422, &b,
            )
            .to_string()])),
            (s, b) => Err(Self::error(subject, s, &b)),
        }
    }

    async fn compatibility_level(&self, subject: &str) -> Result<Option<String>, RegistryError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Level {
            compatibility_level: Option<String>,
            compatibility: Option<String>,
        }
        let r = self.req(
            reqwest::Method::GET,
            &format!("/config/{subject}?defaultToGlobal=true"),
        );
        let body = match self.send(subject, r).await? {
            (200, b) => b,
            // No level of its own (registries without defaultToGlobal): the global one.
            (404, _) => match self
                .send(subject, self.req(reqwest::Method::GET, "/config"))
                .await?
            {
                (200, b) => b,
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
        let l: Level = Self::parse(subject, &body)?;
        Ok(l.compatibility_level.or(l.compatibility))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_registry_is_idempotent_and_can_refuse() {
        let r = MemoryRegistry::default();
        let s = crate::avro::schema_text(crate::event::Stream::Interactions);
        assert_eq!(
            r.check("t-value", s).await.unwrap(),
            Compatibility::NewSubject
        );
        let id = resolve_id(&r, "t-value", s, true).await.unwrap();
        assert_eq!(resolve_id(&r, "t-value", s, true).await.unwrap(), id);
        assert_eq!(resolve_id(&r, "t-value", s, false).await.unwrap(), id);
        assert!(matches!(
            resolve_id(&r, "u-value", s, false).await,
            Err(RegistryError::NotRegistered(_))
        ));
        r.reject("v-value", "incompatible: field removed");
        let e = resolve_id(&r, "v-value", s, true).await.unwrap_err();
        assert!(!e.is_retryable() && e.to_string().contains("field removed"));
        r.set_unavailable(true);
        assert!(resolve_id(&r, "w-value", s, true)
            .await
            .unwrap_err()
            .is_retryable());
    }
}
