//! Wolkvox report pulls (`reports_manager.php`, seeds 001–002): window by window from a saved cursor.
//!
//! Each cycle pulls `[cursor - lookback, now - settle_delay)` in windows of at most `max_window`
//! (≤ 31 days, the vendor's limit). A window whose response reaches the report's row limit is assumed
//! truncated and split in halves, down to `min_window`; if even that overflows, the cycle stops with
//! a loud error (metric + log) and publishes nothing of it. Every row is published once per identity
//! and content: identities and content hashes are remembered in the store (expiring after
//! `dedupe_ttl`), so the look-back re-read publishes only late or changed rows. A window's rows, its
//! dedupe marks and the cursor move are one atomic commit with the outbox: the cursor never runs
//! ahead of what will be delivered. Rows that cannot be coerced go to the dead-letter topic.

mod flat;
pub mod rows;
pub mod window;

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, NaiveDateTime};
use chrono_tz::Tz;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::event::{event_id, DeadLetter, Event, ReportRecord};
use crate::feed::{Feed, PollOutcome};
use crate::sources::wolkvox::WolkvoxClient;
use crate::sources::SourceError;
use crate::store::{Store, Write};
use crate::vendor_time::local_to_utc_millis;
use rows::ReportKind;
use window::{plan, trunc_seconds, Window};

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

/// Live pulls follow the clock; a backfill covers a fixed range with its own cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Backfill {
        from: NaiveDateTime,
        to: NaiveDateTime,
    },
}

#[derive(Serialize, Deserialize)]
struct Seen {
    hash: String,
    at: i64,
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
    last_sweep: Option<i64>,
    /// Windows completed in this feed's life (for progress reporting).
    pub windows_done: u64,
    pub rows_published: u64,
}

/// What streaming one response yielded.
enum Pulled {
    Rows(Vec<Box<RawValue>>),
    Overflow,
}

impl ReportFeed {
    pub fn new(
        client: Arc<WolkvoxClient>,
        store: Arc<dyn Store>,
        plan: ReportPlan,
        mode: Mode,
    ) -> Self {
        let endpoint = format!("reports_manager.php?api={}", plan.kind.name());
        ReportFeed {
            client,
            store,
            plan,
            mode,
            endpoint,
            cursor: None,
            pending_cursor: None,
            queue: VecDeque::new(),
            last_sweep: None,
            windows_done: 0,
            rows_published: 0,
        }
    }

