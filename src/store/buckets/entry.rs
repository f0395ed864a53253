//! One interaction in the binary layout of [`super`], and one change of a delta.

use super::super::codec::{BinReader, BinWriter};
use super::super::StoreError;
use super::too_large;
use crate::diff::snapshot::{Builder, Span};
use crate::diff::{ActiveInteraction, Interaction, InteractionKey};

/// A change of a delta: an interaction added or changed (`1`, then the interaction), or removed
/// (`2`, then its id and agent id).
pub const PUT: u8 = 1;
pub const REMOVE: u8 = 2;

/// Flags of a stored interaction: which optional fields follow.
const SUBJECT: u8 = 1;
const FROM_NAME: u8 = 2;
const DATE_RAW: u8 = 4;
const VENDOR_TS: u8 = 8;
const FIRST_SEEN: u8 = 16;
const SEEN_AFTER: u8 = 32;
const TEXTS: [u8; 3] = [SUBJECT, FROM_NAME, DATE_RAW];
const TIMES: [u8; 3] = [VENDOR_TS, FIRST_SEEN, SEEN_AFTER];

/// Its id, agent id, the flags, the texts and times present.
pub fn write_entry(w: &mut BinWriter, it: &Interaction) {
    w.str(it.interaction_id);
    w.str(it.agent_id);
    let texts = [it.subject, it.from_name, it.vendor_timestamp_raw];
    let times = [it.vendor_timestamp, it.first_seen, it.seen_after];
    let mut flags = 0;
    for (bit, present) in TEXTS.iter().zip(texts.map(|t| t.is_some())) {
        flags |= if present { *bit } else { 0 };
    }
    for (bit, present) in TIMES.iter().zip(times.map(|t| t.is_some())) {
        flags |= if present { *bit } else { 0 };
    }
    w.byte(flags);
    for t in texts.into_iter().flatten() {
        w.str(t);
    }
    for t in times.into_iter().flatten() {
        w.i64(t);
    }
}

/// The flags byte, then the texts and times it announces.
struct Read<'a> {
    texts: [Option<&'a str>; 3],
    times: [Option<i64>; 3],
}

fn read_rest<'a>(r: &mut BinReader<'a>) -> Result<Read<'a>, StoreError> {
    let flags = r.byte()?;
    let mut out = Read {
        texts: [None; 3],
        times: [None; 3],
    };
    for (t, bit) in out.texts.iter_mut().zip(TEXTS) {
        if flags & bit != 0 {
            *t = Some(r.str()?);
        }
    }
    for (t, bit) in out.times.iter_mut().zip(TIMES) {
        if flags & bit != 0 {
            *t = Some(r.i64()?);
        }
    }
    Ok(out)
}

/// Read one interaction into `b` (a value stored under `key`).
pub fn read_entry(r: &mut BinReader, b: &mut Builder, key: &str) -> Result<(), StoreError> {
    let (interaction, agent) = (r.str()?, r.str()?);
    let rest = read_rest(r)?;
    let text = |b: &mut Builder, t: &str| b.text(t).map_err(too_large(key));
    let (i, a) = (text(b, interaction)?, text(b, agent)?);
    let mut spans = [Span::NONE; 3];
    for (span, t) in spans.iter_mut().zip(rest.texts) {
        if let Some(t) = t {
            *span = text(b, t)?;
        }
    }
    let [subject, from_name, date_raw] = spans;
    b.push(i, a, subject, from_name, date_raw);
    let [vendor_timestamp, first_seen, seen_after] = rest.times;
    b.set_times(vendor_timestamp, first_seen, seen_after);
    Ok(())
}

/// One change of a delta.
pub enum Op {
    Put(InteractionKey, ActiveInteraction),
    Remove(InteractionKey),
}

pub fn read_op(r: &mut BinReader) -> Result<Op, StoreError> {
    let op = r.byte()?;
    let key = InteractionKey {
        interaction_id: r.str()?.to_string(),
        agent_id: r.str()?.to_string(),
    };
    match op {
        PUT => {
            let rest = read_rest(r)?;
            let [subject, from_name, vendor_timestamp_raw] =
                rest.texts.map(|t| t.map(str::to_string));
            let [vendor_timestamp, first_seen, seen_after] = rest.times;
            Ok(Op::Put(
                key,
                ActiveInteraction {
                    subject,
                    from_name,
                    vendor_timestamp,
                    vendor_timestamp_raw,
                    first_seen,
                    seen_after,
                },
            ))
        }
        REMOVE => Ok(Op::Remove(key)),
        other => Err(r.corrupt(&format!("unknown change {other}"))),
    }
}
