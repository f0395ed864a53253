//! Wolkvox report pulls (`reports_manager.php`, seeds 001–002): window by window from a saved cursor.
//!
//! Each cycle pulls `[cursor - lookback, now - settle_delay)` in windows of at most `max_window`
//! (≤ 31 days, the vendor's limit). A window whose response reaches the report's row limit is assumed
//! truncated and split in halves, down to `min_window`; if even that overflows, the cycle stops with
//! a loud error (metric + log) and publishes nothing of it. Every row is published once per identity
//! and content: identities and content hashes are remembered in the store (expiring after
//! `dedupe_ttl`), so the look-back re-read publishes only late or changed rows. The marks of one
//! commit are stored together in one entry and held in memory (`marks`). Rows that cannot be
//! coerced go to the dead-letter topic.
//!
//! A complete window's rows are kept in a [`stream::Spill`] (in memory if the response was read
//! whole, else in a temporary file past a few megabytes) and committed with their dedupe marks a
//! chunk at a time (at most [`CHUNK_ROWS`] rows or [`CHUNK_BYTES`] of row text), each chunk one
//! atomic commit with the outbox; the cursor moves with the window's last chunk, so it never runs
//! ahead of what will be delivered. A crash or a
//! failed commit between chunks leaves the cursor where it was: the window is pulled again, and the
//! rows of its committed chunks are found in their dedupe marks and not published twice.
//!
//! The next window of a cycle is pulled in the background while the current one's chunks are
//! derived and committed (`pull::Prefetch`); it is used only when that window comes up next
//! (a split or an error before it cancels it). Likewise a window's next chunk is decoded while the
//! one before is committed (`chunks`).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::config::{invalid, parse_local_start, ConfigError, ReportConfig};
use crate::event::report::ReportKind;
use crate::feed::{Feed, FeedError, PollOutcome};
use crate::sources::wolkvox::report_stream as stream;
use crate::sources::wolkvox::WolkvoxClient;
use crate::sources::SourceError;
use crate::store::{Store, StoreError, Write};
use crate::window::{plan, trunc_seconds, Window};
use async_trait::async_trait;
use chrono::{Duration, NaiveDateTime};
use chrono_tz::Tz;
use marks::Marks;
use pull::{Prefetch, Pulled, Puller};
use reconcile::Counts;

mod chunks;
mod derive;
mod marks;
mod pull;
mod reconcile;

/// How one report is pulled (from `[[sources.reports]]`).
#[derive(Debug, Clone)]
pub struct ReportPlan {
    pub kind: ReportKind,
    pub settle_delay: Duration,
    pub lookback: Duration,
    pub max_window: Duration,
    pub min_window: Duration,
    pub row_limit: usize,
    pub start_from: Option<NaiveDateTime>,
    pub dedupe_ttl: Duration,
}

impl ReportPlan {
    /// The plan a `[[sources.reports]]` block asks for (validated again: errors name the key).
    pub fn from_config(c: &ReportConfig) -> Result<Self, ConfigError> {
        let kind = ReportKind::parse(&c.report)
            .ok_or_else(|| invalid("report", format!("unknown report `{}`", c.report)))?;
        let dur = |d: std::time::Duration| {
            Duration::from_std(d).map_err(|e| invalid("report", e.to_string()))
        };
        Ok(ReportPlan {
            kind,
            settle_delay: dur(c.settle_delay)?,
            lookback: dur(c.lookback)?,
            max_window: dur(c.max_window)?,
            min_window: dur(c.min_window)?,
            row_limit: c.row_limit.unwrap_or(kind.default_row_limit()) as usize,
            start_from: c
                .start_from
                .as_deref()
                .map(parse_local_start)
                .transpose()
                .map_err(|m| invalid("start_from", m.to_string()))?,
            dedupe_ttl: dur(c.dedupe_ttl)?,
        })
    }

