//! [`MemoryRegistry`]: the in-memory [`SchemaRegistry`] that tests give the pipeline in place of
//! the HTTP one ([`crate::app::Parts`]).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{same_schema, Compatibility, RegistryError, SchemaRegistry};

/// In-memory registry for tests: ids are assigned in order; `reject` makes a subject refuse.
/// Every subject is `BACKWARD` unless [`MemoryRegistry::set_level`] says otherwise.
#[derive(Default)]
pub struct MemoryRegistry {
    inner: Mutex<MemInner>,
}

#[derive(Default)]
struct MemInner {
    next_id: u32,
    subjects: HashMap<String, Vec<(u32, String)>>,
    rejecting: HashMap<String, String>,
    unavailable: bool,
    levels: HashMap<String, String>,
}

impl MemoryRegistry {
    pub fn reject(&self, subject: &str, message: &str) {
        self.lock().rejecting.insert(subject.into(), message.into());
    }
    pub fn set_unavailable(&self, down: bool) {
        self.lock().unavailable = down;
    }
    pub fn set_level(&self, subject: &str, level: &str) {
        self.lock().levels.insert(subject.into(), level.into());
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, MemInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl SchemaRegistry for MemoryRegistry {
    async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let mut g = self.lock();
        if g.unavailable {
            return Err(RegistryError::Unavailable {
                context: subject.into(),
                message: "down".into(),
            });
        }
        if let Some(m) = g.rejecting.get(subject) {
            return Err(RegistryError::Rejected {
                subject: subject.into(),
                status: 409,
                code: 409,
                message: m.clone(),
            });
        }
        if let Some((id, _)) = g
            .subjects
            .get(subject)
            .and_then(|v| v.iter().find(|(_, s)| same_schema(s, schema)))
        {
            return Ok(*id);
        }
        g.next_id += 1;
        let id = g.next_id;
        g.subjects
            .entry(subject.into())
            .or_default()
            .push((id, schema.into()));
        Ok(id)
    }
    async fn lookup(&self, subject: &str, schema: &str) -> Result<Option<u32>, RegistryError> {
        let g = self.lock();
        Ok(g.subjects
            .get(subject)
            .and_then(|v| v.iter().find(|(_, s)| same_schema(s, schema)))
            .map(|(id, _)| *id))
    }
    async fn check(&self, subject: &str, _schema: &str) -> Result<Compatibility, RegistryError> {
        let g = self.lock();
        if let Some(m) = g.rejecting.get(subject) {
            return Ok(Compatibility::Incompatible(vec![m.clone()]));
        }
        Ok(if g.subjects.contains_key(subject) {
            Compatibility::Compatible
        } else {
            Compatibility::NewSubject
        })
    }
    async fn compatibility_level(&self, subject: &str) -> Result<Option<String>, RegistryError> {
        let g = self.lock();
        Ok(Some(
            g.levels
                .get(subject)
                .cloned()
                .unwrap_or_else(|| "BACKWARD".into()),
        ))
    }
}
