//! Secrets are configured by reference (`{ env = "NAME" }` or `{ file = "/path" }`) and held in a
//! [`Secret`] whose `Debug`/`Display` never show the value.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

/// Where a secret comes from. Inline values are deliberately not supported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretRef {
    /// Name of an environment variable holding the secret.
    Env(String),
    /// Path of a file holding the secret (surrounding whitespace is trimmed).
    File(PathBuf),
}

const INLINE_REFUSED: &str =
    "inline secret values are refused: use { env = \"NAME\" } or { file = \"/path\" }";

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SecretRef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("{ env = \"NAME\" } or { file = \"/path\" }")
            }
            // Never echo what was given: it may be the secret itself.
            fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretRef, E> {
                Err(E::custom(INLINE_REFUSED))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretRef, E> {
                Err(E::custom(INLINE_REFUSED))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretRef, E> {
                Err(E::custom(INLINE_REFUSED))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
                let mut out = None;
                while let Some(key) = map.next_key::<String>()? {
                    let value: String = map.next_value()?;
                    let r = match key.as_str() {
                        "env" => SecretRef::Env(value),
                        "file" => SecretRef::File(PathBuf::from(value)),
                        other => return Err(de::Error::unknown_field(other, &["env", "file"])),
                    };
                    if out.replace(r).is_some() {
                        return Err(de::Error::custom("give exactly one of `env` or `file`"));
                    }
                }
                out.ok_or_else(|| de::Error::custom("give exactly one of `env` or `file`"))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("environment variable `{0}` is not set or not valid UTF-8")]
    MissingEnv(String),
    #[error("environment variable `{0}` is empty")]
    EmptyEnv(String),
    #[error("cannot read secret file `{path}`: {reason}")]
    File { path: String, reason: String },
    #[error("secret file `{0}` is empty")]
    EmptyFile(String),
}

impl SecretRef {
    /// Resolve the reference now. Errors name the variable or file, never the value.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(name) => {
                let v = std::env::var(name).map_err(|_| SecretError::MissingEnv(name.clone()))?;
                if v.trim().is_empty() {
                    return Err(SecretError::EmptyEnv(name.clone()));
                }
                Ok(Secret(v))
            }
            SecretRef::File(path) => {
                let shown = path.display().to_string();
                let v = std::fs::read_to_string(path).map_err(|e| SecretError::File {
                    path: shown.clone(),
                    reason: e.kind().to_string(),
                })?;
                let v = v.trim().to_string();
                if v.is_empty() {
                    return Err(SecretError::EmptyFile(shown));
                }
                Ok(Secret(v))
            }
        }
    }
}

/// A resolved secret. `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret value, for the one place that must send it (a header, a librdkafka property).
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// A stable, non-reversible identity for grouping by secret (e.g. a per-token limiter).
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.0.hash(&mut h);
        h.finish()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn env_reference_resolves_and_missing_names_the_variable() {
        std::env::set_var("CCDC_TEST_SECRET_ENV_OK", "abc");
        let ok = SecretRef::Env("CCDC_TEST_SECRET_ENV_OK".into()).resolve();
        assert_eq!(ok.map(|s| s.expose().to_string()), Ok("abc".to_string()));
        let err = SecretRef::Env("CCDC_TEST_SECRET_ENV_MISSING".into())
            .resolve()
            .unwrap_err();
        assert!(err.to_string().contains("CCDC_TEST_SECRET_ENV_MISSING"));
    }

    #[test]
    fn file_reference_is_trimmed_and_empty_file_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "  tok-123\n").unwrap();
        assert_eq!(
            SecretRef::File(p.clone()).resolve().unwrap().expose(),
            "tok-123"
        );
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(
            SecretRef::File(p).resolve(),
            Err(SecretError::EmptyFile(_))
        ));
    }
}
