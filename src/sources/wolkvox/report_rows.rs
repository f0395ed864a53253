//! Wolkvox report rows as the vendor sends them → the typed rows ccdc publishes
//! ([`crate::event::report`]). Every vendor field is a string; counts and durations become numbers
//! where they parse and null when empty; a non-empty value that does not parse makes the row
//! uncoercible (it goes to the dead-letter topic with its raw JSON).

use chrono_tz::Tz;
use serde::Deserialize;

use super::flat;
use super::Field;
use crate::event::report::{Chat1Row, Diagram9Row, ReportKind, ReportRow};
use crate::vendor_time::{parse_duration_ms, vendor_local_to_utc};

/// Why a row cannot be typed (it goes to the dead-letter topic with this text and its raw JSON).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RowError(pub String);

impl From<&str> for RowError {
    fn from(s: &str) -> Self {
        RowError(s.to_string())
    }
}

impl From<String> for RowError {
    fn from(s: String) -> Self {
        RowError(s)
    }
}

/// One vendor row, decoded: its identity, a hash of its content, and the typed row (or why it
/// cannot be typed: it then goes to the dead-letter topic with its raw JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRow {
    /// conn_id for chat_1, `session_id/conn_id` for diagram_9 (its conn_id may be empty: a
    /// session that reached no call); `None` when empty or unreadable.
    pub identity: Option<String>,
    /// A hash of every field the row's schema knows (32 hex digits): the same content gives the
    /// same hash whatever the key order or spacing of the vendor's JSON.
    pub hash: String,
    pub row: Result<ReportRow, RowError>,
}

/// Decode one row of `kind` from its JSON text. Field values are borrowed from `raw` (no copy per
/// field until the typed row is built); a row that is not an object of the expected shape is an
/// `Err` row, never a panic.
pub fn decode(kind: ReportKind, raw: &str, tz: Tz) -> DecodedRow {
    let unreadable = |e: serde_json::Error| DecodedRow {
        identity: None,
        hash: hash(&[raw]),
        row: Err(RowError(format!("not a {} row: {e}", kind.name()))),
    };
    if !(raw.starts_with('{') || raw.trim_start().starts_with('{')) {
        // serde would read a JSON list positionally into the fields.
        return unreadable(serde::de::Error::custom("expected a JSON object"));
    }
    match kind {
        ReportKind::Chat1 => match Chat1Raw::read(raw) {
            Ok(r) => DecodedRow {
                identity: r.conn_id.text(),
                hash: hash(&r.parts()),
                row: coerce_chat1(&r, tz).map(ReportRow::Chat1),
            },
            Err(e) => unreadable(e),
        },
        ReportKind::Diagram9 => match Diagram9Raw::read(raw) {
            Ok(r) => DecodedRow {
                // A chatbot session that reached no call has no conn_id: `session_id/`.
                identity: r
                    .session_id
                    .as_str()
                    .map(|s| format!("{s}/{}", r.conn_id.as_str().unwrap_or_default())),
                hash: hash(&r.parts()),
                row: coerce_diagram9(&r, tz).map(ReportRow::Diagram9),
            },
            Err(e) => unreadable(e),
        },
    }
}

/// XXH3-128 of the parts, each followed by a separator byte, as 32 hex digits. Not a security hash:
/// it detects changed rows; a collision would only hide one change of one row. (SHA-1 over the
/// whole row cost about a third of the row decoding time.)
fn hash(parts: &[&str]) -> String {
    thread_local! {
        // One buffer per thread, reused: a row's parts are about half a kilobyte.
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let digest = BUF.with_borrow_mut(|buf| {
        buf.clear();
        for p in parts {
            buf.extend_from_slice(p.as_bytes());
            buf.push(0x1f);
        }
        xxhash_rust::xxh3::xxh3_128(buf)
    });
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, d) in out.iter_mut().enumerate() {
        *d = HEX[((digest >> ((31 - i) * 4)) & 0xf) as usize];
    }
    String::from_utf8(out.to_vec()).expect("hex digits are ASCII")
}

fn count(f: &Field, key: &str) -> Result<Option<i64>, RowError> {
    match f.as_str() {
        None => Ok(None),
        Some(t) => t
            .parse::<i64>()
            .map(Some)
            .map_err(|_| RowError(format!("`{key}`: `{t}` is not a whole number"))),
    }
}

fn seconds(f: &Field, key: &str) -> Result<Option<i64>, RowError> {
    match f.as_str() {
        None => Ok(None),
        Some(t) => parse_duration_ms(t)
            .map(|ms| Some(ms / 1000))
            .ok_or_else(|| RowError(format!("`{key}`: `{t}` is not a duration"))),
    }
}

fn date(f: &Field, key: &str, tz: Tz) -> Result<(Option<i64>, Option<String>), RowError> {
    match f.as_str() {
        None => Ok((None, None)),
        Some(t) => vendor_local_to_utc(t, tz)
            .map(|ms| (Some(ms), Some(t.to_string())))
            .ok_or_else(|| RowError(format!("`{key}`: `{t}` is not a date"))),
    }
}

