//! One poll loop per (source, stream): fetch a complete snapshot, diff it against the stored one,
//! commit the new snapshot together with the derived events (outbox), wake the publisher.
//! A failed poll commits nothing and emits nothing; the next good poll diffs against the last good
//! snapshot.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::diff::{diff_interactions, InteractionSnapshot};
use crate::event::Event;
use crate::sources::{InteractionSource, SourceError};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored snapshot `{key}` cannot be read: {reason}")]
    Snapshot { key: String, reason: String },
}

/// What one successful cycle did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CycleOutcome {
    Committed {
        interactions: usize,
        started: usize,
        ended: usize,
    },
    /// An empty snapshot after a non-empty one, not yet confirmed by enough polls.
    AwaitingEmptyConfirmation { seen: u32, needed: u32 },
}

pub struct InteractionPoller {
    pub source: Arc<dyn InteractionSource>,
    pub store: Arc<dyn Store>,
    pub notify: Arc<Notify>,
    pub interval: Duration,
    pub max_backoff: Duration,
    pub confirm_empty_polls: u32,
    previous: Option<InteractionSnapshot>,
    empty_polls: u32,
    cycles: u64,
}

/// Test-only crash point: `CCDC_FAILPOINT=kill-after-commit:N` SIGKILLs the process right after the
/// N-th commit (snapshot + events durable, nothing published yet).
fn failpoint_after_commit(commits: u64) {
    static TARGET: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let target = TARGET.get_or_init(|| {
        std::env::var("CCDC_FAILPOINT").ok().and_then(|v| {
            v.strip_prefix("kill-after-commit:")
                .and_then(|n| n.parse().ok())
        })
    });
    if *target == Some(commits) {
        tracing::warn!(commits, "failpoint kill-after-commit reached: SIGKILL");
        #[cfg(unix)]
        // SAFETY: kill(2) on our own pid with SIGKILL has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
}

impl InteractionPoller {
    pub fn new(
        source: Arc<dyn InteractionSource>,
        store: Arc<dyn Store>,
        notify: Arc<Notify>,
        interval: Duration,
        max_backoff: Duration,
        confirm_empty_polls: u32,
    ) -> Self {
        InteractionPoller {
            source,
            store,
            notify,
            interval,
            max_backoff,
            confirm_empty_polls,
            previous: None,
            empty_polls: 0,
            cycles: 0,
        }
    }

    fn key(&self) -> String {
        format!("{}/interactions", self.source.meta().name)
    }

    /// Load the stored snapshot (after a restart it is the previous one).
    pub fn load(&mut self) -> Result<(), CycleError> {
        let key = self.key();
        if let Some(bytes) = self.store.load_snapshot(&key)? {
            let snap: InteractionSnapshot =
                serde_json::from_slice(&bytes).map_err(|e| CycleError::Snapshot {
                    key,
                    reason: e.to_string(),
                })?;
            self.previous = Some(snap);
        }
        Ok(())
    }

    /// One cycle. `now_ms` is the observation time.
    pub async fn cycle(&mut self, now_ms: i64) -> Result<CycleOutcome, CycleError> {
        let current = self.source.fetch_interactions(now_ms).await?;
        let prev_len = self.previous.as_ref().map_or(0, |p| p.interactions.len());
        if current.interactions.is_empty()
            && prev_len > 0
            && self.empty_polls + 1 < self.confirm_empty_polls
        {
            self.empty_polls += 1;
            return Ok(CycleOutcome::AwaitingEmptyConfirmation {
                seen: self.empty_polls,
                needed: self.confirm_empty_polls,
            });
        }
        self.empty_polls = 0;
        let events = diff_interactions(self.source.meta(), self.previous.as_ref(), &current);
        let started = events
            .iter()
            .filter(|e| e.event_type == crate::event::InteractionEventType::Started)
            .count();
        let ended = events.len() - started;
        let encoded: Vec<Vec<u8>> = events
            .into_iter()
            .map(|e| serde_json::to_vec(&Event::Interaction(e)))
            .collect::<Result<_, _>>()
            .map_err(|e| CycleError::Snapshot {
                key: self.key(),
                reason: e.to_string(),
            })?;
        let snapshot = serde_json::to_vec(&current).map_err(|e| CycleError::Snapshot {
            key: self.key(),
            reason: e.to_string(),
        })?;
        let (store, key) = (self.store.clone(), self.key());
        tokio::task::spawn_blocking(move || store.commit(&key, &snapshot, &encoded))
            .await
            .map_err(|e| StoreError::Open {
                path: "commit task".into(),
                reason: e.to_string(),
            })??;
        self.cycles += 1;
        failpoint_after_commit(self.cycles);
        let interactions = current.interactions.len();
        self.previous = Some(current);
        self.notify.notify_one();
        Ok(CycleOutcome::Committed {
            interactions,
            started,
            ended,
        })
    }

    /// Poll until `shutdown`; an in-flight cycle is finished before returning.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), CycleError> {
        self.load()?;
        let name = self.source.meta().name.clone();
        let endpoint = self.source.endpoint().to_string();
        let mut failures: u32 = 0;
        loop {
            let started = std::time::Instant::now();
            let now_ms = chrono::Utc::now().timestamp_millis();
            let span = tracing::info_span!("poll", source = %name, endpoint = %endpoint, cycle = self.cycles + 1);
            let result = self.cycle(now_ms).instrument(span.clone()).await;
            let elapsed = started.elapsed();
            metrics::histogram!("ccdc_poll_duration_seconds", "source" => name.clone(), "endpoint" => endpoint.clone()).record(elapsed.as_secs_f64());
            let wait = match result {
                Ok(outcome) => {
                    failures = 0;
                    metrics::counter!("ccdc_polls_total", "source" => name.clone(), "endpoint" => endpoint.clone(), "result" => "ok").increment(1);
                    span.in_scope(|| match &outcome {
                        CycleOutcome::Committed { interactions, started, ended } => {
                            metrics::gauge!("ccdc_snapshot_size", "source" => name.clone(), "endpoint" => endpoint.clone()).set(*interactions as f64);
                            metrics::counter!("ccdc_events_total", "source" => name.clone(), "type" => "interaction-started").increment(*started as u64);
                            metrics::counter!("ccdc_events_total", "source" => name.clone(), "type" => "interaction-ended").increment(*ended as u64);
                            tracing::info!(interactions, started, ended, ms = elapsed.as_millis() as u64, "poll committed");
                        }
                        CycleOutcome::AwaitingEmptyConfirmation { seen, needed } => {
                            metrics::counter!("ccdc_empty_snapshots_unconfirmed_total", "source" => name.clone()).increment(1);
                            tracing::warn!(seen, needed, "vendor returned an empty snapshot while interactions were active; not believed until confirmed");
                        }
                    });
                    self.interval
                }
                Err(CycleError::Source(e)) => {
                    failures += 1;
                    metrics::counter!("ccdc_poll_failures_total", "source" => name.clone(), "endpoint" => endpoint.clone(), "kind" => e.kind()).increment(1);
                    let backoff = crate::backoff::jittered(
                        failures,
                        Duration::from_secs(1),
                        self.max_backoff.min(self.interval),
                    );
                    let wait = e.retry_after().map_or(backoff, |ra| ra.max(backoff));
                    span.in_scope(|| tracing::warn!(error = %e, kind = e.kind(), failures, retry_in_ms = wait.as_millis() as u64, "poll failed; no events, snapshot unchanged"));
                    wait
                }
                Err(e) => {
                    // The store failed: nothing was committed. Keep trying; the operator sees errors.
                    failures += 1;
                    metrics::counter!("ccdc_poll_failures_total", "source" => name.clone(), "endpoint" => endpoint.clone(), "kind" => "store").increment(1);
                    span.in_scope(|| tracing::error!(error = %e, "poll could not be committed"));
                    crate::backoff::jittered(
                        failures,
                        Duration::from_secs(1),
                        self.max_backoff.min(self.interval),
                    )
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait.saturating_sub(if failures == 0 { elapsed } else { Duration::ZERO })) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        tracing::info!(source = %name, endpoint = %endpoint, "poller stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{ActiveInteraction, InteractionKey, SourceMeta};
    use crate::event::InteractionEventType::*;
    use crate::sources::ScriptedSource;
    use crate::store::MemoryStore;

    fn snap(pairs: &[(&str, &str)]) -> InteractionSnapshot {
        InteractionSnapshot {
            observed_at: 0,
            interactions: pairs
                .iter()
                .map(|(a, c)| {
                    (
                        InteractionKey {
                            interaction_id: c.to_string(),
                            agent_id: a.to_string(),
                        },
                        ActiveInteraction::default(),
                    )
                })
                .collect(),
        }
    }

    fn outbox(store: &MemoryStore) -> Vec<(crate::event::InteractionEventType, String)> {
        store
            .outbox_after(None, 1000)
            .unwrap()
            .into_iter()
            .map(
                |(_, b)| match serde_json::from_slice::<Event>(&b).unwrap() {
                    Event::Interaction(e) => (e.event_type, e.interaction_id),
                },
            )
            .collect()
    }

    fn poller(
        script: Vec<Result<InteractionSnapshot, String>>,
        store: Arc<MemoryStore>,
    ) -> InteractionPoller {
        let meta = SourceMeta {
            name: "s".into(),
            vendor: "wolkvox".into(),
        };
        InteractionPoller::new(
            Arc::new(ScriptedSource::new(meta, script)),
            store,
            Arc::new(Notify::new()),
            Duration::from_secs(1),
            Duration::from_secs(1),
            2,
        )
    }

    #[tokio::test]
    async fn failed_poll_commits_nothing_and_next_poll_diffs_against_last_good() {
        let store = Arc::new(MemoryStore::default());
        let mut p = poller(
            vec![
                Ok(snap(&[("a", "c1"), ("a", "c2")])),
                Err("boom".into()),
                Ok(snap(&[("a", "c2")])),
            ],
            store.clone(),
        );
        p.cycle(1).await.unwrap();
        let stored_before = store.load_snapshot("s/interactions").unwrap();
        assert!(matches!(p.cycle(2).await, Err(CycleError::Source(_))));
        assert_eq!(
            store.load_snapshot("s/interactions").unwrap(),
            stored_before,
            "snapshot untouched"
        );
        assert_eq!(outbox(&store).len(), 2, "no events from the failed poll");
        p.cycle(3).await.unwrap();
        assert_eq!(
            outbox(&store),
            vec![
                (Started, "c1".into()),
                (Started, "c2".into()),
                (Ended, "c1".into())
            ]
        );
    }

    #[tokio::test]
    async fn empty_snapshot_must_be_confirmed_before_ending_everything() {
        let store = Arc::new(MemoryStore::default());
        let mut p = poller(
            vec![
                Ok(snap(&[("a", "c1")])),
                Ok(snap(&[])),
                Ok(snap(&[("a", "c1")])),
                Ok(snap(&[])),
                Ok(snap(&[])),
            ],
            store.clone(),
        );
        p.cycle(1).await.unwrap();
        assert_eq!(
            p.cycle(2).await.unwrap(),
            CycleOutcome::AwaitingEmptyConfirmation { seen: 1, needed: 2 }
        );
        // The glitch healed: nothing happened.
        p.cycle(3).await.unwrap();
        assert_eq!(outbox(&store).len(), 1);
        // Two empty polls in a row: believed.
        p.cycle(4).await.unwrap();
        p.cycle(5).await.unwrap();
        assert_eq!(
            outbox(&store),
            vec![(Started, "c1".into()), (Ended, "c1".into())]
        );
    }

    #[tokio::test]
    async fn restart_resumes_from_the_stored_snapshot() {
        let store = Arc::new(MemoryStore::default());
        let mut p = poller(vec![Ok(snap(&[("a", "c1")]))], store.clone());
        p.cycle(1).await.unwrap();
        let mut p2 = poller(vec![Ok(snap(&[("a", "c1"), ("b", "c9")]))], store.clone());
        p2.load().unwrap();
        p2.cycle(2).await.unwrap();
        let evs: Vec<Event> = store
            .outbox_after(None, 10)
            .unwrap()
            .into_iter()
            .map(|(_, b)| serde_json::from_slice(&b).unwrap())
            .collect();
        assert_eq!(evs.len(), 2);
        let Event::Interaction(last) = &evs[1];
        assert_eq!(
            (
                last.interaction_id.as_str(),
                last.initial,
                last.previous_observed_at
            ),
            ("c9", false, Some(1))
        );
    }
}