    fn seen_prefix(&self) -> String {
        format!("seen/{}/{}/", self.client.meta.name, self.plan.kind.name())
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
                let target = now_local - self.plan.settle_delay;
                let cursor = *self.cursor.get_or_insert_with(|| {
                    self.plan.start_from.unwrap_or(target - self.plan.lookback)
                });
                ((cursor - self.plan.lookback).min(cursor), target)
            }
        };
        self.queue = plan(from, to, self.plan.max_window).into();
        !self.queue.is_empty()
    }

    /// Deletes for dedupe marks older than the ttl (at most once an hour).
    fn sweep(&mut self, now_ms: i64) -> Result<Vec<Write>, SourceError> {
        if self.last_sweep.is_some_and(|t| now_ms - t < 3_600_000) {
            return Ok(Vec::new());
        }
        self.last_sweep = Some(now_ms);
        let cutoff = now_ms - self.plan.dedupe_ttl.num_milliseconds();
        let entries = self
            .store
            .scan_prefix(&self.seen_prefix())
            .map_err(|e| self.store_error(e))?;
        Ok(entries
            .into_iter()
            .filter(|(_, v)| {
                serde_json::from_slice::<Seen>(v)
                    .map(|s| s.at < cutoff)
                    .unwrap_or(true)
            })
            .map(|(k, _)| Write::Delete(k))
            .collect())
    }

    fn store_error(&self, e: crate::store::StoreError) -> SourceError {
        SourceError::Parse {
            source_name: self.client.meta.name.clone(),
            endpoint: self.endpoint.clone(),
            field: "<state store>".into(),
            detail: e.to_string(),
        }
    }

    async fn pull(&self, w: &Window) -> Result<Pulled, SourceError> {
        let (name, endpoint, limit) = (
            self.client.meta.name.clone(),
            self.endpoint.clone(),
            self.plan.row_limit,
        );
        self.client
            .report(self.plan.kind.name(), &self.endpoint, w, move |r| {
                let mut rows = Vec::new();
                match stream_rows(&name, &endpoint, r, limit, |row| rows.push(row))? {
                    true => Ok(Pulled::Overflow),
                    false => Ok(Pulled::Rows(rows)),
                }
            })
            .await
    }

    /// Turn a complete window's rows into events and dedupe marks.
    fn derive(
        &self,
        w: &Window,
        rows: Vec<Box<RawValue>>,
        now_ms: i64,
    ) -> Result<(Vec<Event>, Vec<Write>), SourceError> {
        let (kind, tz, source) = (self.plan.kind, self.tz(), &self.client.meta.name);
        let (start_raw, end_raw) = (w.date_ini(), w.date_end());
        let mut in_window: HashMap<String, String> = HashMap::new();
        let (mut events, mut writes) = (Vec::new(), Vec::new());
        for raw in rows {
            let decoded = kind.decode(raw.get(), tz);
            let hash = decoded.hash;
            let (identity, coerced) = match (decoded.identity, decoded.row) {
                (Some(id), Ok(r)) => (id, Ok(r)),
                (id, Err(e)) => (id.unwrap_or_else(|| format!("raw:{hash}")), Err(e)),
                (None, Ok(_)) => (
                    format!("raw:{hash}"),
                    Err("the row has no identity".to_string()),
                ),
            };
            let seen_key = format!("{}{identity}", self.seen_prefix());
            if in_window.get(&identity) == Some(&hash) {
                continue;
            }
            let stored = self.store.get(&seen_key).map_err(|e| self.store_error(e))?;
            if stored
                .and_then(|v| serde_json::from_slice::<Seen>(&v).ok())
                .is_some_and(|s| s.hash == hash)
            {
                continue;
            }
            in_window.insert(identity.clone(), hash.clone());
            writes.push(Write::Put(
                seen_key,
                crate::feed::encode_state(&Seen {
                    hash: hash.clone(),
                    at: now_ms,
                }),
            ));
            match coerced {
                Ok(row) => events.push(Event::ReportRow(Box::new(ReportRecord {
                    event_id: event_id(&[source, kind.name(), &identity, &hash]).to_string(),
                    source: source.clone(),
                    vendor: crate::sources::wolkvox::VENDOR.into(),
                    identity,
                    row_hash: hash,
                    window_start: local_to_utc_millis(w.start, tz),
                    window_end: local_to_utc_millis(w.end, tz),
                    window_start_raw: start_raw.clone(),
                    window_end_raw: end_raw.clone(),
                    pulled_at: now_ms,
                    row,
                }))),
                Err(error) => {
                    metrics::counter!("ccdc_report_dead_letters_total", "source" => source.clone(), "report" => kind.name()).increment(1);
                    tracing::warn!(report = kind.name(), window = %format!("{start_raw}..{end_raw}"), %error, "row cannot be coerced; sent to the dead-letter topic");
                    events.push(Event::DeadLetter(DeadLetter {
                        event_id: event_id(&[source, kind.name(), "dead-letter", &hash])
                            .to_string(),
                        source: source.clone(),
                        vendor: crate::sources::wolkvox::VENDOR.into(),
                        report: kind.name().into(),
                        window_start_raw: start_raw.clone(),
                        window_end_raw: end_raw.clone(),
                        error,
                        raw: raw.get().to_string(),
                        failed_at: now_ms,
                    }))
                }
            }
        }
        Ok((events, writes))
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
pub fn parse_cursor(bytes: &[u8]) -> Result<NaiveDateTime, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    NaiveDateTime::parse_from_str(text, CURSOR_FORMAT).map_err(|e| format!("`{text}`: {e}"))
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
    fn restore(&mut self, store: &dyn Store) -> Result<(), String> {
        if let Some(state) = store.get(&self.state_key()).map_err(|e| e.to_string())? {
            self.cursor = Some(parse_cursor(&state)?);
        }
        Ok(())
    }
    async fn poll(&mut self, observed_at: i64) -> Result<PollOutcome, SourceError> {
        if self.queue.is_empty() && !self.plan_cycle(observed_at) {
            return Ok(PollOutcome::Idle { more: false });
        }
        let Some(w) = self.queue.pop_front() else {
            return Ok(PollOutcome::Idle { more: false });
        };
        let pulled = match self.pull(&w).await {
            Ok(p) => p,
            Err(e) => {
                self.queue.push_front(w);
                return Err(e);
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
                metrics::counter!("ccdc_report_overflows_total", "source" => source.clone(), "report" => self.plan.kind.name()).increment(1);
                Err(SourceError::Overflow {
                    source_name: source,
                    endpoint: self.endpoint.clone(),
                    window: format!("{}..{}", w.date_ini(), w.date_end()),
                    limit: self.plan.row_limit,
                })
            }
            Pulled::Rows(rows) => {
                let size = rows.len();
                let (events, mut writes) = self.derive(&w, rows, observed_at)?;
                writes.extend(self.sweep(observed_at)?);
                if self.cursor.is_none_or(|c| w.end > c) {
                    writes.push(Write::Put(
                        self.state_key(),
                        w.end.format(CURSOR_FORMAT).to_string().into_bytes(),
                    ));
                    self.pending_cursor = Some(w.end);
                }
                self.windows_done += 1;
                self.rows_published += events.len() as u64;
                Ok(PollOutcome::Commit {
                    writes,
                    events,
                    size,
                    more: !self.queue.is_empty(),
                })
            }
        }
    }
    fn committed(&mut self) {
        if let Some(c) = self.pending_cursor.take() {
            self.cursor = Some(c);
        }
    }
}

