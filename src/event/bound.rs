//! Bounds on what a vendor can put into one event. Vendor text (a chat's subject, a report's
//! comments, a raw row kept for reference) has no documented limit, but a Kafka record has one
//! (the broker's `message.max.bytes`, 1 MB by default): one oversized value must not make a record
//! that can never be delivered. An event whose JSON form exceeds [`MAX_EVENT_BYTES`] has every
//! string longer than [`MAX_FIELD_BYTES`] cut (on a character boundary) with a marker saying how
//! much was cut, and every list longer than [`MAX_LIST_ITEMS`] shortened; an event under the
//! bound is kept exactly as the vendor sent it.

use serde_json::Value;

use super::Event;

/// An event larger than this (as JSON, the outbox form) gets its long fields cut.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// The longest string kept whole in an event that had to be cut.
pub const MAX_FIELD_BYTES: usize = 32 * 1024;
/// The longest list kept whole in an event that had to be cut (e.g. Comm100 queue visitors).
pub const MAX_LIST_ITEMS: usize = 1_000;

/// The marker appended to a cut string.
pub fn marker(cut_bytes: usize) -> String {
    format!("…[cut by ccdc: {cut_bytes} more bytes]")
}

/// `event` with its long fields cut, and how many fields were cut (0: returned unchanged).
/// `json_len` is the size of its JSON form, which the caller has at hand.
pub fn bounded(event: Event, json_len: usize) -> (Event, usize) {
    if json_len <= MAX_EVENT_BYTES {
        return (event, 0);
    }
    let Ok(mut value) = serde_json::to_value(&event) else {
        return (event, 0);
    };
    let cut = cut(&mut value);
    match serde_json::from_value::<Event>(value) {
        Ok(bounded) if cut > 0 => (bounded, cut),
        _ => (event, 0),
    }
}

/// Cut every long string and list in `v`; the number cut.
fn cut(v: &mut Value) -> usize {
    match v {
        Value::String(s) if s.len() > MAX_FIELD_BYTES => {
            let mut end = MAX_FIELD_BYTES;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            let more = s.len() - end;
            s.truncate(end);
            s.push_str(&marker(more));
            1
        }
        Value::Array(items) => {
            let mut n = 0;
            if items.len() > MAX_LIST_ITEMS {
                items.truncate(MAX_LIST_ITEMS);
                n += 1;
            }
            n + items.iter_mut().map(cut).sum::<usize>()
        }
        Value::Object(fields) => fields.values_mut().map(cut).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_subject(subject: String) -> Event {
        let mut e = crate::event::started_for_tests("id-1", "c1");
        if let Event::Interaction(i) = &mut e {
            i.subject = Some(subject);
        }
        e
    }

    #[test]
    fn a_small_event_is_kept_exactly() {
        let e = with_subject("ñ".repeat(10));
        let len = serde_json::to_vec(&e).unwrap().len();
        assert_eq!(bounded(e.clone(), len), (e, 0));
    }

    #[test]
    fn an_oversized_vendor_value_is_cut_on_a_character_boundary_with_a_marker() {
        // 1.5 MB of two-byte characters, as an acceptance run sent in a Wolkvox subject.
        let e = with_subject("ñ".repeat(750_000));
        let len = serde_json::to_vec(&e).unwrap().len();
        let (b, n) = bounded(e, len);
        assert_eq!(n, 1);
        let Event::Interaction(i) = &b else { panic!() };
        let s = i.subject.as_deref().unwrap();
        assert!(
            s.starts_with("ññ") && s.ends_with("more bytes]"),
            "{}",
            &s[s.len() - 40..]
        );
        assert!(s.len() <= MAX_FIELD_BYTES + 64);
        assert_eq!(
            s.len() - marker(1_500_000 - MAX_FIELD_BYTES).len(),
            MAX_FIELD_BYTES
        );
        assert_eq!(i.event_id, "id-1", "the identity is untouched");
        assert!(serde_json::to_vec(&b).unwrap().len() < MAX_EVENT_BYTES);
    }
}
