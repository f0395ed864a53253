//! Comm100's metrics endpoints (`Queue`, `Today`, `RightNow`, seed 004): every poll publishes
//! what it read, one record per poll (per department for `Queue`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::wire::{QueueRow, RightNowRow, TodayRow};
use super::{Comm100Client, VENDOR};
use crate::event::{id, Event, MetricsRecord, MetricsValues};
use crate::sources::bound::Rows;
use crate::sources::{FeedName, SnapshotSource, SourceError};

/// Which metrics endpoint a [`Comm100Metrics`] feed polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsEndpoint {
    Queue,
    Today,
    RightNow,
}

impl MetricsEndpoint {
    pub fn path(self) -> &'static str {
        match self {
            MetricsEndpoint::Queue => "livechat/realTime/Queue",
            MetricsEndpoint::Today => "livechat/realTime/Today",
            MetricsEndpoint::RightNow => "livechat/realTime/RightNow",
        }
    }
    fn stream(self) -> &'static str {
        match self {
            MetricsEndpoint::Queue => "queue",
            MetricsEndpoint::Today => "today",
            MetricsEndpoint::RightNow => "right-now",
        }
    }
}

/// The last metrics records of one endpoint (the state of a metrics feed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MetricsSnapshot {
    pub observed_at: i64,
    pub records: Vec<MetricsRecord>,
}

/// One metrics endpoint of one Comm100 site: every poll publishes what it read.
pub struct Comm100Metrics {
    pub client: Arc<Comm100Client>,
    pub endpoint: MetricsEndpoint,
}

#[async_trait]
impl SnapshotSource for Comm100Metrics {
    type Snapshot = MetricsSnapshot;
    fn name(&self) -> FeedName<'_> {
        FeedName {
            meta: &self.client.meta,
            endpoint: self.endpoint.path(),
            stream: self.endpoint.stream(),
        }
    }
    async fn fetch(
        &self,
        observed_at: i64,
        _previous: Option<&MetricsSnapshot>,
    ) -> Result<MetricsSnapshot, SourceError> {
        let c = &self.client;
        let path = self.endpoint.path();
        let url = c.url(path);
        // Each record with what tells it apart within the poll (its id's basis): the department,
        // and for `Queue`, whose rows are per department and routed agent, the agent and the
        // row's rank among rows alike.
        let values: Vec<(Option<String>, String, MetricsValues)> = match self.endpoint {
            MetricsEndpoint::Queue => {
                let tally = c.queue_limits.0.tally();
                let ((rows, _), _): ((Rows<QueueRow>, _), _) =
                    c.get_bounded(path, url, vec![], tally).await?;
                let mut seen: std::collections::HashMap<String, usize> = Default::default();
                super::unreadable_values(
                    &c.meta.name,
                    path,
                    "queue_counters",
                    rows.0.iter().map(QueueRow::unreadable).sum(),
                    "queue counters that are not integers are published as null",
                );
                rows.0
                    .into_iter()
                    .map(|r| {
                        let department = r.route_to_department_id.clone();
                        let agent = r.route_to_agent_id.as_deref();
                        let basis = queue_row_basis(&mut seen, department.as_deref(), agent);
                        (department, basis, MetricsValues::Comm100Queue(r.into()))
                    })
                    .collect()
            }
            MetricsEndpoint::Today => {
                // The day of the poll the record is stamped with (not of "now", which may be
                // the next day by the time this runs).
                let observed = chrono::DateTime::from_timestamp_millis(observed_at)
                    .unwrap_or_else(chrono::Utc::now);
                let midnight = observed
                    .with_timezone(&c.tz)
                    .format("%Y-%m-%dT00:00:00")
                    .to_string();
                let t: TodayRow = c.get(path, url, vec![("startTime", midnight)]).await?;
                vec![(None, String::new(), MetricsValues::Comm100Today(t.into()))]
            }
            MetricsEndpoint::RightNow => {
                let r: RightNowRow = c.get(path, url, vec![]).await?;
                vec![(
                    None,
                    String::new(),
                    MetricsValues::Comm100RightNow(r.into()),
                )]
            }
        };
        let records = values
            .into_iter()
            .map(|(department_id, basis, values)| MetricsRecord {
                event_id: id::metrics(&c.meta.name, path, &basis, observed_at).to_string(),
                source: c.meta.name.clone(),
                vendor: VENDOR.into(),
                observed_at,
                department_id,
                values,
            })
            .collect();
        Ok(MetricsSnapshot {
            observed_at,
            records,
        })
    }
    fn poll_timeout(&self) -> Option<Duration> {
        let c = &self.client;
        Some(
            match self.endpoint {
                MetricsEndpoint::Queue => c.queue_limits,
                MetricsEndpoint::Today => c.today_limits,
                MetricsEndpoint::RightNow => c.right_now_limits,
            }
            .1,
        )
    }
    fn diff(&self, _previous: Option<&MetricsSnapshot>, current: &MetricsSnapshot) -> Vec<Event> {
        current
            .records
            .iter()
            .cloned()
            .map(Event::Metrics)
            .collect()
    }
    fn size(&self, s: &MetricsSnapshot) -> usize {
        s.records.len()
    }
}

/// What tells a `Queue` row apart from the poll's others, for its event id: its department and
/// routed agent, and its rank among the rows before it with both the same (`seen` counts them).
fn queue_row_basis(
    seen: &mut std::collections::HashMap<String, usize>,
    department: Option<&str>,
    agent: Option<&str>,
) -> String {
    let mut basis = department.unwrap_or_default().to_string();
    if let Some(agent) = agent {
        basis.push_str("/agent:");
        basis.push_str(agent);
    }
    let n = seen.entry(basis.clone()).or_default();
    if *n > 0 {
        basis.push_str(&format!("#{n}"));
    }
    *n += 1;
    basis
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_rows_of_one_department_get_ids_of_their_own() {
        let mut seen = Default::default();
        let bases: Vec<String> = [
            (Some("d1"), None),
            (Some("d1"), Some("a1")),
            (Some("d1"), Some("a2")),
            (None, Some("a1")),
            (None, Some("a1")),
            (Some("d1"), None),
        ]
        .into_iter()
        .map(|(d, a)| queue_row_basis(&mut seen, d, a))
        .collect();
        let distinct: std::collections::HashSet<&String> = bases.iter().collect();
        assert_eq!(distinct.len(), bases.len(), "{bases:?}");
        // A department's single row keeps the basis of before (its id as it was).
        assert_eq!(bases[0], "d1");
    }
}