    /// A plan for pulling a past range as it is: no settle delay, no look-back, windows of at most
    /// `max_window` (split down to a minute), the report's own row limit, marks kept for a week.
    pub fn past_range(kind: ReportKind, max_window: Duration) -> Self {
        ReportPlan {
            kind,
            settle_delay: Duration::zero(),
            lookback: Duration::zero(),
            max_window,
            min_window: Duration::minutes(1),
            row_limit: kind.default_row_limit() as usize,
            start_from: None,
            dedupe_ttl: Duration::days(7),
        }
    }
}

/// Live pulls follow the clock; a backfill covers a fixed range with its own cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Backfill {
        from: NaiveDateTime,
        to: NaiveDateTime,
    },
}

pub struct ReportFeed {
    client: Arc<WolkvoxClient>,
    store: Arc<dyn Store>,
    plan: ReportPlan,
    mode: Mode,
    endpoint: String,
    cursor: Option<NaiveDateTime>,
    pending_cursor: Option<NaiveDateTime>,
    queue: VecDeque<Window>,
    /// The window whose rows are being committed, chunk by chunk.
    pending: Option<PendingWindow>,
    /// The window of the chunk handed out, until `committed` is called.
    chunk_out: Option<Window>,
    /// Where a large window's rows are kept until committed (see [`stream::Spill`]).
    spill_dir: std::path::PathBuf,
    last_sweep: Option<i64>,
    /// The rows published before (identity and content), by their dedupe marks.
    marks: Marks,
    /// The next window, being pulled while the current one is committed.
    prefetch: Option<Prefetch>,
    /// Windows completed in this feed's life (for progress reporting).
    pub windows_done: u64,
    pub rows_published: u64,
}

/// Rows of a complete window committed a chunk at a time: at most this many rows... (a chunk is
/// ≈ 3.5 MB of chat_1 events, over `poller::commit::AT_ONCE_BYTES`, so it does not wait for the
/// group-commit gap; fewer, larger chunks mean fewer flushes per window).
pub const CHUNK_ROWS: usize = 12_000;
/// ...and no more once this much row text is taken.
pub const CHUNK_BYTES: usize = 6 << 20;

/// A complete window being committed.
struct PendingWindow {
    window: Window,
    rows: stream::Rows,
    size: usize,
    /// Its next chunk, decoded in the background while the one before is committed.
    ahead: Option<chunks::Ahead>,
}

impl ReportFeed {
    pub fn new(
        client: Arc<WolkvoxClient>,
        store: Arc<dyn Store>,
        plan: ReportPlan,
        mode: Mode,
    ) -> Self {
        let endpoint = format!("reports_manager.php?api={}", plan.kind.name());
        let marks = Marks::new(&client.meta.name, plan.kind.name());
        ReportFeed {
            marks,
            prefetch: None,
            client,
            store,
            plan,
            mode,
            endpoint,
            cursor: None,
            pending_cursor: None,
            pending: None,
            chunk_out: None,
            spill_dir: std::env::temp_dir(),
            queue: VecDeque::new(),
            last_sweep: None,
            windows_done: 0,
            rows_published: 0,
        }
    }

    /// Keep large windows' rows in `dir` until they are committed (default: the system's
    /// temporary directory; the service uses its state directory).
    pub fn with_spill_dir(mut self, dir: std::path::PathBuf) -> Self {
        self.spill_dir = dir;
        self
    }

