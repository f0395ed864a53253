//! `agent-state` records for any source whose snapshots say something about agents: a
//! [`SnapshotSource`] wrapper ([`WithAgentState`]) that derives them ([`crate::diff::agent_state`])
//! from each fresh observation, so they are committed with the feed's state and its own events in
//! one outbox batch, and stores its records table next to the feed's state (`<state key>/agent-state`).
//!
//! Wolkvox's agents feed joins the interactions feed of the same source: that feed is wrapped in
//! [`PublishInteractions`], which hands every committed (or restored) interactions snapshot to an
//! [`InteractionsView`] the agents feed reads when it polls. The join therefore always uses
//! committed state and the derivation stays pure; the interactions in an agent's record are at
//! most one interactions interval old (`interactions_observed_at` says when they were observed),
//! and a change of interactions reaches the record at the next agents poll. Before the
//! interactions feed's first commit (or with it disabled) the interactions are null.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{FeedName, SnapshotSource, SourceError};
use crate::config::AgentStateConfig;
use crate::diff::agent_state::{derive, AgentInteractions, AgentStateTable, AgentViews, Poll};
use crate::diff::InteractionSnapshot;
use crate::event::agent_state::StatusCategory;
use crate::event::Event;
use crate::store::{decode_state, encode_state, Store, StoreError, Write};

/// The last committed interactions of one Wolkvox source, by agent, shared by its two feeds.
#[derive(Clone, Default)]
pub struct InteractionsView(Arc<Mutex<Option<Arc<AgentInteractions>>>>);

impl InteractionsView {
    fn set(&self, snapshot: &InteractionSnapshot) {
        let by_agent = Arc::new(AgentInteractions::of(snapshot));
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(by_agent);
    }

    /// The interactions of the last commit (`None`: none yet).
    pub fn current(&self) -> Option<Arc<AgentInteractions>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// An interactions source whose committed snapshots feed an [`InteractionsView`].
pub struct PublishInteractions<S> {
    pub inner: S,
    pub view: InteractionsView,
}

#[async_trait]
impl<S: SnapshotSource<Snapshot = InteractionSnapshot>> SnapshotSource for PublishInteractions<S> {
    type Snapshot = InteractionSnapshot;
    fn name(&self) -> FeedName<'_> {
        self.inner.name()
    }
    fn poll_timeout(&self) -> Option<std::time::Duration> {
        self.inner.poll_timeout()
    }
    async fn fetch(
        &self,
        observed_at: i64,
        previous: Option<&InteractionSnapshot>,
    ) -> Result<InteractionSnapshot, SourceError> {
        self.inner.fetch(observed_at, previous).await
    }
    fn diff(
        &self,
        previous: Option<&InteractionSnapshot>,
        current: &InteractionSnapshot,
    ) -> Vec<Event> {
        self.inner.diff(previous, current)
    }
    fn size(&self, snapshot: &InteractionSnapshot) -> usize {
        self.inner.size(snapshot)
    }
    fn state_writes(
        &self,
        key: &str,
        stored: Option<&InteractionSnapshot>,
        current: &InteractionSnapshot,
    ) -> Vec<Write> {
        self.inner.state_writes(key, stored, current)
    }
    fn load_state(
        &self,
        store: &dyn Store,
        key: &str,
    ) -> Result<Option<(InteractionSnapshot, bool)>, StoreError> {
        self.inner.load_state(store, key)
    }
    fn committed(&self, snapshot: &InteractionSnapshot) {
        self.view.set(snapshot);
        self.inner.committed(snapshot);
    }
}

/// A feed's snapshot with the agent-state records table after it, and the records this poll
/// derived (published with the feed's own events; not stored).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WithTable<T> {
    pub inner: T,
    pub table: AgentStateTable,
    #[serde(skip)]
    pub records: Vec<Event>,
}

/// A source that also publishes `agent-state` records of the agents its snapshots hold.
pub struct WithAgentState<S> {
    inner: S,
    categories: BTreeMap<String, StatusCategory>,
    refresh_every: u32,
    /// Wolkvox: the joined interactions feed.
    interactions: Option<InteractionsView>,
}

impl<S> WithAgentState<S> {
    pub fn new(
        inner: S,
        config: &AgentStateConfig,
        interactions: Option<InteractionsView>,
    ) -> Self {
        WithAgentState {
            inner,
            categories: config.status_categories.clone(),
            refresh_every: config.refresh_every_polls,
            interactions,
        }
    }
}

/// Where the records table of the feed state `key` is stored.
pub fn table_key(key: &str) -> String {
    format!("{key}/agent-state")
}

#[async_trait]
impl<S> SnapshotSource for WithAgentState<S>
where
    S: SnapshotSource,
    S::Snapshot: AgentViews,
{
    type Snapshot = WithTable<S::Snapshot>;
    fn name(&self) -> FeedName<'_> {
        self.inner.name()
    }
    fn poll_timeout(&self) -> Option<std::time::Duration> {
        self.inner.poll_timeout()
    }
    async fn fetch(
        &self,
        observed_at: i64,
        previous: Option<&Self::Snapshot>,
    ) -> Result<Self::Snapshot, SourceError> {
        let inner = self
            .inner
            .fetch(observed_at, previous.map(|p| &p.inner))
            .await?;
        let joined = self
            .interactions
            .as_ref()
            .and_then(InteractionsView::current);
        let views = inner.agent_views(joined.as_deref());
        let poll = Poll {
            meta: self.inner.name().meta,
            previous_at: previous.map(|p| p.inner.observed_at()),
            observed_at: inner.observed_at(),
            categories: &self.categories,
            refresh_every: self.refresh_every,
        };
        let (table, records) = derive(&poll, previous.map(|p| &p.table), views);
        Ok(WithTable {
            inner,
            table,
            records,
        })
    }
    fn diff(&self, previous: Option<&Self::Snapshot>, current: &Self::Snapshot) -> Vec<Event> {
        let mut events = self.inner.diff(previous.map(|p| &p.inner), &current.inner);
        events.extend(current.records.iter().cloned());
        events
    }
    fn size(&self, snapshot: &Self::Snapshot) -> usize {
        self.inner.size(&snapshot.inner)
    }
    fn state_writes(
        &self,
        key: &str,
        stored: Option<&Self::Snapshot>,
        current: &Self::Snapshot,
    ) -> Vec<Write> {
        let mut writes = self
            .inner
            .state_writes(key, stored.map(|s| &s.inner), &current.inner);
        writes.push(Write::Put(table_key(key), encode_state(&current.table)));
        writes
    }
    fn load_state(
        &self,
        store: &dyn Store,
        key: &str,
    ) -> Result<Option<(Self::Snapshot, bool)>, StoreError> {
        let Some((inner, current_layout)) = self.inner.load_state(store, key)? else {
            return Ok(None);
        };
        // A state stored before agent-state existed has no table: every agent gets its first
        // record at the next poll.
        let tkey = table_key(key);
        let table = match store.get(&tkey)? {
            Some(bytes) => decode_state(&tkey, &bytes)?,
            None => AgentStateTable::default(),
        };
        let snapshot = WithTable {
            inner,
            table,
            records: Vec::new(),
        };
        Ok(Some((snapshot, current_layout)))
    }
    fn committed(&self, snapshot: &Self::Snapshot) {
        self.inner.committed(&snapshot.inner);
    }
}

// Tested through the real feed, poller and outbox in `tests/agent_state_feed.rs` (the pipeline
// layer is above this one).
