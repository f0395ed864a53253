//! The domain: the events ccdc publishes and the identity of a source. Each event maps 1:1 onto an
//! Avro schema under `schemas/` (same field names, same order) and is written through apache-avro's
//! serde path. Nothing here knows how a vendor's JSON looks: vendors convert into these types
//! ([`crate::sources`]), and the outbox stores them ([`crate::store::outbox`]).
//!
//! - [`agent_state`]: the current state of one agent (the compacted `agent-state` topic);
//! - [`attributes`]: each event's time, subject and CloudEvents type (record metadata);
//! - [`id`]: every event id recipe (UUIDv5), in one place;
//! - [`bound`]: the size bounds on vendor values inside one event;
//! - [`metrics`]: the Comm100 real-time metrics records;
//! - [`report`]: the typed Wolkvox report rows;
//! - [`reconciled`]: report chats set against what polling saw.

pub mod agent_state;
pub mod attributes;
pub mod bound;
pub mod id;
pub mod metrics;
pub mod reconciled;
pub mod report;

use serde::{Deserialize, Serialize};

use agent_state::AgentStateRecord;
pub use id::event_id;
use metrics::{QueueMetrics, RightNowMetrics, TodayMetrics};
use reconciled::InteractionReconciled;
use report::ReportRow;

/// Identity of a source, copied into every event: its configured `name` and its vendor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMeta {
    pub name: String,
    pub vendor: String,
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

/// How an event was derived, so that a consumer can tell an observed change from an inferred one
/// (Avro enum `Derivation`; `UNKNOWN` is the default for records written before it existed and
/// the fallback for readers that do not know a later symbol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Derivation {
    /// The first snapshot of a source (Vonage: the first that observed the agent): the state was
    /// already there when ccdc started watching.
    InitialSnapshot,
    /// Two consecutive complete snapshots differ.
    SnapshotDiff,
    /// The vendor says the interaction ended (Vonage `hasEnded`).
    VendorEndedFlag,
    /// The vendor showed other interactions at the agent instead, then none running: it ended
    /// after the last poll that showed it running and by that one (Vonage).
    ReplacedByNext,
    /// The agent was missing from two consecutive polls of a paged list (Comm100 `Agents`).
    ConfirmedAbsent,
    /// From a vendor report row (reconciliation).
    Report,
    #[default]
    Unknown,
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
    /// The vendor only shows each agent's latest interaction (Vonage): an interaction that starts and
    /// ends between two polls is never seen, and one seen already ended gets both events at once.
    #[serde(default)]
    pub latest_only: bool,
    /// The vendor's start of the interaction (UTC ms), on every event of it; the same value as
    /// `vendor_timestamp`, which is kept for compatibility. Null when the vendor gives none.
    #[serde(default)]
    pub started_at: Option<i64>,
    /// The vendor's start as sent.
    #[serde(default)]
    pub started_at_raw: Option<String>,
    /// The first poll that saw the interaction at this agent (UTC ms).
    #[serde(default)]
    pub first_observed_at: Option<i64>,
    /// `ENDED` only: the last poll that saw it active. The end lies in `(ended_after, ended_before]`.
    #[serde(default)]
    pub ended_after: Option<i64>,
    /// `ENDED` only: the first poll that saw it ended or gone, or the start of the interaction that
    /// replaced it (Vonage), whichever is earlier.
    #[serde(default)]
    pub ended_before: Option<i64>,
    /// `ENDED` only: the estimated handle time (ms), the middle of `[duration_min_ms,
    /// duration_max_ms]` (the lower bound when no upper bound is known).
    #[serde(default)]
    pub duration_ms: Option<i64>,
    /// `ENDED` only: the shortest duration consistent with the observations: `ended_after` − the
    /// latest possible start (the vendor's start, else the first poll that saw it).
    #[serde(default)]
    pub duration_min_ms: Option<i64>,
    /// `ENDED` only: the longest: `ended_before` − the earliest possible start (the vendor's start,
    /// else the poll before the first one that saw it; null when it was there from the first poll).
    #[serde(default)]
    pub duration_max_ms: Option<i64>,
    /// How this event was derived.
    #[serde(default)]
    pub derivation: Derivation,
}