    /// Windows still queued in this cycle (for progress reporting).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    fn tz(&self) -> Tz {
        self.client.tz
    }

    /// Plan the next cycle; `false` when there is nothing to pull.
    fn plan_cycle(&mut self, now_ms: i64) -> bool {
        let now_local = trunc_seconds(
            chrono::DateTime::from_timestamp_millis(now_ms)
                .unwrap_or_default()
                .with_timezone(&self.tz())
                .naive_local(),
        );
        let (from, to) = match self.mode {
            Mode::Backfill { from, to } => (self.cursor.unwrap_or(from).max(from), to),
            Mode::Live => {
                // Whole seconds: the vendor takes and gives whole seconds (a fractional
                // settle_delay would make windows the vendor cannot be asked for).
                let target = trunc_seconds(now_local - self.plan.settle_delay);
                let cursor = *self.cursor.get_or_insert_with(|| {
                    self.plan.start_from.unwrap_or(target - self.plan.lookback)
                });
                (
                    trunc_seconds((cursor - self.plan.lookback).min(cursor)),
                    target,
                )
            }
        };
        self.queue = plan(from, to, self.plan.max_window).into();
        self.prefetch = None;
        !self.queue.is_empty()
    }

    /// When due (at most once an hour): the time before which dedupe marks expire (the ttl ago),
    /// and the deletes of expired sightings when reconciling.
    fn sweep(&mut self, now_ms: i64) -> Result<(Option<i64>, Vec<Write>), StoreError> {
        if self.last_sweep.is_some_and(|t| now_ms - t < 3_600_000) {
            return Ok((None, Vec::new()));
        }
        self.last_sweep = Some(now_ms);
        let cutoff = now_ms.saturating_sub(self.plan.dedupe_ttl.num_milliseconds());
        let mut deletes = Vec::new();
        if self.reconciler_enabled() {
            deletes.extend(reconcile::expired_sightings(
                &*self.store,
                &self.client.meta.name,
                cutoff,
            )?);
        }
        Ok((Some(cutoff), deletes))
    }

    fn reconciler_enabled(&self) -> bool {
        self.plan.kind == ReportKind::Chat1 && self.client.reconcile
    }

    /// Metrics and a warning for what a chunk reconciled.
    fn count_reconciled(&self, w: &Window, c: Counts) {
        let source = self.client.meta.name.clone();
        for (outcome, n) in [
            ("seen", c.seen),
            ("missed", c.missed),
            ("only_polling", c.only_polling),
        ] {
            if n > 0 {
                metrics::counter!("ccdc_reconciled_chats_total", "source" => source.clone(), "outcome" => outcome).increment(n);
            }
        }
        if c.only_polling > 0 {
            tracing::warn!(window = %format!("{}..{}", w.date_ini(), w.date_end()), chats = c.only_polling, "real-time polling saw chats start in this settled window that the chat_1 report does not list");
        }
    }

    /// Keeping a window's rows in the spill file failed (local disk, not the vendor).
    fn spill_error(&self, detail: String) -> SourceError {
        self.puller().spill_error(detail)
    }

    fn puller(&self) -> Puller {
        Puller {
            client: self.client.clone(),
            report: self.plan.kind.name(),
            endpoint: self.endpoint.clone(),
            limit: self.plan.row_limit,
            spill_dir: self.spill_dir.clone(),
        }
    }

    /// Window `w`'s rows: from its prefetch if it is the one being pulled, else pulled now.
    async fn pull(&mut self, w: Window) -> Result<Pulled, SourceError> {
        let puller = self.puller();
        match self.prefetch.take() {
            Some(p) if p.window == w => p.join(&puller).await,
            // Another window first (one pulled again, or half of a split one): keep it for later.
            other => {
                self.prefetch = other;
                puller.pull(w).await
            }
        }
    }
}

/// The state key of a feed's cursor.
pub fn cursor_key(source: &str, kind: ReportKind, mode: Mode) -> String {
    match mode {
        Mode::Live => format!("report/{source}/{}/cursor", kind.name()),
        Mode::Backfill { from, to } => format!(
            "backfill/{source}/{}/{}-{}/cursor",
            kind.name(),
            from.format("%Y%m%d%H%M%S"),
            to.format("%Y%m%d%H%M%S")
        ),
    }
}

const CURSOR_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Read a stored cursor (local time).
pub fn parse_cursor(key: &str, bytes: &[u8]) -> Result<NaiveDateTime, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_string(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| corrupt(e.to_string()))?;
    NaiveDateTime::parse_from_str(text, CURSOR_FORMAT)
        .map_err(|e| corrupt(format!("cursor `{text}`: {e}")))
}