/// Stream a Wolkvox envelope, handing each row of `data` to `on_row` as it is parsed (the body is
/// never held whole). Returns `true` when the row count reached `limit` (parsing stops there: the
/// response is assumed truncated). Errors name the JSON path of the problem.
pub fn stream_rows(
    source: &str,
    endpoint: &str,
    body: &mut dyn Read,
    limit: usize,
    on_row: impl FnMut(Box<RawValue>),
) -> Result<bool, SourceError> {
    const OVERFLOW: &str = "\u{0}ccdc-row-limit";
    let mut on_row = on_row;
    let mut head = Head::default();
    // A concrete buffered reader: serde_json reads byte by byte, which must not be a virtual call.
    let mut de =
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(64 * 1024, body));
    let seed = EnvelopeSeed {
        head: &mut head,
        on_row: &mut on_row,
        limit,
        count: 0,
    };
    match seed.deserialize(&mut de) {
        Ok(()) => {}
        Err(e) if e.to_string().starts_with(OVERFLOW) => return Ok(true),
        Err(e) => return Err(SourceError::from_json(source, endpoint, None, e)),
    }
    let env = crate::sources::wolkvox::Envelope::<()> {
        code: head.code,
        error: head.error,
        msg: head.msg,
        data: head.data.then_some(()),
    };
    env.into_data(source, endpoint)?;
    return Ok(false);

    #[derive(Default)]
    struct Head {
        code: Option<String>,
        error: Option<Value>,
        msg: Option<String>,
        data: bool,
    }
    struct EnvelopeSeed<'a, F> {
        head: &'a mut Head,
        on_row: &'a mut F,
        limit: usize,
        count: usize,
    }
    impl<'de, F: FnMut(Box<RawValue>)> DeserializeSeed<'de> for EnvelopeSeed<'_, F> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de, F: FnMut(Box<RawValue>)> Visitor<'de> for EnvelopeSeed<'_, F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a Wolkvox envelope {code, error, msg, data}")
        }
        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
            #[derive(Deserialize)]
            struct Lenient(
                #[serde(deserialize_with = "crate::sources::wolkvox::opt_lenient_string")]
                Option<String>,
            );
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "code" => self.head.code = map.next_value::<Lenient>()?.0,
                    "msg" => self.head.msg = map.next_value::<Lenient>()?.0,
                    "error" => self.head.error = map.next_value()?,
                    "data" => {
                        let rows = RowsSeed {
                            on_row: &mut *self.on_row,
                            limit: self.limit,
                            count: &mut self.count,
                        };
                        self.head.data = map.next_value_seed(rows)?;
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        }
    }
    struct RowsSeed<'a, F> {
        on_row: &'a mut F,
        limit: usize,
        count: &'a mut usize,
    }
    impl<'de, F: FnMut(Box<RawValue>)> DeserializeSeed<'de> for RowsSeed<'_, F> {
        type Value = bool;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de, F: FnMut(Box<RawValue>)> Visitor<'de> for RowsSeed<'_, F> {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of rows or null")
        }
        fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            while let Some(row) = seq.next_element::<Box<RawValue>>()? {
                *self.count += 1;
                if *self.count >= self.limit {
                    return Err(de::Error::custom(OVERFLOW));
                }
                (self.on_row)(row);
            }
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests;