/// Status of an agent that is no longer listed by the vendor (logged out).
pub const ABSENT: &str = "ABSENT";

/// `agent-status-changed`, as in `schemas/agent-status-event.avsc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatusEvent {
    pub event_id: String,
    pub source: String,
    pub vendor: String,
    pub agent_id: String,
    pub agent_name: Option<String>,
    /// The vendor's status (Wolkvox: status text; Comm100: status id), or `ABSENT`.
    pub status: String,
    pub status_name: Option<String>,
    pub previous_status: Option<String>,
    pub previous_status_name: Option<String>,
    /// First observation of this agent (its status was not seen change).
    pub initial: bool,
    pub observed_at: i64,
    pub previous_observed_at: Option<i64>,
    pub wolkvox: Option<WolkvoxAgentDetails>,
    pub comm100: Option<Comm100AgentDetails>,
    /// When the new status began (UTC ms): the estimate, inside `[status_since_after,
    /// status_since_before]`. Wolkvox tells it (`observed_at − time_state_now`, kept inside the
    /// observation window); otherwise it is the middle of the window. Null when unknown (an initial
    /// status of a vendor that does not tell).
    #[serde(default)]
    pub status_since: Option<i64>,
    /// The earliest the new status can have begun (null: unknown).
    #[serde(default)]
    pub status_since_after: Option<i64>,
    /// The latest the new status can have begun.
    #[serde(default)]
    pub status_since_before: Option<i64>,
    /// When the previous status began (its `status_since`), if known.
    #[serde(default)]
    pub previous_status_since: Option<i64>,
    /// How long the previous status lasted (ms): `status_since − previous_status_since`.
    #[serde(default)]
    pub previous_status_duration_ms: Option<i64>,
    /// Its bounds, from the two statuses' bounds.
    #[serde(default)]
    pub previous_status_duration_min_ms: Option<i64>,
    #[serde(default)]
    pub previous_status_duration_max_ms: Option<i64>,
    /// How this event was derived.
    #[serde(default)]
    pub derivation: Derivation,
}

/// Wolkvox `real_time.php?api=agents` counters; durations in seconds, raw text alongside.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WolkvoxAgentDetails {
    pub calls: Option<i64>,
    pub inbound: Option<i64>,
    pub outbound: Option<i64>,
    pub internal: Option<i64>,
    pub time_state_now_s: Option<i64>,
    pub ready_time_s: Option<i64>,
    pub inbound_time_s: Option<i64>,
    pub outbound_time_s: Option<i64>,
    pub acw_time_s: Option<i64>,
    pub ring_time_s: Option<i64>,
    pub login_time_s: Option<i64>,
    pub aht_time_s: Option<i64>,
    pub aux_time_s: Option<i64>,
    pub ocupation: Option<String>,
    /// The vendor's row as sent (every field a string).
    pub raw: String,
}

/// Comm100 `livechat/realTime/Agents` fields.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Comm100AgentDetails {
    pub display_name: Option<String>,
    pub ongoing_chats: Option<i64>,
    pub max_concurrent_chats: Option<i64>,
    pub intraday_chats: Option<i64>,
    pub intraday_linear_chat_time_ms: Option<i64>,
    pub intraday_linear_chat_time_raw: Option<String>,
}

/// One Comm100 real-time metrics record (Queue per department, Today, RightNow).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRecord {
    pub event_id: String,
    pub source: String,
    pub vendor: String,
    pub observed_at: i64,
    /// Queue only: the department the queue routes to.
    pub department_id: Option<String>,
    pub values: MetricsValues,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "endpoint", rename_all = "snake_case")]
pub enum MetricsValues {
    Comm100Queue(QueueMetrics),
    Comm100Today(TodayMetrics),
    Comm100RightNow(RightNowMetrics),
}

/// One report row (Wolkvox `reports_manager.php`), published once per identity and content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRecord {
    /// UUIDv5 of (source, report, identity, row hash): the same row content always has the same id.
    pub event_id: String,
    pub source: String,
    pub vendor: String,
    /// Row identity (chat_1: conn_id; diagram_9: session_id/conn_id): the Kafka key with the source.
    pub identity: String,
    /// Content hash of the raw row: a changed row gets a new hash (and a new event).
    pub row_hash: String,
    /// The pull window, converted to UTC, and as sent (local `YYYYmmddHHiiss`).
    pub window_start: i64,
    pub window_end: i64,
    pub window_start_raw: String,
    pub window_end_raw: String,
    pub pulled_at: i64,
    pub row: ReportRow,
}

