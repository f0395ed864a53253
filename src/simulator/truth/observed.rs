//! What ccdc delivered, decoded for scoring against a [`TruthWorld`].

use std::collections::{HashMap, HashSet};

use super::TruthWorld;
use crate::config::TopicsConfig;
use crate::event::reconciled::InteractionReconciled;
use crate::event::{AgentStatusEvent, InteractionEvent};
use crate::sink::OutRecord;

/// The records ccdc delivered, decoded (JSON payloads: `Parts::registry = None`), one per event id.
#[derive(Debug, Default)]
pub struct Observed {
    /// `interaction-started` / `interaction-ended`, `agent-status-changed`,
    /// `interaction-reconciled`, in delivery order.
    pub interactions: Vec<InteractionEvent>,
    pub statuses: Vec<AgentStatusEvent>,
    pub reconciled: Vec<InteractionReconciled>,
    /// Event ids delivered again with other content.
    pub conflicting_ids: Vec<String>,
    /// Records of these topics that did not decode.
    pub undecodable: usize,
}

impl Observed {
    /// Decode `records` by topic; a repeated id with the same content counts once.
    pub fn from_records(records: &[OutRecord], topics: &TopicsConfig) -> Observed {
        let mut o = Observed::default();
        let mut seen: HashMap<&str, &[u8]> = HashMap::new();
        for r in records {
            let id = r
                .header("ce_id")
                .or_else(|| r.header("ccdc.event_id"))
                .unwrap_or("");
            if let Some(before) = seen.insert(id, &r.payload) {
                if before != r.payload.as_slice() {
                    o.conflicting_ids.push(id.to_string());
                }
                continue;
            }
            let ok = if r.topic == topics.interactions {
                serde_json::from_slice(&r.payload).map(|e| o.interactions.push(e))
            } else if r.topic == topics.agent_status {
                serde_json::from_slice(&r.payload).map(|e| o.statuses.push(e))
            } else if r.topic == topics.interactions_reconciled {
                serde_json::from_slice(&r.payload).map(|e| o.reconciled.push(e))
            } else {
                Ok(())
            };
            o.undecodable += usize::from(ok.is_err());
        }
        o
    }

    /// Conn ids with an `in_report = true` record.
    pub(super) fn in_report(&self) -> HashSet<&str> {
        let r = self.reconciled.iter().filter(|r| r.in_report);
        r.map(|r| r.interaction_id.as_str()).collect()
    }
}

/// Truth chats (started inside the first report window's reach) without an `in_report` record:
/// what a run still waits for.
pub fn unreconciled(world: &TruthWorld, observed: &Observed) -> usize {
    let done = observed.in_report();
    world
        .truth()
        .chats
        .iter()
        .filter(|c| !done.contains(c.conn_id.as_str()))
        .count()
}
