//! A pending window's chunks, one per poll: read from the spill, decoded, derived (dedupe marks,
//! events), and with the window's last chunk the reconciliation of what polling alone saw, the
//! dedupe sweep and the cursor.
//!
//! Decoding a row depends on nothing but its text, so the next chunk is read and decoded on a
//! blocking thread ([`Ahead`]) while the poller commits the one just handed out; deriving it
//! (which consults the dedupe marks the commit adds) waits for the next poll, as before.

use super::derive::{decode_rows, DecodedRows, Derived};
use super::{PendingWindow, ReportFeed, CHUNK_BYTES, CHUNK_ROWS, CURSOR_FORMAT};
use crate::feed::{Feed, FeedError, PollOutcome};
use crate::sources::SourceError;
use crate::store::Write;

/// The next chunk, being decoded, or why it could not be read from the spill.
pub(super) enum Ahead {
    Decoding(tokio::task::JoinHandle<DecodedRows>),
    Unreadable(std::io::Error),
}

impl ReportFeed {
    /// This chunk's decoded rows: decoded ahead, or read and decoded now.
    async fn this_chunk(&self, p: &mut PendingWindow) -> Result<DecodedRows, FeedError> {
        match p.ahead.take() {
            Some(Ahead::Decoding(task)) => task.await.map_err(|e| {
                FeedError::from(SourceError::Internal {
                    source_name: self.client.meta.name.clone(),
                    endpoint: self.endpoint.clone(),
                    detail: format!("decoding a chunk of rows did not finish: {e}"),
                })
            }),
            Some(Ahead::Unreadable(e)) => Err(self.spill_error(e.to_string()).into()),
            None => p
                .rows
                .chunk(CHUNK_ROWS, CHUNK_BYTES)
                .map(|rows| decode_rows(self.plan.kind, self.tz(), rows))
                .map_err(|e| self.spill_error(e.to_string()).into()),
        }
    }

    /// Start decoding the window's next chunk, if it has one.
    fn decode_ahead(&self, p: &mut PendingWindow) {
        if p.rows.is_empty() {
            return;
        }
        let (kind, tz) = (self.plan.kind, self.tz());
        p.ahead = Some(match p.rows.chunk(CHUNK_ROWS, CHUNK_BYTES) {
            Ok(rows) => Ahead::Decoding(tokio::task::spawn_blocking(move || {
                decode_rows(kind, tz, rows)
            })),
            Err(e) => Ahead::Unreadable(e),
        });
    }

    /// The next chunk of the pending window; with its last, the dedupe sweep and the cursor.
    pub(super) async fn next_chunk(&mut self, now_ms: i64) -> Result<PollOutcome, FeedError> {
        let Some(mut p) = self.pending.take() else {
            return Ok(PollOutcome::Idle { more: true });
        };
        let rows = self.this_chunk(&mut p).await;
        let last = p.rows.is_empty() && p.ahead.is_none();
        if rows.is_ok() {
            self.decode_ahead(&mut p);
        }
        let derived = rows
            .and_then(|rows| self.derive(&p.window, rows, now_ms))
            .and_then(|mut d| {
                let mut expire_before = None;
                if last {
                    if let Some(r) = self.reconciler(&p.window, now_ms) {
                        let (events, writes) = r.only_polling(&d.matched, &mut d.counts)?;
                        d.events.extend(events);
                        d.writes.extend(writes);
                    }
                    let (cutoff, deletes) = self.sweep(now_ms)?;
                    d.writes.extend(deletes);
                    expire_before = cutoff;
                }
                let marks = std::mem::take(&mut d.marks);
                d.writes
                    .extend(self.marks.stage(marks, now_ms, expire_before));
                Ok(d)
            });
        let Derived {
            events,
            mut writes,
            counts,
            ..
        } = match derived {
            Ok(d) => d,
            Err(e) => {
                // Pulled again before any later window moves the cursor.
                self.queue.push_front(p.window);
                return Err(e);
            }
        };
        let (w, size) = (p.window, p.size);
        self.count_reconciled(&w, counts);
        if last {
            if self.cursor.is_none_or(|c| w.end > c) {
                writes.push(Write::Put(
                    self.state_key(),
                    w.end.format(CURSOR_FORMAT).to_string().into_bytes(),
                ));
                self.pending_cursor = Some(w.end);
            }
            self.windows_done += 1;
        } else {
            self.pending = Some(p);
        }
        self.rows_published += events.len() as u64;
        self.chunk_out = Some(w);
        Ok(PollOutcome::Commit {
            writes,
            events,
            size,
            more: self.pending.is_some() || !self.queue.is_empty(),
        })
    }
}