#[async_trait]
impl Feed for ReportFeed {
    fn source(&self) -> &str {
        &self.client.meta.name
    }
    fn vendor(&self) -> &str {
        &self.client.meta.vendor
    }
    fn endpoint(&self) -> &str {
        &self.endpoint
    }
    fn state_key(&self) -> String {
        cursor_key(&self.client.meta.name, self.plan.kind, self.mode)
    }
    fn restore(&mut self, store: &dyn Store) -> Result<(), StoreError> {
        let key = self.state_key();
        if let Some(state) = store.get(&key)? {
            self.cursor = Some(parse_cursor(&key, &state)?);
        }
        self.marks.load(store)
    }
    async fn poll(&mut self, observed_at: i64) -> Result<PollOutcome, FeedError> {
        if let Some(w) = self.chunk_out.take() {
            // The last chunk was not committed: pull its window again, before any later window
            // can move the cursor past it (its committed chunks are in the dedupe marks).
            self.marks.discard();
            self.pending_cursor = None;
            self.pending = None;
            self.queue.push_front(w);
        }
        if self.pending.is_some() {
            return self.next_chunk(observed_at).await;
        }
        if self.queue.is_empty() && !self.plan_cycle(observed_at) {
            return Ok(PollOutcome::Idle { more: false });
        }
        let Some(w) = self.queue.pop_front() else {
            return Ok(PollOutcome::Idle { more: false });
        };
        let pulled = match self.pull(w).await {
            Ok(p) => p,
            Err(e) if refused_for_size(&e) => {
                tracing::warn!(window = %format!("{}..{}", w.date_ini(), w.date_end()), error = %e, "the vendor refused the window for its size; it is split like one that reached the row limit");
                Pulled::Overflow
            }
            Err(e) => {
                self.queue.push_front(w);
                return Err(e.into());
            }
        };
        let source = self.client.meta.name.clone();
        match pulled {
            Pulled::Overflow if w.span() >= self.plan.min_window * 2 => {
                let (a, b) = w.split();
                self.queue.push_front(b);
                self.queue.push_front(a);
                metrics::counter!("ccdc_report_window_splits_total", "source" => source, "report" => self.plan.kind.name()).increment(1);
                tracing::debug!(window = %format!("{}..{}", w.date_ini(), w.date_end()), "window reached the row limit; split in halves");
                Ok(PollOutcome::Idle { more: true })
            }
            Pulled::Overflow => {
                self.queue.clear();
                self.prefetch = None;
                metrics::counter!("ccdc_report_overflows_total", "source" => source.clone(), "report" => self.plan.kind.name()).increment(1);
                Err(SourceError::Overflow {
                    source_name: source,
                    endpoint: self.endpoint.clone(),
                    window: format!("{}..{}", w.date_ini(), w.date_end()),
                    limit: self.plan.row_limit,
                }
                .into())
            }
            Pulled::Rows(rows) => {
                self.pending = Some(PendingWindow {
                    window: w,
                    size: rows.len(),
                    rows,
                    ahead: None,
                });
                if let Some(&next) = self.queue.front() {
                    self.prefetch = Some(self.puller().prefetch(next));
                }
                self.next_chunk(observed_at).await
            }
        }
    }
    fn committed(&mut self) {
        self.chunk_out = None;
        self.marks.committed();
        if let Some(c) = self.pending_cursor.take() {
            self.cursor = Some(c);
        }
    }
}

/// Whether the vendor refused a report window for the rows it holds ("if your query exceeds 6000
/// records, reduce the date range", diagram_9's page) rather than for another reason: such a
/// window is split like one that reached the row limit, instead of asked again as it was.
fn refused_for_size(e: &SourceError) -> bool {
    let SourceError::Vendor { message, .. } = e else {
        return false;
    };
    let m = message.to_ascii_lowercase();
    m.contains("reduce the date range") || (m.contains("exceed") && m.contains("record"))
}
