//! The outbox's binary encoding (version 2) of the events that pass through it in bulk: report
//! rows, interaction events, dead letters and heartbeats. Other events stay JSON (version 1).
//!
//! After the version byte, one byte names the event (and, for a report row, one more its report),
//! then every field in declaration order:
//! - `String`: its length (LEB128), then its UTF-8 bytes;
//! - `i64`: 8 bytes, little-endian; `bool`: one byte, 0 or 1;
//! - `Option<T>`: one byte, 0 (none) or 1 followed by `T`;
//! - enums without data (`InteractionEventType`, `Derivation`): one byte, their index below.
//!
//! Every struct is written through [`record!`], which destructures it without `..`: a field added
//! to an event fails to compile here until it is given its place (appended, with a new version
//! byte if entries of this one must stay readable).

use crate::event::report::{Chat1Row, Diagram9Row, ReportRow};
use crate::event::{
    DeadLetter, Derivation, Event, Heartbeat, InteractionEvent, InteractionEventType, ReportRecord,
};

/// Why bytes are not an entry of this encoding.
pub type Malformed = String;

/// Bytes being read.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, Malformed> {
        let (&b, rest) = self.bytes.split_first().ok_or("ends early")?;
        self.bytes = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if n > self.bytes.len() {
            return Err(format!("a {n}-byte field runs past the end"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn len(&mut self) -> Result<usize, Malformed> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return usize::try_from(n).map_err(|_| "length too large".into());
            }
        }
        Err("length runs past 64 bits".into())
    }
}

/// A value of the encoding.
pub trait Field: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn get(r: &mut Reader<'_>) -> Result<Self, Malformed>;
}

fn put_len(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

impl Field for String {
    fn put(&self, out: &mut Vec<u8>) {
        put_len(self.len(), out);
        out.extend_from_slice(self.as_bytes());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, Malformed> {
        let n = r.len()?;
        let bytes = r.take(n)?;
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|e| format!("a string is not UTF-8: {e}"))
    }
}

impl Field for i64 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, Malformed> {
        let b = r.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }
}

impl Field for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, Malformed> {
        match r.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(format!("{b} is not a boolean")),
        }
    }
}

impl<T: Field> Field for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.put(out);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, Malformed> {
        match r.byte()? {
            0 => Ok(None),
            1 => T::get(r).map(Some),
            b => Err(format!("{b} is not an option tag")),
        }
    }
}

/// Enums without data, one byte each: `index => Variant` (the indexes never change).
macro_rules! symbols {
    ($ty:ident { $($i:literal => $v:ident),* $(,)? }) => {
        impl Field for $ty {
            fn put(&self, out: &mut Vec<u8>) {
                out.push(match self { $($ty::$v => $i),* });
            }
            fn get(r: &mut Reader<'_>) -> Result<Self, Malformed> {
                match r.byte()? {
                    $($i => Ok($ty::$v),)*
                    b => Err(format!("{b} is not a {}", stringify!($ty))),
                }
            }
        }
    };
}

symbols!(InteractionEventType { 0 => Started, 1 => Ended });
symbols!(Derivation {
    0 => InitialSnapshot,
    1 => SnapshotDiff,
    2 => VendorEndedFlag,
    3 => ReplacedByNext,
    4 => ConfirmedAbsent,
    5 => Report,
    6 => Unknown,
});

/// Structs: every field, in this order (the destructuring has no `..`: see the module's doc).
macro_rules! record {
    ($ty:ident { $($f:ident),* $(,)? }) => {
        impl Field for $ty {
            fn put(&self, out: &mut Vec<u8>) {
                let $ty { $($f),* } = self;
                $($f.put(out);)*
            }
            fn get(r: &mut Reader<'_>) -> Result<Self, Malformed> {
                Ok($ty { $($f: Field::get(r)?),* })
            }
        }
    };
}

record!(InteractionEvent {
    event_id,
    event_type,
    source,
    vendor,
    agent_id,
    interaction_id,
    initial,
    transfer,
    transfer_agent_id,
    observed_at,
    previous_observed_at,
    vendor_timestamp,
    vendor_timestamp_raw,
    subject,
    from_name,
    latest_only,
    started_at,
    started_at_raw,
    first_observed_at,
    ended_after,
    ended_before,
    duration_ms,
    duration_min_ms,
    duration_max_ms,
    derivation,
});
record!(Chat1Row {
    conn_id,
    channel,
    date,
    date_raw,
    customer_name,
    customer_email,
    customer_phone,
    customer_chars,
    agent_id,
    agent_name,
    agent_chars,
    time_on_agent_s,
    chat_duration_s,
    cod_act,
    description_cod_act,
    comments,
    customer_id,
    skill_id,
    asa_s,
    last_participant_who_spoke,
    extra_field,
    comment,
    user_id,
    feeling,
    agent_answers,
});
record!(Diagram9Row {
    session_id,
    channel,
    rp_id,
    date,
    date_raw,
    customer_name,
    customer_email,
    customer_phone,
    customer_query,
    routing_answer,
    customer_id,
    conn_id,
});
record!(ReportRecord {
    event_id,
    source,
    vendor,
    identity,
    row_hash,
    window_start,
    window_end,
    window_start_raw,
    window_end_raw,
    pulled_at,
    row,
});
record!(DeadLetter {
    event_id,
    source,
    vendor,
    report,
    window_start_raw,
    window_end_raw,
    error,
    raw,
    failed_at,
    original_topic,
    original_key,
    original_event_id,
});
record!(Heartbeat {
    event_id,
    source,
    vendor,
    endpoint,
    observed_at,
    polls,
    size
});

impl Field for ReportRow {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            ReportRow::Chat1(r) => {
                out.push(0);
                r.put(out);
            }
            ReportRow::Diagram9(r) => {
                out.push(1);
                r.put(out);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, Malformed> {
        match r.byte()? {
            0 => Chat1Row::get(r).map(ReportRow::Chat1),
            1 => Diagram9Row::get(r).map(ReportRow::Diagram9),
            b => Err(format!("{b} is not a report")),
        }
    }
}

/// `event` in this encoding after `version`, or `None` for an event it does not cover.
pub fn encode(version: u8, event: &Event) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    out.push(version);
    match event {
        Event::Interaction(e) => {
            out.push(0);
            e.put(&mut out);
        }
        Event::ReportRow(e) => {
            out.push(1);
            e.put(&mut out);
        }
        Event::DeadLetter(e) => {
            out.push(2);
            e.put(&mut out);
        }
        Event::Heartbeat(e) => {
            out.push(3);
            e.put(&mut out);
        }
        Event::AgentStatus(_) | Event::Metrics(_) | Event::Reconciled(_) | Event::AgentState(_) => {
            return None
        }
    }
    Some(out)
}

/// The event in `bytes` (after the version byte).
pub fn decode(bytes: &[u8]) -> Result<Event, Malformed> {
    let mut r = Reader { bytes };
    let event = match r.byte()? {
        0 => Event::Interaction(InteractionEvent::get(&mut r)?),
        1 => Event::ReportRow(Box::new(ReportRecord::get(&mut r)?)),
        2 => Event::DeadLetter(DeadLetter::get(&mut r)?),
        3 => Event::Heartbeat(Heartbeat::get(&mut r)?),
        b => return Err(format!("{b} is not an event kind of this encoding")),
    };
    match r.bytes.len() {
        0 => Ok(event),
        n => Err(format!("{n} bytes left after the event")),
    }
}

#[cfg(test)]
mod tests;
