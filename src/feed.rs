//! A feed is one polled endpoint of one source: it fetches a complete observation, derives the events
//! against the state it holds (a pure diff), and hands both to the poller, which commits them
//! atomically ([`crate::poller`]). The feed adopts the new state only once the commit succeeded.
//!
//! Most feeds are a [`SnapshotSource`] (a vendor's typed fetch + pure diff, [`crate::sources`])
//! wrapped in a [`SnapshotFeed`]; report pulls are their own feed ([`crate::reports`]). A
//! [`SnapshotFeed`] bounds each fetch by the source's [`SnapshotSource::poll_timeout`]: a poll that
//! takes longer is abandoned as failed (`kind="timeout"`), its requests dropped, nothing committed.

use std::sync::Arc;

use async_trait::async_trait;

use crate::event::Event;
use crate::sources::{SnapshotSource, SourceError};
use crate::store::{Store, StoreError, Write};

/// Why a poll of a feed failed: the vendor (or the local handling of its response), or the store.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cycle panicked (a bug, on data nobody foresaw): nothing was committed; the feed is
    /// reported failed until a poll succeeds, and polled again after the back-off.
    #[error("the poll panicked: {0}")]
    Panicked(String),
}

impl FeedError {
    /// May the same poll succeed later without anyone changing the configuration?
    pub fn is_retryable(&self) -> bool {
        match self {
            FeedError::Source(e) => e.is_retryable(),
            FeedError::Store(e) => e.is_retryable(),
            FeedError::Panicked(_) => true,
        }
    }

    /// A short label for `ccdc_poll_failures_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            FeedError::Source(e) => e.kind(),
            FeedError::Store(_) => "store",
            FeedError::Panicked(_) => "panic",
        }
    }

    /// The vendor asked us to wait at least this long.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            FeedError::Source(e) => e.retry_after(),
            FeedError::Store(_) | FeedError::Panicked(_) => None,
        }
    }
}

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
    fn restore(&mut self, store: &dyn Store) -> Result<(), StoreError>;
    /// Fetch and derive. Must not change the feed's state (that happens in [`Feed::committed`]).
    async fn poll(&mut self, observed_at: i64) -> Result<PollOutcome, FeedError>;
    /// The last `Commit` outcome is durable: adopt its state.
    fn committed(&mut self);
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
        &self.source.name().meta.name
    }
    fn vendor(&self) -> &str {
        &self.source.name().meta.vendor
    }
    fn endpoint(&self) -> &str {
        self.source.name().endpoint
    }
    fn state_key(&self) -> String {
        let name = self.source.name();
        format!("{}/{}", name.meta.name, name.stream)
    }
    fn restore(&mut self, store: &dyn Store) -> Result<(), StoreError> {
        if let Some((previous, current_layout)) =
            self.source.load_state(store, &self.state_key())?
        {
            self.source.committed(&previous);
            self.previous = Some(previous);
            self.stored = current_layout;
        }
        Ok(())
    }
    async fn poll(&mut self, observed_at: i64) -> Result<PollOutcome, FeedError> {
        let fetch = self.source.fetch(observed_at, self.previous.as_ref());
        let current = match self.source.poll_timeout() {
            // Dropping the fetch abandons every request still in flight; nothing was committed.
            Some(limit) => tokio::time::timeout(limit, fetch).await.map_err(|_| {
                let name = self.source.name();
                SourceError::PollTimeout {
                    source_name: name.meta.name.clone(),
                    endpoint: name.endpoint.to_string(),
                    limit,
                }
            })??,
            None => fetch.await?,
        };
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
            self.source.committed(&p);
            self.previous = Some(p);
            self.stored = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::diff::{diff_interactions_events, InteractionKey, InteractionSnapshot};
    use crate::event::SourceMeta;
    use crate::sources::scripted::{Scripted, Step};

    fn snap(ids: &[&str]) -> InteractionSnapshot {
        InteractionSnapshot {
            held: Default::default(),
            observed_at: 0,
            interactions: ids
                .iter()
                .map(|id| {
                    let key = InteractionKey {
                        interaction_id: id.to_string(),
                        agent_id: "a".into(),
                    };
                    (key, Default::default())
                })
                .collect(),
        }
    }

    // tokio's clock is paused: the slow step's 3 s and the 2 s bound pass without waiting.
    #[tokio::test(start_paused = true)]
    async fn a_poll_past_its_timeout_is_abandoned_and_the_next_one_goes_on() {
        let meta = SourceMeta {
            name: "s".into(),
            vendor: "wolkvox".into(),
        };
        let script = vec![
            Step::Slow(Duration::from_secs(3), snap(&["c1"])),
            Step::Slow(Duration::from_secs(1), snap(&["c2"])),
        ];
        let source = Scripted::new(
            meta,
            script,
            diff_interactions_events,
            |s: &InteractionSnapshot| s.interactions.len(),
            |s, at| s.observed_at = at,
        )
        .with_poll_timeout(Duration::from_secs(2));
        let mut feed = SnapshotFeed::new(Arc::new(source), 1);
        let Err(e) = feed.poll(1).await else {
            panic!("a 3 s poll under a 2 s bound must fail")
        };
        assert_eq!(e.kind(), "timeout");
        assert!(e.is_retryable());
        assert_eq!(
            e.to_string(),
            "s scripted: the poll took longer than poll_timeout (2s); abandoned, nothing committed"
        );
        // The abandoned observation is not the feed's: the next poll is diffed against nothing.
        let Ok(PollOutcome::Commit { events, size, .. }) = feed.poll(2).await else {
            panic!("a 1 s poll fits")
        };
        assert_eq!(size, 1);
        let ids: Vec<String> = events
            .iter()
            .map(|e| match e {
                Event::Interaction(i) => i.interaction_id.clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(ids, ["c2"]);
    }
}
