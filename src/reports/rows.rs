//! Typed report rows. Every vendor field is a string; counts and durations become numbers where they
//! parse and null when empty; a non-empty value that does not parse makes the row uncoercible (it
//! goes to the dead-letter topic with its raw JSON). Field names stay recognisable.
//!
//! Adding a `reports_manager.php` report = a row type here, a [`ReportKind`] variant, a schema.

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::sources::wolkvox::row_text as text;
use crate::vendor_time::{parse_duration_ms, vendor_local_to_utc};

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

    /// The row identity: conn_id for chat_1, session_id + conn_id for diagram_9.
    pub fn identity(self, row: &Map<String, Value>) -> Option<String> {
        let id = match self {
            ReportKind::Chat1 => text(row, "conn_id")?,
            ReportKind::Diagram9 => {
                format!("{}/{}", text(row, "session_id")?, text(row, "conn_id")?)
            }
        };
        Some(id)
    }

    pub fn coerce(self, row: &Map<String, Value>, tz: Tz) -> Result<ReportRow, String> {
        Ok(match self {
            ReportKind::Chat1 => ReportRow::Chat1(Chat1Row::coerce(row, tz)?),
            ReportKind::Diagram9 => ReportRow::Diagram9(Diagram9Row::coerce(row, tz)?),
        })
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

fn count(row: &Map<String, Value>, key: &str) -> Result<Option<i64>, String> {
    match text(row, key) {
        None => Ok(None),
        Some(t) => t
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("`{key}`: `{t}` is not a whole number")),
    }
}

fn seconds(row: &Map<String, Value>, key: &str) -> Result<Option<i64>, String> {
    match text(row, key) {
        None => Ok(None),
        Some(t) => parse_duration_ms(&t)
            .map(|ms| Some(ms / 1000))
            .ok_or_else(|| format!("`{key}`: `{t}` is not a duration")),
    }
}

