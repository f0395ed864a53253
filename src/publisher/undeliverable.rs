//! The dead letter of a record the broker refuses for good.

use crate::event::{bound, id, DeadLetter, Event};

/// The dead letter of a record the broker refuses for good.
pub(super) fn undeliverable(event: &Event, topic: &str, reason: &str) -> Event {
    let raw = serde_json::to_string(&crate::avro::WireView(event)).unwrap_or_default();
    let raw = match raw.len() > bound::MAX_FIELD_BYTES {
        false => raw,
        true => {
            let mut end = bound::MAX_FIELD_BYTES;
            while !raw.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}{}", &raw[..end], bound::marker(raw.len() - end))
        }
    };
    Event::DeadLetter(DeadLetter {
        event_id: id::undeliverable(event.event_id()).to_string(),
        source: event.source().to_string(),
        vendor: event.vendor().to_string(),
        report: event.type_name().to_string(),
        window_start_raw: String::new(),
        window_end_raw: String::new(),
        error: reason.to_string(),
        raw,
        failed_at: chrono::Utc::now().timestamp_millis(),
        original_topic: Some(topic.to_string()),
        original_key: Some(event.key()),
        original_event_id: Some(event.event_id().to_string()),
    })
}