/// A report row that could not be coerced, with everything needed to look at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub event_id: String,
    pub source: String,
    pub vendor: String,
    /// The report of the row; for a record the broker refused, the event's type (e.g.
    /// `interaction-ended`).
    pub report: String,
    pub window_start_raw: String,
    pub window_end_raw: String,
    pub error: String,
    /// The row exactly as received (JSON); for a refused record, the event as JSON (cut to
    /// [`bound::MAX_FIELD_BYTES`] with a marker when longer).
    pub raw: String,
    pub failed_at: i64,
    /// A record the broker refused: the topic, key and event id it was sent with.
    #[serde(default)]
    pub original_topic: Option<String>,
    #[serde(default)]
    pub original_key: Option<String>,
    #[serde(default)]
    pub original_event_id: Option<String>,
}

/// "This feed is alive": lets consumers tell "nothing changed" from "ccdc is down".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub event_id: String,
    pub source: String,
    pub vendor: String,
    pub endpoint: String,
    pub observed_at: i64,
    /// Successful polls of this feed since ccdc started.
    pub polls: i64,
    /// Entities in the last observation (interactions, agents, rows, ...).
    pub size: i64,
}

/// Everything that goes through the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Interaction(InteractionEvent),
    AgentStatus(Box<AgentStatusEvent>),
    Metrics(MetricsRecord),
    ReportRow(Box<ReportRecord>),
    DeadLetter(DeadLetter),
    Heartbeat(Heartbeat),
    Reconciled(Box<InteractionReconciled>),
    AgentState(Box<AgentStateRecord>),
}

/// The stream (and therefore topic and schema) an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Interactions,
    AgentStatus,
    Comm100Queue,
    Comm100Today,
    Comm100RightNow,
    WolkvoxChat1,
    WolkvoxDiagram9,
    DeadLetter,
    Heartbeat,
    InteractionsReconciled,
    /// `agent-state`: the current state of every agent (a compacted topic: the last record per key).
    AgentState,
}

impl Event {
    pub fn stream(&self) -> Stream {
        match self {
            Event::Interaction(_) => Stream::Interactions,
            Event::AgentStatus(_) => Stream::AgentStatus,
            Event::Metrics(m) => match m.values {
                MetricsValues::Comm100Queue(_) => Stream::Comm100Queue,
                MetricsValues::Comm100Today(_) => Stream::Comm100Today,
                MetricsValues::Comm100RightNow(_) => Stream::Comm100RightNow,
            },
            Event::ReportRow(r) => match r.row {
                ReportRow::Chat1(_) => Stream::WolkvoxChat1,
                ReportRow::Diagram9(_) => Stream::WolkvoxDiagram9,
            },
            Event::DeadLetter(_) => Stream::DeadLetter,
            Event::Heartbeat(_) => Stream::Heartbeat,
            Event::Reconciled(_) => Stream::InteractionsReconciled,
            Event::AgentState(_) => Stream::AgentState,
        }
    }

    /// When the event was observed (or pulled): the age of an outbox entry is measured from here.
    pub fn time_ms(&self) -> i64 {
        match self {
            Event::Interaction(e) => e.observed_at,
            Event::AgentStatus(e) => e.observed_at,
            Event::Metrics(m) => m.observed_at,
            Event::ReportRow(r) => r.pulled_at,
            Event::DeadLetter(d) => d.failed_at,
            Event::Heartbeat(h) => h.observed_at,
            Event::Reconciled(r) => r.reconciled_at,
            Event::AgentState(a) => a.observed_at,
        }
    }

    /// The configured name of the source the event came from.
    pub fn source(&self) -> &str {
        match self {
            Event::Interaction(e) => &e.source,
            Event::AgentStatus(e) => &e.source,
            Event::Metrics(m) => &m.source,
            Event::ReportRow(r) => &r.source,
            Event::DeadLetter(d) => &d.source,
            Event::Heartbeat(h) => &h.source,
            Event::Reconciled(r) => &r.source,
            Event::AgentState(a) => &a.source,
        }
    }