fn date(
    row: &Map<String, Value>,
    key: &str,
    tz: Tz,
) -> Result<(Option<i64>, Option<String>), String> {
    match text(row, key) {
        None => Ok((None, None)),
        Some(t) => vendor_local_to_utc(&t, tz)
            .map(|ms| (Some(ms), Some(t.clone())))
            .ok_or_else(|| format!("`{key}`: `{t}` is not a date")),
    }
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

impl Chat1Row {
    fn coerce(row: &Map<String, Value>, tz: Tz) -> Result<Self, String> {
        let (date, date_raw) = date(row, "date", tz)?;
        let answers = if row.contains_key("agent_anwers ") {
            count(row, "agent_anwers ")?
        } else {
            count(row, "agent_anwers")?
        };
        Ok(Chat1Row {
            conn_id: text(row, "conn_id").ok_or("`conn_id` is empty")?,
            channel: text(row, "channel"),
            date,
            date_raw,
            customer_name: text(row, "customer_name"),
            customer_email: text(row, "customer_email"),
            customer_phone: text(row, "customer_phone"),
            customer_chars: count(row, "customer_chars")?,
            agent_id: text(row, "agent_id"),
            agent_name: text(row, "agent_name"),
            agent_chars: count(row, "agent_chars")?,
            time_on_agent_s: seconds(row, "time_on_agent")?,
            chat_duration_s: seconds(row, "chat_duration")?,
            cod_act: text(row, "cod_act"),
            description_cod_act: text(row, "description_cod_act"),
            comments: text(row, "comments"),
            customer_id: text(row, "customer_id"),
            skill_id: text(row, "skill_id"),
            asa_s: seconds(row, "ASA")?,
            last_participant_who_spoke: text(row, "last_participant_who_spoke"),
            extra_field: text(row, "extra_field"),
            comment: text(row, "comment"),
            user_id: text(row, "user_id"),
            feeling: text(row, "feeling"),
            agent_answers: answers,
        })
    }
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

impl Diagram9Row {
    fn coerce(row: &Map<String, Value>, tz: Tz) -> Result<Self, String> {
        let (date, date_raw) = date(row, "date", tz)?;
        Ok(Diagram9Row {
            session_id: text(row, "session_id").ok_or("`session_id` is empty")?,
            channel: text(row, "channel"),
            rp_id: text(row, "rp_id"),
            date,
            date_raw,
            customer_name: text(row, "customer_name"),
            customer_email: text(row, "customer_email"),
            customer_phone: text(row, "customer_phone"),
            customer_query: text(row, "customer_query"),
            routing_answer: text(row, "routing_answer"),
            customer_id: text(row, "customer_id"),
            conn_id: text(row, "conn_id").ok_or("`conn_id` is empty")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: serde_json::Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn bogota() -> Tz {
        "America/Bogota".parse().unwrap()
    }

    #[test]
    fn chat_1_seed_row_coerces_every_field() {
        let row = map(serde_json::json!({
            "conn_id": "c-1", "channel": "whatsapp", "date": "2026-11-21 10:15:00", "customer_name": "Ana",
            "customer_email": "ana@example.com", "customer_phone": "573001112233", "customer_chars": "120",
            "agent_id": "1001", "agent_name": "Luis", "agent_chars": "340", "time_on_agent": "00:05:10",
            "chat_duration": "420", "cod_act": "7", "description_cod_act": "Sale", "comments": "test",
            "customer_id": "99", "skill_id": "3", "ASA": "15", "last_participant_who_spoke": "agent",
            "extra_field": "", "comment": "", "user_id": "u1", "feeling": "positive", "agent_anwers ": "12"
        }));
        let ReportRow::Chat1(r) = ReportKind::Chat1.coerce(&row, bogota()).unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.conn_id.as_str(), r.channel.as_deref()),
            ("c-1", Some("whatsapp"))
        );
        assert_eq!(
            (r.date, r.date_raw.as_deref()),
            (Some(1_795_274_100_000), Some("2026-11-21 10:15:00"))
        );
        assert_eq!(
            (r.customer_chars, r.agent_chars, r.agent_answers),
            (Some(120), Some(340), Some(12))
        );
        assert_eq!(
            (r.time_on_agent_s, r.chat_duration_s, r.asa_s),
            (Some(310), Some(420), Some(15))
        );
        assert_eq!(
            (r.extra_field, r.comment, r.comments.as_deref()),
            (None, None, Some("test"))
        );
        assert_eq!(ReportKind::Chat1.identity(&row).as_deref(), Some("c-1"));
    }

    #[test]
    fn empty_is_null_and_garbage_is_an_error_naming_the_field() {
        let ok = map(
            serde_json::json!({"conn_id": "c", "customer_chars": "", "date": "", "agent_anwers ": ""}),
        );
        let ReportRow::Chat1(r) = ReportKind::Chat1.coerce(&ok, bogota()).unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.customer_chars, r.date, r.agent_answers),
            (None, None, None)
        );
        let bad = map(serde_json::json!({"conn_id": "c", "customer_chars": "many"}));
        assert!(ReportKind::Chat1
            .coerce(&bad, bogota())
            .unwrap_err()
            .contains("customer_chars"));
        let bad_date = map(serde_json::json!({"conn_id": "c", "date": "yesterday"}));
        assert!(ReportKind::Chat1
            .coerce(&bad_date, bogota())
            .unwrap_err()
            .contains("date"));
        let no_id = map(serde_json::json!({"conn_id": ""}));
        assert!(ReportKind::Chat1
            .coerce(&no_id, bogota())
            .unwrap_err()
            .contains("conn_id"));
        assert_eq!(ReportKind::Chat1.identity(&no_id), None);
    }

    #[test]
    fn diagram_9_identity_is_session_and_conn() {
        let row = map(
            serde_json::json!({"session_id": "s1", "channel": "web", "rp_id": "4", "date": "2026-11-21 10:15:00",
            "customer_name": "", "customer_email": "", "customer_phone": "", "customer_query": "saldo", "routing_answer": "skill 3",
            "customer_id": "", "conn_id": "c9"}),
        );
        assert_eq!(
            ReportKind::Diagram9.identity(&row).as_deref(),
            Some("s1/c9")
        );
        let ReportRow::Diagram9(r) = ReportKind::Diagram9.coerce(&row, bogota()).unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.customer_query.as_deref(), r.customer_name, r.date),
            (Some("saldo"), None, Some(1_795_274_100_000))
        );
        assert_eq!(ReportKind::Diagram9.default_row_limit(), 6_000);
        assert_eq!(ReportKind::parse("diagram_9"), Some(ReportKind::Diagram9));
    }
}
