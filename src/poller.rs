//! One poll loop per feed: fetch a complete observation, derive its events, commit the new state
//! together with the events (outbox), wake the publisher. A failed poll commits nothing and emits
//! nothing; the next good poll diffs against the last good state.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::event::{id, Event, Heartbeat};
use crate::feed::{Feed, FeedError, PollOutcome};
use crate::observability::Health;
use crate::retry::Backoff;
use crate::store::{Store, StoreError, Write};

pub mod commit;
pub use commit::GroupCommit;

/// What one successful cycle did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CycleOutcome {
    Committed {
        size: usize,
        events: usize,
        more: bool,
    },
    Held {
        reason: String,
    },
    Idle {
        more: bool,
    },
}

pub struct Poller {
    pub feed: Box<dyn Feed>,
    pub store: Arc<dyn Store>,
    pub notify: Arc<Notify>,
    pub interval: Duration,
    pub max_backoff: Duration,
    /// Commits that carried events derived by the feed (heartbeats not counted).
    commits: u64,
    polls: u64,
    health: Option<Arc<Health>>,
    /// The feed's name in `health` (`<source> <endpoint>`).
    health_name: String,
    heartbeat_every: u64,
    /// A commit failed: reload the feed's state from the store before the next diff.
    reload: bool,
    /// Commits go through the process's group committer ([`commit`]) instead of a blocking
    /// thread each.
    group: Option<Arc<GroupCommit>>,
    /// How long [`Poller::run`] waits before its first poll (start-up spread over the feeds).
    first_delay: Duration,
    /// The feed's metric handles, registered on first use ([`FeedMetrics`]).
    metrics: Option<FeedMetrics>,
}

