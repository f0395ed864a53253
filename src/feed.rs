//! A feed is one polled endpoint of one source: it fetches a complete observation, derives the events
//! against the state it holds (a pure diff), and hands both to the poller, which commits them
//! atomically ([`crate::poller`]). The feed adopts the new state only once the commit succeeded.
//!
//! Most feeds are a [`SnapshotSource`] (typed fetch + pure diff) wrapped in a [`SnapshotFeed`].

use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::diff::SourceMeta;
use crate::event::Event;
use crate::sources::SourceError;
use crate::store::{Store, Write};

/// The result of one successful poll.
pub enum PollOutcome {
    /// Apply `writes` and append `events` in one atomic commit. `more`: the feed has more work in
    /// this cycle (poll again at once instead of waiting for the interval).
    Commit {
        writes: Vec<Write>,
        events: Vec<Event>,
        size: usize,
        more: bool,
    },
    /// The observation is not trusted yet (e.g. an unconfirmed empty snapshot): commit nothing.
    Hold { reason: String },
    /// Nothing to commit; `more` as for `Commit`.
    Idle { more: bool },
}

#[async_trait]
pub trait Feed: Send {
    fn source(&self) -> &str;
    fn vendor(&self) -> &str;
    /// The endpoint label for logs and metrics (e.g. `real_time.php?api=interactions`).
    fn endpoint(&self) -> &str;
    /// Key of this feed's state in the store.
    fn state_key(&self) -> String;
    /// Restore the state stored by a previous run (under [`Feed::state_key`]).
    fn restore(&mut self, store: &dyn Store) -> Result<(), String>;
    /// Fetch and derive. Must not change the feed's state (that happens in [`Feed::committed`]).
    async fn poll(&mut self, observed_at: i64) -> Result<PollOutcome, SourceError>;
    /// The last `Commit` outcome is durable: adopt its state.
    fn committed(&mut self);
}

/// One endpoint that yields complete snapshots, and the pure diff between two of them.
#[async_trait]
pub trait SnapshotSource: Send + Sync + 'static {
    type Snapshot: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    fn meta(&self) -> &SourceMeta;
    fn endpoint(&self) -> &str;
    /// The stream this feed stores its state under (`interactions`, `agents`, ...).
    fn stream(&self) -> &str;
    /// Fetch one complete snapshot, or fail as a whole. `previous` lets a source carry over what it
    /// could not observe this time (e.g. an agent the vendor answered 404 for).
    async fn fetch(
        &self,
        observed_at: i64,
        previous: Option<&Self::Snapshot>,
    ) -> Result<Self::Snapshot, SourceError>;
    /// The events that lead from `previous` to `current` (no IO).
    fn diff(&self, previous: Option<&Self::Snapshot>, current: &Self::Snapshot) -> Vec<Event>;
    /// Entities in a snapshot (for logs, metrics and the empty-snapshot guard).
    fn size(&self, snapshot: &Self::Snapshot) -> usize;
    /// The writes that store `current` under `key`, given what is stored now (`None`: nothing in
    /// this source's layout). By default the whole snapshot is one value; a source with large
    /// snapshots stores it in parts and writes only the parts that changed ([`crate::state`]).
    fn state_writes(
        &self,
        key: &str,
        stored: Option<&Self::Snapshot>,
        current: &Self::Snapshot,
    ) -> Vec<Write> {
        let _ = stored;
        vec![Write::Put(key.to_string(), encode_state(current))]
    }
    /// The snapshot stored under `key`, and whether it is in this source's current layout.
    fn load_state(
        &self,
        store: &dyn Store,
        key: &str,
    ) -> Result<Option<(Self::Snapshot, bool)>, String> {
        match store.get(key).map_err(|e| e.to_string())? {
            None => Ok(None),
            Some(bytes) => Ok(Some((decode_state(&bytes)?, true))),
        }
    }
}

/// Adapts a [`SnapshotSource`] to [`Feed`], with the empty-snapshot guard: an empty snapshot right
/// after a non-empty one is believed only after `confirm_empty_polls` consecutive empty polls.
pub struct SnapshotFeed<S: SnapshotSource> {
    source: Arc<S>,
    previous: Option<S::Snapshot>,
    /// `previous` is what the store holds, in the source's current layout.
    stored: bool,
    pending: Option<S::Snapshot>,
    confirm_empty_polls: u32,
    empty_polls: u32,
}

