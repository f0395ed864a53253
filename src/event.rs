//! The events ccdc publishes. Each maps 1:1 onto an Avro schema under `schemas/` (same field names,
//! same order) and is written through apache-avro's serde path.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Namespace of ccdc's UUIDv5 event ids. Never change it: ids must stay stable across versions.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_3c2e_9b7d_4e58_a1c0_5d2f_8e4b_7c91);

/// Stable id of a state transition: the same transition always yields the same id, so a consumer can
/// drop duplicates after a crash. `parts` must identify the transition completely.
pub fn event_id(parts: &[&str]) -> Uuid {
    Uuid::new_v5(&EVENT_ID_NAMESPACE, parts.join("\u{1f}").as_bytes())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InteractionEventType {
    Started,
    Ended,
}

impl InteractionEventType {
    /// The name used in the `ccdc.event_type` header and in docs.
    pub fn as_str(self) -> &'static str {
        match self {
            InteractionEventType::Started => "interaction-started",
            InteractionEventType::Ended => "interaction-ended",
        }
    }
}

/// `interaction-started` / `interaction-ended`, as in `schemas/interaction-event.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InteractionEvent {
    pub event_id: String,
    pub event_type: InteractionEventType,
    pub source: String,
    pub vendor: String,
    pub agent_id: String,
    pub interaction_id: String,
    /// Derived from the first snapshot of the source (the interaction was already active).
    pub initial: bool,
    /// The interaction moved between agents in this observation window.
    pub transfer: bool,
    /// For a transfer: the other agent (the new one on `ENDED`, the previous one on `STARTED`).
    pub transfer_agent_id: Option<String>,
    /// When the poll that saw the change was made (UTC ms).
    pub observed_at: i64,
    /// When the poll before it was made; the transition happened between the two. Null on initial.
    pub previous_observed_at: Option<i64>,
    /// The vendor's own date of the interaction converted to UTC ms (null when absent or unparsable).
    pub vendor_timestamp: Option<i64>,
    /// The vendor's date exactly as sent.
    pub vendor_timestamp_raw: Option<String>,
    pub subject: Option<String>,
    pub from_name: Option<String>,
}

/// Everything that goes through the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Interaction(InteractionEvent),
}

/// The stream (and therefore topic and schema) an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Interactions,
}

impl Event {
    pub fn stream(&self) -> Stream {
        match self {
            Event::Interaction(_) => Stream::Interactions,
        }
    }

    pub fn event_id(&self) -> &str {
        match self {
            Event::Interaction(e) => &e.event_id,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Event::Interaction(e) => e.event_type.as_str(),
        }
    }

    /// Kafka key: all events of one interaction share a key (hence a partition and an order).
    pub fn key(&self) -> String {
        match self {
            Event::Interaction(e) => format!("{}/{}", e.source, e.interaction_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_stable_and_distinct() {
        let a = event_id(&["s", "STARTED", "1", "c1", "initial"]);
        assert_eq!(a, event_id(&["s", "STARTED", "1", "c1", "initial"]));
        assert_ne!(a, event_id(&["s", "ENDED", "1", "c1", "initial"]));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(event_id(&["ab", "c"]), event_id(&["a", "bc"]));
        assert_eq!(a.get_version_num(), 5);
    }
}