/// A feed's metric handles, each registered on its first use (as the macros would) and kept: a
/// lookup by name and labels (two label strings made, hashed and compared) for every metric of
/// every poll added up with a thousand sources.
struct FeedMetrics {
    labels: [(&'static str, String); 2],
    polls: Option<metrics::Counter>,
    last_success: Option<metrics::Gauge>,
    failed: Option<metrics::Gauge>,
    duration: Option<metrics::Histogram>,
    size: Option<metrics::Gauge>,
}

impl FeedMetrics {
    fn new(labels: [(&'static str, String); 2]) -> Self {
        FeedMetrics {
            labels,
            polls: None,
            last_success: None,
            failed: None,
            duration: None,
            size: None,
        }
    }

    /// A successful poll: counted, its time, the feed not failed.
    fn success(&mut self) {
        let FeedMetrics {
            labels,
            polls,
            last_success,
            failed,
            ..
        } = self;
        polls
            .get_or_insert_with(|| metrics::counter!("ccdc_polls_total", &*labels))
            .increment(1);
        last_success
            .get_or_insert_with(|| metrics::gauge!("ccdc_last_success_timestamp_seconds", &*labels))
            .set(chrono::Utc::now().timestamp() as f64);
        failed
            .get_or_insert_with(|| metrics::gauge!("ccdc_feed_failed", &*labels))
            .set(0.0);
    }

    fn duration(&mut self, elapsed: Duration) {
        let labels = &self.labels;
        self.duration
            .get_or_insert_with(|| metrics::histogram!("ccdc_poll_duration_seconds", labels))
            .record(elapsed.as_secs_f64());
    }

    fn size(&mut self, size: usize) {
        let labels = &self.labels;
        self.size
            .get_or_insert_with(|| metrics::gauge!("ccdc_snapshot_size", labels))
            .set(size as f64);
    }
}

/// Test-only crash point: `CCDC_FAILPOINT=kill-after-commit:<state key>:N` SIGKILLs the process right
/// after the N-th commit that carries events of the feed with that state key (e.g.
/// `ops/interactions`): those events are durable, none of them is published yet.
fn failpoint_after_commit(state_key: &str, commits: u64) {
    static TARGET: std::sync::OnceLock<Option<(String, u64)>> = std::sync::OnceLock::new();
    let target = TARGET.get_or_init(|| {
        let v = std::env::var("CCDC_FAILPOINT").ok()?;
        let (key, n) = v.strip_prefix("kill-after-commit:")?.rsplit_once(':')?;
        Some((key.to_string(), n.parse().ok()?))
    });
    if target
        .as_ref()
        .is_some_and(|(k, n)| k == state_key && *n == commits)
    {
        tracing::warn!(
            state_key,
            commits,
            "failpoint kill-after-commit reached: SIGKILL"
        );
        #[cfg(unix)]
        // SAFETY: kill(2) on our own pid with SIGKILL has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
}

/// The message of a panic payload.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

fn type_counts<'a>(events: impl Iterator<Item = &'a Event>) -> Vec<(&'static str, u64)> {
    let mut out: Vec<(&'static str, u64)> = Vec::new();
    for e in events {
        match out.iter_mut().find(|(t, _)| *t == e.type_name()) {
            Some((_, n)) => *n += 1,
            None => out.push((e.type_name(), 1)),
        }
    }
    out
}

impl Poller {
    pub fn new(
        feed: Box<dyn Feed>,
        store: Arc<dyn Store>,
        notify: Arc<Notify>,
        interval: Duration,
        max_backoff: Duration,
    ) -> Self {
        Poller {
            feed,
            store,
            notify,
            interval,
            max_backoff,
            commits: 0,
            polls: 0,
            health: None,
            health_name: String::new(),
            heartbeat_every: 0,
            reload: false,
            group: None,
            first_delay: Duration::ZERO,
            metrics: None,
        }
    }

    fn metrics(&mut self) -> &mut FeedMetrics {
        if self.metrics.is_none() {
            self.metrics = Some(FeedMetrics::new(self.labels()));
        }
        // Set just above; the default is never made.
        self.metrics
            .get_or_insert_with(|| FeedMetrics::new(Default::default()))
    }

    /// Commit through `group`, the committer the process's pollers share.
    pub fn group_commit(mut self, group: Arc<GroupCommit>) -> Self {
        self.group = Some(group);
        self
    }

    /// Wait `delay` before the first poll of [`Poller::run`].
    pub fn start_after(mut self, delay: Duration) -> Self {
        self.first_delay = delay;
        self
    }

    /// Commit `writes` and `events` (durable on `Ok`). Not borrowing the poller across the wait:
    /// its feed need not be `Sync`.
    fn commit(
        &self,
        writes: Vec<Write>,
        events: Vec<Vec<u8>>,
        fresh: commit::Fresh,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let (group, store) = (self.group.clone(), self.store.clone());
        async move {
            if let Some(group) = group {
                return group.commit_keeping(writes, events, fresh).await;
            }
            tokio::task::spawn_blocking(move || store.commit(writes, events))
                .await
                .map_err(|e| StoreError::Task {
                    what: "commit",
                    reason: e.to_string(),
                })
                .and_then(|r| r)
        }
    }

    /// Restore the stored state (after a restart it is the previous observation).
    pub fn load(&mut self) -> Result<(), StoreError> {
        self.feed.restore(&*self.store)
    }

    /// Report successes to `health` and publish a heartbeat every `heartbeat_every` successful polls.
    pub fn observe(mut self, health: Arc<Health>, heartbeat_every: u32) -> Self {
        self.health_name = format!("{} {}", self.feed.source(), self.feed.endpoint());
        health.register(&self.health_name, self.interval);
        self.health = Some(health);
        self.heartbeat_every = heartbeat_every as u64;
        self
    }

    fn health_key(&self) -> &str {
        &self.health_name
    }

    fn heartbeat(&self, now_ms: i64, size: usize) -> Event {
        let (source, endpoint) = (self.feed.source(), self.feed.endpoint());
        Event::Heartbeat(Heartbeat {
            event_id: id::heartbeat(source, endpoint, now_ms).to_string(),
            source: source.to_string(),
            vendor: self.feed.vendor().to_string(),
            endpoint: endpoint.to_string(),
            observed_at: now_ms,
            polls: self.polls as i64,
            size: size as i64,
        })
    }

    /// One cycle. `now_ms` is the observation time. A cycle is a success (for `/readyz`) once
    /// what it derived is committed.
    pub async fn cycle(&mut self, now_ms: i64) -> Result<CycleOutcome, FeedError> {
        if self.reload {
            // The last commit failed (the store may have been reopened after an I/O error): what
            // the store holds is the last committed state, whatever the feed held; diff against it.
            self.feed.restore(&*self.store)?;
            self.reload = false;
        }
        let outcome = self.feed.poll(now_ms).await?;
        self.polls += 1;
        let heartbeat_due = self.heartbeat_every > 0 && self.polls % self.heartbeat_every == 0;
        let (writes, events, size, more, result) = match outcome {
            PollOutcome::Commit {
                writes,
                events,
                size,
                more,
            } => (writes, events, size, more, None),
            PollOutcome::Hold { reason } => (
                vec![],
                vec![],
                0,
                false,
                Some(CycleOutcome::Held { reason }),
            ),
            PollOutcome::Idle { more } => {
                (vec![], vec![], 0, more, Some(CycleOutcome::Idle { more }))
            }
        };
        let derived = events.len();
        // Not pushed onto `events`: a list built to its exact size would be copied to grow.
        let heartbeat = heartbeat_due.then(|| self.heartbeat(now_ms, size));
        if events.is_empty() && heartbeat.is_none() {
            if let Some(r) = result {
                self.report_success();
                return Ok(r);
            }
        }
        let counts = type_counts(events.iter().chain(heartbeat.iter()));
        let total = events.len() + usize::from(heartbeat.is_some());
        let room = self.group.as_ref().map_or(0, |g| g.room());
        let (encoded, fresh) = commit::encode(events, heartbeat, room);
        if let Err(e) = self.commit(writes, encoded, fresh).await {
            // Failed, or done but not known to be durable: the store decides what was committed.
            self.reload = true;
            return Err(e.into());
        }
        self.report_success();
        if let Some(r) = result {
            self.notify.notify_one();
            return Ok(r);
        }
        self.feed.committed();
        if derived > 0 {
            self.commits += 1;
            failpoint_after_commit(&self.feed.state_key(), self.commits);
        }
        self.notify.notify_one();
        let source = self.feed.source().to_string();
        for (ty, n) in counts {
            metrics::counter!("ccdc_events_total", "source" => source.clone(), "type" => ty)
                .increment(n);
        }
        self.metrics().size(size);
        Ok(CycleOutcome::Committed {
            size,
            events: total,
            more,
        })
    }

    /// Poll until `shutdown`; an in-flight cycle is finished before returning.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let name = self.feed.source().to_string();
        let endpoint = self.feed.endpoint().to_string();
        let mut backoff = Backoff::new(Duration::from_secs(1), self.max_backoff.min(self.interval));
        let mut cycle_no: u64 = 0;
        let mut paused = false;
        // When the next poll is due: how late it starts is `ccdc_poll_start_lag_seconds`.
        let mut due: Option<tokio::time::Instant> = None;
        if !self.first_delay.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(self.first_delay) => {}
                _ = shutdown.cancelled() => {
                    tracing::info!(source = %name, endpoint = %endpoint, "poller stopped before its first poll");
                    return;
                }
            }
        }
        loop {
            // Back-pressure: while the outbox is over its bound (broker down for long), do not poll.
            if self.pause_for_outbox(&mut paused) {
                due = None;
                tokio::select! {
                    _ = tokio::time::sleep(self.interval.min(Duration::from_secs(1))) => continue,
                    _ = shutdown.cancelled() => break,
                }
            }
            cycle_no += 1;
            if let Some(due) = due.take() {
                let lag = tokio::time::Instant::now().saturating_duration_since(due);
                metrics::histogram!("ccdc_poll_start_lag_seconds").record(lag.as_secs_f64());
            }
            let started = std::time::Instant::now();
            let now_ms = chrono::Utc::now().timestamp_millis();
            let span =
                tracing::info_span!("poll", source = %name, endpoint = %endpoint, cycle = cycle_no);
            // A panic in a cycle (a bug meeting data nobody foresaw) must not end the feed
            // silently: it is a failed poll, reported, and retried after the back-off.
            let result = std::panic::AssertUnwindSafe(self.cycle(now_ms))
                .catch_unwind()
                .instrument(span.clone())
                .await
                .unwrap_or_else(|panic| Err(FeedError::Panicked(panic_text(&*panic))));
            let elapsed = started.elapsed();
            self.metrics().duration(elapsed);
            let wait = span.in_scope(|| match result {
                Ok(outcome) => {
                    backoff.reset();
                    self.succeeded(outcome, elapsed)
                }
                Err(e) => self.failed(&e, &mut backoff),
            });
            let next = tokio::time::Instant::now() + wait;
            due = Some(next);
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        tracing::info!(source = %name, endpoint = %endpoint, "poller stopped");
    }

    fn report_success(&self) {
        if let Some(h) = &self.health {
            h.success(self.health_key());
        }
    }

    fn labels(&self) -> [(&'static str, String); 2] {
        [
            ("source", self.feed.source().to_string()),
            ("endpoint", self.feed.endpoint().to_string()),
        ]
    }

    /// Whether to hold off polling because the outbox is over its bound; logs and gauges the change.
    fn pause_for_outbox(&self, paused: &mut bool) -> bool {
        let over = self.health.as_ref().filter(|h| h.outbox_over_bound());
        if over.is_none() && !*paused {
            return false;
        }
        let labels = self.labels();
        if let Some(h) = over {
            if !*paused {
                tracing::warn!(source = %labels[0].1, endpoint = %labels[1].1, outbox = self.store.outbox_len(), "outbox over its bound: polling paused until the publisher catches up");
            }
            *paused = true;
            metrics::gauge!("ccdc_poller_paused", &labels).set(1.0);
            h.success(self.health_key()); // paused on purpose: staleness is reported by the outbox bound
            return true;
        }
        if std::mem::take(paused) {
            tracing::info!(source = %labels[0].1, endpoint = %labels[1].1, "outbox back under its bound: polling resumed");
            metrics::gauge!("ccdc_poller_paused", &labels).set(0.0);
        }
        false
    }

    /// Metrics and log of a successful cycle; the wait before the next one.
    fn succeeded(&mut self, outcome: CycleOutcome, elapsed: Duration) -> Duration {
        self.metrics().success();
        let more = match outcome {
            CycleOutcome::Committed { size, events, more } => {
                tracing::info!(
                    size,
                    events,
                    ms = elapsed.as_millis() as u64,
                    "poll committed"
                );
                more
            }
            CycleOutcome::Held { reason } => {
                metrics::counter!("ccdc_polls_held_total", &self.labels()).increment(1);
                tracing::warn!(%reason, "observation not believed yet; nothing committed");
                false
            }
            CycleOutcome::Idle { more } => more,
        };
        if more {
            Duration::ZERO
        } else {
            self.interval.saturating_sub(elapsed)
        }
    }

    /// Metrics and log of a failed cycle; the wait before the next one. A failure only an operator
    /// can fix (configuration, credentials) is not retried at the back-off's pace: the feed is
    /// reported failed on `/readyz` and tried again once per `max_backoff`, so that a fix (a new
    /// token, a corrected account) is picked up without a restart.
    fn failed(&self, e: &FeedError, backoff: &mut Backoff) -> Duration {
        let [source, endpoint] = self.labels();
        let kind = e.kind();
        metrics::counter!("ccdc_poll_failures_total", "source" => source.1.clone(), "endpoint" => endpoint.1.clone(), "kind" => kind).increment(1);
        let wait = backoff.fail();
        if let (FeedError::Panicked(_), Some(h)) = (e, &self.health) {
            h.failed(self.health_key(), e.to_string());
            tracing::error!(error = %e, kind, retry_in_ms = wait.as_millis() as u64, "poll panicked: nothing committed; the feed is reported failed until a poll succeeds");
            return wait;
        }
        if !e.is_retryable() {
            if let Some(h) = &self.health {
                h.failed(self.health_key(), e.to_string());
            }
            metrics::gauge!("ccdc_feed_failed", "source" => source.1, "endpoint" => endpoint.1)
                .set(1.0);
            let wait = self.max_backoff.max(wait);
            tracing::error!(error = %e, kind, retry_in_ms = wait.as_millis() as u64, "poll failed and retrying will not fix it: check the configuration or credentials; no events, state unchanged");
            return wait;
        }
        let wait = e.retry_after().map_or(wait, |ra| ra.max(wait));
        tracing::warn!(error = %e, kind, failures = backoff.failures(), retry_in_ms = wait.as_millis() as u64, "poll failed; no events, state unchanged");
        wait
    }
}

#[cfg(test)]
mod tests;