    pub fn vendor(&self) -> &str {
        match self {
            Event::Interaction(e) => &e.vendor,
            Event::AgentStatus(e) => &e.vendor,
            Event::Metrics(m) => &m.vendor,
            Event::ReportRow(r) => &r.vendor,
            Event::DeadLetter(d) => &d.vendor,
            Event::Heartbeat(h) => &h.vendor,
            Event::Reconciled(r) => &r.vendor,
            Event::AgentState(a) => &a.vendor,
        }
    }

    pub fn event_id(&self) -> &str {
        match self {
            Event::Interaction(e) => &e.event_id,
            Event::AgentStatus(e) => &e.event_id,
            Event::Metrics(m) => &m.event_id,
            Event::ReportRow(r) => &r.event_id,
            Event::DeadLetter(d) => &d.event_id,
            Event::Heartbeat(h) => &h.event_id,
            Event::Reconciled(r) => &r.event_id,
            Event::AgentState(a) => &a.event_id,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Event::Interaction(e) => e.event_type.as_str(),
            Event::AgentStatus(_) => "agent-status-changed",
            Event::Metrics(m) => match m.values {
                MetricsValues::Comm100Queue(_) => "comm100-queue",
                MetricsValues::Comm100Today(_) => "comm100-today",
                MetricsValues::Comm100RightNow(_) => "comm100-right-now",
            },
            Event::ReportRow(r) => match r.row {
                ReportRow::Chat1(_) => "wolkvox-chat_1-row",
                ReportRow::Diagram9(_) => "wolkvox-diagram_9-row",
            },
            Event::DeadLetter(_) => "dead-letter",
            Event::Heartbeat(_) => "heartbeat",
            Event::Reconciled(_) => "interaction-reconciled",
            Event::AgentState(_) => "agent-state",
        }
    }

    /// Kafka key: all events of one interaction (or agent, or report row) share a key, hence a
    /// partition and an order. Metrics are keyed by source (and department for queues), dead letters
    /// by source and report.
    pub fn key(&self) -> String {
        // `source/part`, built directly: one per record, and `format!` costs more than the copy.
        fn join(source: &str, part: &str) -> String {
            let mut key = String::with_capacity(source.len() + 1 + part.len());
            key.push_str(source);
            key.push('/');
            key.push_str(part);
            key
        }
        match self {
            Event::Interaction(e) => join(&e.source, &e.interaction_id),
            Event::AgentStatus(e) => join(&e.source, &e.agent_id),
            Event::Metrics(m) => match &m.department_id {
                Some(d) => join(&m.source, d),
                None => m.source.clone(),
            },
            Event::ReportRow(r) => join(&r.source, &r.identity),
            Event::DeadLetter(d) => join(&d.source, &d.report),
            Event::Heartbeat(h) => join(&h.source, &h.endpoint),
            Event::Reconciled(r) => join(&r.source, &r.interaction_id),
            Event::AgentState(a) => join(&a.source, &a.agent_id),
        }
    }
}

/// A plain `STARTED` interaction event for tests of what carries events around.
#[cfg(test)]
pub(crate) fn started_for_tests(event_id: &str, interaction_id: &str) -> Event {
    Event::Interaction(InteractionEvent {
        event_id: event_id.into(),
        event_type: InteractionEventType::Started,
        source: "s".into(),
        vendor: "wolkvox".into(),
        agent_id: "1001".into(),
        interaction_id: interaction_id.into(),
        initial: false,
        transfer: false,
        transfer_agent_id: None,
        observed_at: 1,
        previous_observed_at: None,
        vendor_timestamp: None,
        vendor_timestamp_raw: None,
        subject: None,
        from_name: None,
        latest_only: false,
        started_at: None,
        started_at_raw: None,
        first_observed_at: Some(1),
        ended_after: None,
        ended_before: None,
        duration_ms: None,
        duration_min_ms: None,
        duration_max_ms: None,
        derivation: Derivation::SnapshotDiff,
    })
}