impl<S: SnapshotSource> SnapshotFeed<S> {
    pub fn new(source: Arc<S>, confirm_empty_polls: u32) -> Self {
        SnapshotFeed {
            source,
            previous: None,
            stored: false,
            pending: None,
            confirm_empty_polls: confirm_empty_polls.max(1),
            empty_polls: 0,
        }
    }
}

#[async_trait]
impl<S: SnapshotSource> Feed for SnapshotFeed<S> {
    fn source(&self) -> &str {
        &self.source.meta().name
    }
    fn vendor(&self) -> &str {
        &self.source.meta().vendor
    }
    fn endpoint(&self) -> &str {
        self.source.endpoint()
    }
    fn state_key(&self) -> String {
        format!("{}/{}", self.source.meta().name, self.source.stream())
    }
    fn restore(&mut self, store: &dyn Store) -> Result<(), String> {
        if let Some((previous, current_layout)) =
            self.source.load_state(store, &self.state_key())?
        {
            self.previous = Some(previous);
            self.stored = current_layout;
        }
        Ok(())
    }
    async fn poll(&mut self, observed_at: i64) -> Result<PollOutcome, SourceError> {
        let current = self
            .source
            .fetch(observed_at, self.previous.as_ref())
            .await?;
        let size = self.source.size(&current);
        let previous_size = self.previous.as_ref().map_or(0, |p| self.source.size(p));
        if size == 0 && previous_size > 0 && self.empty_polls + 1 < self.confirm_empty_polls {
            self.empty_polls += 1;
            return Ok(PollOutcome::Hold {
                reason: format!(
                    "empty snapshot while {previous_size} were active ({} of {} polls needed to believe it)",
                    self.empty_polls, self.confirm_empty_polls
                ),
            });
        }
        self.empty_polls = 0;
        let events = self.source.diff(self.previous.as_ref(), &current);
        let stored = self.previous.as_ref().filter(|_| self.stored);
        let writes = self
            .source
            .state_writes(&self.state_key(), stored, &current);
        self.pending = Some(current);
        Ok(PollOutcome::Commit {
            writes,
            events,
            size,
            more: false,
        })
    }
    fn committed(&mut self) {
        if let Some(p) = self.pending.take() {
            self.previous = Some(p);
            self.stored = true;
        }
    }
}

/// Serialize a feed state (plain serde data) as JSON, readable and easy to evolve.
pub fn encode_state<T: Serialize>(state: &T) -> Vec<u8> {
    // Feed states and events are plain data (strings, numbers, lists, string-keyed maps): JSON
    // serialization of such values cannot fail.
    serde_json::to_vec(state).expect("plain data serializes to JSON")
}

pub fn decode_state<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// Scripted in-memory source for tests: returns the queued results in order, then repeats the last.
pub struct Scripted<T> {
    meta: SourceMeta,
    script: std::sync::Mutex<std::collections::VecDeque<Result<T, String>>>,
    diff: fn(&SourceMeta, Option<&T>, &T) -> Vec<Event>,
    size: fn(&T) -> usize,
}

impl<T> Scripted<T> {
    pub fn new(
        meta: SourceMeta,
        script: Vec<Result<T, String>>,
        diff: fn(&SourceMeta, Option<&T>, &T) -> Vec<Event>,
        size: fn(&T) -> usize,
    ) -> Self {
        Scripted {
            meta,
            script: std::sync::Mutex::new(script.into()),
            diff,
            size,
        }
    }
}

/// A snapshot type whose observation time the scripted source can stamp.
pub trait Stamped {
    fn stamp(&mut self, observed_at: i64);
}

#[async_trait]
impl<T> SnapshotSource for Scripted<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + Stamped + 'static,
{
    type Snapshot = T;
    fn meta(&self) -> &SourceMeta {
        &self.meta
    }
    fn endpoint(&self) -> &str {
        "scripted"
    }
    fn stream(&self) -> &str {
        "scripted"
    }
    async fn fetch(&self, observed_at: i64, previous: Option<&T>) -> Result<T, SourceError> {
        let next = self
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        let mut snap = match next {
            Some(Ok(s)) => s,
            Some(Err(detail)) => {
                return Err(SourceError::Http {
                    source_name: self.meta.name.clone(),
                    endpoint: "scripted".into(),
                    status: 500,
                    detail,
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
        snap.stamp(observed_at);
        Ok(snap)
    }
    fn diff(&self, previous: Option<&T>, current: &T) -> Vec<Event> {
        (self.diff)(&self.meta, previous, current)
    }
    fn size(&self, snapshot: &T) -> usize {
        (self.size)(snapshot)
    }
}