/// The presence marker of a field in [`Chat1Raw::parts`] / [`Diagram9Raw::parts`].
const ABSENT: &str = "\u{0}";

macro_rules! raw_row {
    (@count) => { 0 };
    (@count $head:ident $($tail:ident)*) => { 1 + raw_row!(@count $($tail)*) };
    (@name $field:ident) => { stringify!($field) };
    (@name $field:ident $json:literal) => { $json };
    ($(#[$doc:meta])* $name:ident { $($field:ident $(= $json:literal)?),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Default, PartialEq, Deserialize)]
        struct $name<'a> {
            $(
                #[serde(borrow, default $(, rename = $json)?)]
                $field: Field<'a>,
            )*
        }
        impl<'a> $name<'a> {
            /// Every field in a fixed order, for the content hash.
            fn parts(&self) -> [&str; raw_row!(@count $($field)*)] {
                [$(self.$field.as_str().unwrap_or(ABSENT)),*]
            }

            /// The row in `raw`: by [`flat::scan`] when it has the usual shape, else by
            /// `serde_json` (same result; its error for a row that is not one).
            fn read(raw: &'a str) -> Result<Self, serde_json::Error> {
                /// Which fields were read.
                #[derive(Default)]
                struct Seen {
                    $($field: bool,)*
                }
                let mut row = Self::default();
                let mut seen = Seen::default();
                let whole = flat::scan(raw, |key, value| {
                    match key {
                        $(
                            raw_row!(@name $field $($json)?) => {
                                // serde_json refuses a repeated field: let it say so.
                                if std::mem::replace(&mut seen.$field, true) {
                                    return false;
                                }
                                row.$field = Field::plain(value);
                            }
                        )*
                        _ => {}
                    }
                    true
                });
                if whole {
                    Ok(row)
                } else {
                    serde_json::from_str(raw)
                }
            }
        }
    };
}

raw_row!(
    /// A `chat_1` row as the vendor sends it (unknown fields are ignored).
    Chat1Raw {
        conn_id, channel, date, customer_name, customer_email, customer_phone, customer_chars,
        agent_id, agent_name, agent_chars, time_on_agent, chat_duration, cod_act,
        description_cod_act, comments, customer_id, skill_id, asa = "ASA",
        last_participant_who_spoke, extra_field, comment, user_id, feeling,
        agent_answers_sic = "agent_anwers ", agent_answers_trimmed = "agent_anwers",
    }
);

raw_row!(
    /// A `diagram_9` row as the vendor sends it.
    Diagram9Raw {
        session_id, channel, rp_id, date, customer_name, customer_email, customer_phone,
        customer_query, routing_answer, customer_id, conn_id,
    }
);

fn coerce_chat1(r: &Chat1Raw, tz: Tz) -> Result<Chat1Row, RowError> {
    let (date, date_raw) = date(&r.date, "date", tz)?;
    let answers = match r.agent_answers_sic.as_str() {
        Some(_) => count(&r.agent_answers_sic, "agent_anwers ")?,
        None => count(&r.agent_answers_trimmed, "agent_anwers")?,
    };
    Ok(Chat1Row {
        conn_id: r
            .conn_id
            .text()
            .ok_or(RowError::from("`conn_id` is empty"))?,
        channel: r.channel.text(),
        date,
        date_raw,
        customer_name: r.customer_name.text(),
        customer_email: r.customer_email.text(),
        customer_phone: r.customer_phone.text(),
        customer_chars: count(&r.customer_chars, "customer_chars")?,
        agent_id: r.agent_id.text(),
        agent_name: r.agent_name.text(),
        agent_chars: count(&r.agent_chars, "agent_chars")?,
        time_on_agent_s: seconds(&r.time_on_agent, "time_on_agent")?,
        chat_duration_s: seconds(&r.chat_duration, "chat_duration")?,
        cod_act: r.cod_act.text(),
        description_cod_act: r.description_cod_act.text(),
        comments: r.comments.text(),
        customer_id: r.customer_id.text(),
        skill_id: r.skill_id.text(),
        asa_s: seconds(&r.asa, "ASA")?,
        last_participant_who_spoke: r.last_participant_who_spoke.text(),
        extra_field: r.extra_field.text(),
        comment: r.comment.text(),
        user_id: r.user_id.text(),
        feeling: r.feeling.text(),
        agent_answers: answers,
    })
}

fn coerce_diagram9(r: &Diagram9Raw, tz: Tz) -> Result<Diagram9Row, RowError> {
    let (date, date_raw) = date(&r.date, "date", tz)?;
    Ok(Diagram9Row {
        session_id: r
            .session_id
            .text()
            .ok_or(RowError::from("`session_id` is empty"))?,
        channel: r.channel.text(),
        rp_id: r.rp_id.text(),
        date,
        date_raw,
        customer_name: r.customer_name.text(),
        customer_email: r.customer_email.text(),
        customer_phone: r.customer_phone.text(),
        customer_query: r.customer_query.text(),
        routing_answer: r.routing_answer.text(),
        customer_id: r.customer_id.text(),
        conn_id: r.conn_id.text().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests;
