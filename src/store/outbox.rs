//! The outbox: events committed with the state they were derived from ([`super::Store::commit`]),
//! waiting for the broker's acknowledgement. This module owns how an event is stored and read back.
//!
//! Encoding, by its first byte:
//! - `0x01`: version 1, the event as JSON (the [`Event`] serde form) after the version byte;
//! - `{`: the format of ccdc before versioning (JSON without a version byte), still read.
//!
//! A later encoding takes the next version byte; entries already in an outbox keep theirs, so every
//! version ever written stays readable here (the tests decode the previous formats' bytes).

use std::sync::Arc;

use super::{Store, StoreError};
use crate::event::Event;

/// The version byte this build writes.
pub const VERSION: u8 = 1;

/// Why an outbox entry cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox entry {seq}: unknown encoding version {version} (written by a newer ccdc?)")]
    UnknownVersion { seq: u64, version: u8 },
    #[error("outbox entry {seq}: cannot be decoded: {reason}")]
    Undecodable { seq: u64, reason: String },
}

/// An event as stored in the outbox.
pub fn encode(event: &Event) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(256);
    bytes.push(VERSION);
    // Events are plain data (strings, numbers, lists, string-keyed maps): JSON serialization of
    // such values cannot fail, and writing into a Vec does no I/O.
    if let Err(e) = serde_json::to_writer(&mut bytes, event) {
        unreachable!("an event always serializes to JSON: {e}");
    }
    bytes.shrink_to_fit();
    bytes
}

/// An event read back from its outbox bytes (any version this build knows).
pub fn decode(bytes: &[u8]) -> Result<Event, OutboxError> {
    decode_entry(0, bytes)
}

fn decode_entry(seq: u64, bytes: &[u8]) -> Result<Event, OutboxError> {
    let json = match bytes.first() {
        Some(&VERSION) => &bytes[1..],
        Some(b'{') => bytes,
        Some(&version) => return Err(OutboxError::UnknownVersion { seq, version }),
        None => {
            return Err(OutboxError::Undecodable {
                seq,
                reason: "empty entry".into(),
            })
        }
    };
    serde_json::from_slice(json).map_err(|e| OutboxError::Undecodable {
        seq,
        reason: e.to_string(),
    })
}

/// One entry read from the outbox: its sequence number and its event (or why it cannot be read).
pub type Entry = (u64, Result<Event, OutboxError>);

/// The outbox of a store, as the publisher sees it.
#[derive(Clone)]
pub struct Outbox {
    store: Arc<dyn Store>,
}

impl Outbox {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Outbox { store }
    }

    /// Up to `limit` entries after sequence number `after` (from the start with `None`), in
    /// commit order.
    pub fn read_after(&self, after: Option<u64>, limit: usize) -> Result<Vec<Entry>, StoreError> {
        Ok(self
            .store
            .outbox_after(after, limit)?
            .into_iter()
            .map(|(seq, bytes)| (seq, decode_entry(seq, &bytes)))
            .collect())
    }

    /// Whether anything is stored after `after`.
    pub fn has_after(&self, after: Option<u64>) -> Result<bool, StoreError> {
        Ok(!self.store.outbox_after(after, 1)?.is_empty())
    }

    /// The broker acknowledged these entries: remove them (idempotent).
    pub fn acknowledge(&self, seqs: &[u64]) -> Result<(), StoreError> {
        self.store.outbox_remove(seqs)
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.store.outbox_len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The event time ([`Event::time_ms`]) of the oldest waiting entry that can be read.
    pub fn oldest_time_ms(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .read_after(None, 1)?
            .into_iter()
            .next()
            .and_then(|(_, e)| e.ok())
            .map(|e| e.time_ms()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::InteractionEventType;
    use crate::store::MemoryStore;

    /// An entry exactly as the previous format (before the version byte) wrote it.
    const PREVIOUS_FORMAT: &str = r#"{"kind":"interaction","event_id":"c3246479-f422-5620-9388-af6b9c7cdeca","event_type":"ENDED","source":"demo-wolkvox","vendor":"wolkvox","agent_id":"1002","interaction_id":"00000002","initial":false,"transfer":false,"transfer_agent_id":null,"observed_at":1795263037533,"previous_observed_at":1795263037031,"vendor_timestamp":1795263037000,"vendor_timestamp_raw":"2026-11-21 07:10:37","subject":"Order status","from_name":"Jorge","latest_only":false}"#;

    #[test]
    fn entries_of_the_previous_format_are_read() {
        let Event::Interaction(e) = decode(PREVIOUS_FORMAT.as_bytes()).unwrap() else {
            panic!("an interaction event")
        };
        assert_eq!(e.event_type, InteractionEventType::Ended);
        assert_eq!(e.event_id, "c3246479-f422-5620-9388-af6b9c7cdeca");
        assert_eq!(
            e.vendor_timestamp_raw.as_deref(),
            Some("2026-11-21 07:10:37")
        );
        // The same event in the current format decodes to the same value.
        let again = decode(&encode(&Event::Interaction(e.clone()))).unwrap();
        assert_eq!(again, Event::Interaction(e));
    }

    #[test]
    fn the_current_format_carries_its_version_and_round_trips() {
        let ev = crate::event::started_for_tests("id-1", "c1");
        let bytes = encode(&ev);
        assert_eq!(bytes[0], VERSION);
        assert_eq!(decode(&bytes).unwrap(), ev);
    }

    #[test]
    fn unknown_versions_and_garbage_are_errors_naming_the_entry() {
        let store = Arc::new(MemoryStore::default());
        let ev = crate::event::started_for_tests("id-1", "c1");
        store
            .commit(
                vec![],
                vec![vec![9, b'{'], b"[1,2]".to_vec(), vec![], encode(&ev)],
            )
            .unwrap();
        let outbox = Outbox::new(store);
        let got = outbox.read_after(None, 10).unwrap();
        assert!(matches!(
            got[0].1,
            Err(OutboxError::UnknownVersion { seq: 0, version: 9 })
        ));
        let msg = got[1].1.as_ref().unwrap_err().to_string();
        assert!(msg.contains("unknown encoding version 91"), "{msg}");
        assert!(matches!(
            got[2].1,
            Err(OutboxError::Undecodable { seq: 2, .. })
        ));
        assert_eq!(got[3].1.as_ref().unwrap(), &ev);
        assert_eq!(
            outbox.oldest_time_ms().unwrap(),
            None,
            "the oldest entry is unreadable"
        );
        outbox.acknowledge(&[0, 1, 2]).unwrap();
        assert_eq!(outbox.oldest_time_ms().unwrap(), Some(1));
        assert_eq!(outbox.len(), 1);
    }
}
