//! Pulling one report window: its response's rows into a [`stream::Spill`], or the news that it
//! reached the row limit. The next window of a cycle is pulled in the background ([`Prefetch`])
//! while the current one's rows are derived and committed chunk by chunk, so the vendor's answer
//! and its parsing overlap that work instead of waiting for it.

use std::path::PathBuf;
use std::sync::Arc;

use crate::sources::http::Body;
use crate::sources::wolkvox::report_stream::{self as stream, body_rows};
use crate::sources::wolkvox::WolkvoxClient;
use crate::sources::SourceError;
use crate::window::Window;

/// What pulling one window yielded.
pub(super) enum Pulled {
    Rows(stream::Rows),
    Overflow,
}

/// Everything a pull needs, owned (a prefetch runs as its own task).
#[derive(Clone)]
pub(super) struct Puller {
    pub client: Arc<WolkvoxClient>,
    pub report: &'static str,
    pub endpoint: String,
    pub limit: usize,
    pub spill_dir: PathBuf,
}

impl Puller {
    /// Keeping a window's rows in the spill file failed (local disk, not the vendor).
    pub fn spill_error(&self, detail: String) -> SourceError {
        SourceError::Spill {
            source_name: self.client.meta.name.clone(),
            endpoint: self.endpoint.clone(),
            detail,
        }
    }

    pub async fn pull(self, w: Window) -> Result<Pulled, SourceError> {
        let (name, endpoint, limit) = (
            self.client.meta.name.clone(),
            self.endpoint.clone(),
            self.limit,
        );
        let spill_error = |e: std::io::Error| {
            self.spill_error(format!(
                "keeping the rows in {}: {e}",
                self.spill_dir.display()
            ))
        };
        let mut spill = stream::Spill::new(self.spill_dir.clone());
        let (spill, overflow, failed) = self
            .client
            .report_body(self.report, &self.endpoint, &w, move |body| {
                if let Body::Whole(bytes) = &body {
                    // Its rows take no more memory than the response did: no file.
                    spill.keep_in_memory(bytes.len());
                }
                let mut failed = None;
                let overflow = body_rows(&name, &endpoint, body, limit, |row| {
                    if failed.is_none() {
                        failed = spill.push(row).err();
                    }
                })?;
                Ok((spill, overflow, failed))
            })
            .await?;
        if let Some(e) = failed {
            return Err(spill_error(e));
        }
        if overflow {
            return Ok(Pulled::Overflow);
        }
        if spill.spilled() {
            tracing::debug!(rows = spill.len(), dir = %self.spill_dir.display(), "window's rows kept in a temporary file until committed");
        }
        spill.finish().map(Pulled::Rows).map_err(spill_error)
    }

    /// Start pulling `w` in the background.
    pub fn prefetch(self, w: Window) -> Prefetch {
        Prefetch {
            window: w,
            task: Some(tokio::spawn(self.pull(w))),
        }
    }
}

/// A window being pulled in the background. Dropped unused (the cycle's plan changed), its pull
/// is cancelled.
pub(super) struct Prefetch {
    pub window: Window,
    task: Option<tokio::task::JoinHandle<Result<Pulled, SourceError>>>,
}

impl Prefetch {
    /// Its outcome (an error if the task did not finish).
    pub async fn join(mut self, p: &Puller) -> Result<Pulled, SourceError> {
        let Some(task) = self.task.take() else {
            return Err(internal(p, "the window's pull was already taken".into()));
        };
        task.await
            .map_err(|e| internal(p, format!("the window's pull did not finish: {e}")))?
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn internal(p: &Puller, detail: String) -> SourceError {
    SourceError::Internal {
        source_name: p.client.meta.name.clone(),
        endpoint: p.endpoint.clone(),
        detail,
    }
}
