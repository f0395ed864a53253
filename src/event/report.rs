//! Report rows as ccdc publishes them (Wolkvox `reports_manager.php`): typed, with field names kept
//! recognisable. How the vendor's all-string rows become these is in
//! [`crate::sources::wolkvox::report_rows`].
//!
//! Adding a report = a row type and a [`ReportKind`] variant here, a decoder there, a schema in
//! `schemas/`.

use serde::{Deserialize, Serialize};

/// The reports ccdc knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReportKind {
    #[serde(rename = "chat_1")]
    Chat1,
    #[serde(rename = "diagram_9")]
    Diagram9,
}

impl ReportKind {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "chat_1" => Some(ReportKind::Chat1),
            "diagram_9" => Some(ReportKind::Diagram9),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ReportKind::Chat1 => "chat_1",
            ReportKind::Diagram9 => "diagram_9",
        }
    }

    /// Rows at which a response is assumed truncated: the vendor's 60,000 per call; diagram_9's
    /// page says to narrow the range above 6,000.
    pub fn default_row_limit(self) -> u64 {
        match self {
            ReportKind::Chat1 => 60_000,
            ReportKind::Diagram9 => 6_000,
        }
    }
}

// Rows only travel inside an already boxed `ReportRecord`; boxing the variant again buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "report")]
pub enum ReportRow {
    #[serde(rename = "chat_1")]
    Chat1(Chat1Row),
    #[serde(rename = "diagram_9")]
    Diagram9(Diagram9Row),
}

/// `chat_1` (seed 001).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chat1Row {
    pub conn_id: String,
    pub channel: Option<String>,
    pub date: Option<i64>,
    pub date_raw: Option<String>,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    pub customer_phone: Option<String>,
    pub customer_chars: Option<i64>,
    pub agent_id: Option<String>,
    pub agent_name: Option<String>,
    pub agent_chars: Option<i64>,
    pub time_on_agent_s: Option<i64>,
    pub chat_duration_s: Option<i64>,
    pub cod_act: Option<String>,
    pub description_cod_act: Option<String>,
    pub comments: Option<String>,
    pub customer_id: Option<String>,
    pub skill_id: Option<String>,
    /// `ASA`, seconds.
    pub asa_s: Option<i64>,
    pub last_participant_who_spoke: Option<String>,
    pub extra_field: Option<String>,
    pub comment: Option<String>,
    pub user_id: Option<String>,
    pub feeling: Option<String>,
    /// The vendor's `"agent_anwers "` (sic, with a trailing space).
    pub agent_answers: Option<i64>,
}

/// `diagram_9` (seed 002).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagram9Row {
    pub session_id: String,
    pub channel: Option<String>,
    pub rp_id: Option<String>,
    pub date: Option<i64>,
    pub date_raw: Option<String>,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    pub customer_phone: Option<String>,
    pub customer_query: Option<String>,
    pub routing_answer: Option<String>,
    pub customer_id: Option<String>,
    pub conn_id: String,
}
