//! The in-memory [`SnapshotSource`]: a script of snapshots (or failures) served in order. Tests give
//! it to a [`crate::feed::SnapshotFeed`] in place of a vendor.

use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{FeedName, SnapshotSource, SourceError};
use crate::event::{Event, SourceMeta};

/// One step of a script: a snapshot, a failed poll (served as an HTTP 500 with this text), or a
/// snapshot served only after a while (a slow vendor; tokio's clock, so a paused test clock skips it).
#[derive(Debug, Clone)]
pub enum Step<T> {
    Snapshot(T),
    Fail(&'static str),
    /// A report window at the row limit even at its minimum span ([`SourceError::Overflow`]).
    Overflow,
    Slow(Duration, T),
}

/// Scripted in-memory source: returns the queued results in order, then repeats the last (with the
/// new observation time stamped by `stamp`).
pub struct Scripted<T> {
    meta: SourceMeta,
    script: std::sync::Mutex<std::collections::VecDeque<Step<T>>>,
    diff: fn(&SourceMeta, Option<&T>, &T) -> Vec<Event>,
    size: fn(&T) -> usize,
    stamp: fn(&mut T, i64),
    poll_timeout: Option<Duration>,
}

impl<T> Scripted<T> {
    pub fn new(
        meta: SourceMeta,
        script: Vec<Step<T>>,
        diff: fn(&SourceMeta, Option<&T>, &T) -> Vec<Event>,
        size: fn(&T) -> usize,
        stamp: fn(&mut T, i64),
    ) -> Self {
        Scripted {
            meta,
            script: std::sync::Mutex::new(script.into()),
            diff,
            size,
            stamp,
            poll_timeout: None,
        }
    }

    /// The same source, its polls bounded by `limit` ([`SnapshotSource::poll_timeout`]).
    pub fn with_poll_timeout(mut self, limit: Duration) -> Self {
        self.poll_timeout = Some(limit);
        self
    }
}

#[async_trait]
impl<T> SnapshotSource for Scripted<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    type Snapshot = T;
    fn name(&self) -> FeedName<'_> {
        FeedName {
            meta: &self.meta,
            endpoint: "scripted",
            stream: "scripted",
        }
    }
    async fn fetch(&self, observed_at: i64, previous: Option<&T>) -> Result<T, SourceError> {
        let next = self
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        let mut snap = match next {
            Some(Step::Snapshot(s)) => s,
            Some(Step::Slow(wait, s)) => {
                tokio::time::sleep(wait).await;
                s
            }
            Some(Step::Overflow) => {
                return Err(SourceError::Overflow {
                    source_name: self.meta.name.clone(),
                    endpoint: "scripted".into(),
                    window: "20261121000000..20261121000059".into(),
                    limit: 60_000,
                })
            }
            Some(Step::Fail(detail)) => {
                return Err(SourceError::Http {
                    source_name: self.meta.name.clone(),
                    endpoint: "scripted".into(),
                    status: 500,
                    detail: detail.into(),
                })
            }
            None => match previous {
                Some(p) => p.clone(),
                None => {
                    return Err(SourceError::Http {
                        source_name: self.meta.name.clone(),
                        endpoint: "scripted".into(),
                        status: 500,
                        detail: "script exhausted".into(),
                    })
                }
            },
        };
        (self.stamp)(&mut snap, observed_at);
        Ok(snap)
    }
    fn poll_timeout(&self) -> Option<Duration> {
        self.poll_timeout
    }
    fn diff(&self, previous: Option<&T>, current: &T) -> Vec<Event> {
        (self.diff)(&self.meta, previous, current)
    }
    fn size(&self, snapshot: &T) -> usize {
        (self.size)(snapshot)
    }
}
