//! `ccdc backfill`: pull a fixed range of one report (split into legal windows) through the same
//! outbox as the service, with a progress bar. Its cursor is its own (keyed by the range), so an
//! interrupted backfill resumes where it stopped and the live cursor never moves.

use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use tokio_util::sync::CancellationToken;

use crate::app::Pipeline;
use crate::config::{parse_local_start, Config, ReportConfig, SourceConfig, WolkvoxConfig};
use crate::feed::FeedError;
use crate::poller::{CycleOutcome, Poller};
use crate::reports::{cursor_key, parse_cursor, Mode, ReportFeed, ReportPlan};
use crate::retry::Backoff;
use crate::sources::wolkvox::WolkvoxClient;
use crate::sources::SourceError;
use crate::store::Store;

/// `ccdc backfill --source NAME --report chat_1 --from .. --to ..`.
pub async fn backfill(
    config: Config,
    source: &str,
    report: &str,
    from: &str,
    to: &str,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let w = wolkvox_source(&config, source)?;
    let report_cfg = match w.reports.iter().find(|r| r.report == report) {
        Some(r) => r.clone(),
        None => serde_json::from_value::<ReportConfig>(serde_json::json!({ "report": report }))?,
    };
    let plan = ReportPlan::from_config(&report_cfg)?;
    let (from, to) = (parse_local_start(from)?, parse_local_start(to)?);
    anyhow::ensure!(from < to, "--from must be before --to");
    let mode = Mode::Backfill { from, to };

    let pipeline = Pipeline::start(&config, &shutdown)?;
    let store = pipeline.store.clone();
    let client = WolkvoxClient::with_quota(w, store.clone())?;
    let feed = ReportFeed::new(client, store.clone(), plan.clone(), mode)
        .with_spill_dir(config.state_dir.clone());
    let mut poller = Poller::new(
        Box::new(feed),
        store.clone(),
        pipeline.notify.clone(),
        report_cfg.interval,
        report_cfg.max_backoff,
    );
    poller.load()?;
    // A backfill whose state directory lost its cursor resumes from the Kafka checkpoint.
    if let Some(checkpoints) = pipeline.checkpoints() {
        checkpoints.resume(&mut poller, &shutdown).await?;
    }

    let progress = Progress::new(
        format!("{} {}", w.name, plan.kind.name()),
        cursor_key(&w.name, plan.kind, mode),
        from,
        to,
    );
    progress.show(store.as_ref());
    let backoff = Backoff::new(Duration::from_secs(1), report_cfg.max_backoff);
    let outcome = pull_all(&mut poller, &progress, backoff, &shutdown).await;
    progress.bar.finish_and_clear();
    pipeline
        .finish(None, Instant::now() + config.shutdown_timeout)
        .await?;
    let complete = outcome?;
    eprintln!(
        "backfill {} {}..{}: {} windows, {} rows published in {:.1}s — {}",
        progress.what,
        from,
        to,
        progress.windows.get(),
        progress.rows.get(),
        progress.started.elapsed().as_secs_f64(),
        if complete {
            "complete"
        } else {
            "interrupted; run the same command to resume"
        }
    );
    anyhow::ensure!(complete, "backfill interrupted before completion");
    Ok(())
}

fn wolkvox_source<'a>(config: &'a Config, source: &str) -> anyhow::Result<&'a WolkvoxConfig> {
    config
        .sources
        .iter()
        .find_map(|s| match s {
            SourceConfig::Wolkvox(w) if w.name == source => Some(w),
            _ => None,
        })
        .ok_or_else(|| anyhow::anyhow!("no Wolkvox source named `{source}` in the configuration"))
}

/// A failure a backfill stops for instead of retrying: what retrying cannot fix (configuration,
/// credentials), a window that overflows even at the minimum span, or the day's call quota.
fn stops_backfill(e: &FeedError) -> bool {
    !e.is_retryable()
        || matches!(
            e,
            FeedError::Source(SourceError::Overflow { .. } | SourceError::Quota { .. })
        )
}

/// Poll the backfill's report feed until the range is done (`Ok(true)`), interrupted
/// (`Ok(false)`) or stopped by an error retrying cannot fix.
async fn pull_all(
    poller: &mut Poller,
    progress: &Progress,
    mut backoff: Backoff,
    shutdown: &CancellationToken,
) -> anyhow::Result<bool> {
    loop {
        if shutdown.is_cancelled() {
            return Ok(false);
        }
        match poller.cycle(chrono::Utc::now().timestamp_millis()).await {
            Ok(CycleOutcome::Committed { events, more, .. }) => {
                backoff.reset();
                progress.window_done(poller.store.as_ref(), events);
                if !more {
                    return Ok(true);
                }
            }
            Ok(CycleOutcome::Idle { more: false }) => return Ok(true),
            Ok(_) => {}
            Err(e) if stops_backfill(&e) => {
                return Err(anyhow::Error::new(e)
                    .context("backfill stopped; fix the cause and run the same command to resume"))
            }
            Err(e) => {
                let wait = backoff.fail();
                progress.bar.suspend(|| tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "backfill window failed; retrying"));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return Ok(false),
                }
            }
        }
    }
}

/// The progress bar: how much of the range the stored cursor covers, windows, rows and rate.
struct Progress {
    what: String,
    cursor_key: String,
    from: NaiveDateTime,
    total: u64,
    bar: indicatif::ProgressBar,
    started: Instant,
    windows: std::cell::Cell<u64>,
    rows: std::cell::Cell<u64>,
}

impl Progress {
    fn new(what: String, cursor_key: String, from: NaiveDateTime, to: NaiveDateTime) -> Self {
        let total = (to - from).num_seconds().max(1) as u64;
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {prefix} [{bar:30}] {percent}% {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_prefix(what.clone());
        Progress {
            what,
            cursor_key,
            from,
            total,
            bar,
            started: Instant::now(),
            windows: 0.into(),
            rows: 0.into(),
        }
    }

    /// Seconds of the range before the stored cursor.
    fn covered(&self, store: &dyn Store) -> u64 {
        store
            .get(&self.cursor_key)
            .ok()
            .flatten()
            .and_then(|b| parse_cursor(&self.cursor_key, &b).ok())
            .map_or(0, |c| {
                (c - self.from).num_seconds().clamp(0, self.total as i64) as u64
            })
    }

    fn show(&self, store: &dyn Store) {
        self.bar.set_position(self.covered(store));
    }

    fn window_done(&self, store: &dyn Store, events: usize) {
        self.windows.set(self.windows.get() + 1);
        self.rows.set(self.rows.get() + events as u64);
        self.show(store);
        let rate = self.rows.get() as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        self.bar.set_message(format!(
            "{} windows, {} rows, {rate:.0} rows/s",
            self.windows.get(),
            self.rows.get()
        ));
    }
}
