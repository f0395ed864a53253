//! The outbox: events committed with the state they were derived from ([`super::Store::commit`]),
//! waiting for the broker's acknowledgement. This module owns how an event is stored and read back.
//!
//! Encoding, by its first byte:
//! - `0x02`: version 2, a compact binary form (`binary`) of the events that pass through in
//!   bulk (report rows, interaction events, dead letters, heartbeats): no field names, no text
//!   escaping, nothing for the publisher to parse. Written for those events since it exists;
//! - `0x01`: version 1, the event as JSON (the [`Event`] serde form) after the version byte;
//!   still written for the other events;
//! - `{`: the format of ccdc before versioning (JSON without a version byte), still read.
//!
//! A later encoding takes the next version byte; entries already in an outbox keep theirs, so every
//! version ever written stays readable here (the tests decode the previous formats' bytes).
//!
//! The events this process has just committed are also kept in memory for a while ([`Recent`]):
//! the publisher takes an entry's event from there, by its exact sequence number, instead of
//! decoding its bytes. The store still says which entries exist and in which order.

use std::sync::Arc;

use base64::Engine;

use super::{Store, StoreError};
use crate::event::{bound, Event};

mod binary;
pub mod recent;
pub use recent::Recent;

/// The version byte of the binary encoding, which this build writes for the events it covers.
pub const VERSION: u8 = 2;
/// The version byte of the JSON encoding, which this build writes for the other events.
pub const JSON_VERSION: u8 = 1;

/// An event's JSON form is at most this many times its binary form plus [`JSON_SLACK`]: a byte of
/// a string takes at most 6 (`\u001f`); an `i64`'s 8 bytes at most 20 digits; field names,
/// variant tags and enum names (at most 2 per event) fit in the slack.
const JSON_PER_BINARY_BYTE: usize = 6;
const JSON_SLACK: usize = 8 * 1024;

/// Why an outbox entry cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox entry {seq}: unknown encoding version {version} (written by a newer ccdc?)")]
    UnknownVersion { seq: u64, version: u8 },
    #[error("outbox entry {seq}: cannot be decoded: {reason}")]
    Undecodable { seq: u64, reason: String },
}

/// An event as stored in the outbox. An event whose JSON form is over [`bound::MAX_EVENT_BYTES`]
/// is stored with its long vendor values cut ([`bound`]): it must stay deliverable.
pub fn encode(event: &Event) -> Vec<u8> {
    encode_exact(event).0
}

/// [`encode`], and whether the bytes decode to `event` exactly (the binary form, nothing cut): only
/// then may the event itself stand in for its bytes ([`Recent`]).
pub fn encode_exact(event: &Event) -> (Vec<u8>, bool) {
    let bytes = to_bytes(event);
    let json_len = match bytes.first() {
        Some(&JSON_VERSION) => bytes.len() - 1,
        // Surely under the bound: not worth making the JSON form to measure it.
        _ if bytes.len() * JSON_PER_BINARY_BYTE + JSON_SLACK <= bound::MAX_EVENT_BYTES => {
            return (bytes, true);
        }
        _ => serde_json::to_vec(event).map_or(usize::MAX, |j| j.len()),
    };
    let exact = bytes.first() == Some(&VERSION);
    if json_len <= bound::MAX_EVENT_BYTES {
        return (bytes, exact);
    }
    let (bounded, cut) = bound::bounded(event.clone(), json_len);
    if cut == 0 {
        return (bytes, exact);
    }
    metrics::counter!("ccdc_event_fields_cut_total").increment(cut as u64);
    tracing::warn!(
        event_id = event.event_id(),
        event_type = event.type_name(),
        bytes = bytes.len(),
        fields = cut,
        "an oversized vendor value: long fields cut (with a marker) so the record stays deliverable"
    );
    (to_bytes(&bounded), false)
}

fn to_bytes(event: &Event) -> Vec<u8> {
    if let Some(mut bytes) = binary::encode(VERSION, event) {
        bytes.shrink_to_fit();
        return bytes;
    }
    let mut bytes = Vec::with_capacity(256);
    bytes.push(JSON_VERSION);
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
        Some(&VERSION) => {
            return binary::decode(&bytes[1..])
                .map_err(|reason| OutboxError::Undecodable { seq, reason })
        }
        Some(&JSON_VERSION) => &bytes[1..],
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

fn decoded(stored: Vec<(u64, Vec<u8>)>) -> Vec<Entry> {
    stored
        .into_iter()
        .map(|(seq, bytes)| (seq, decode_entry(seq, &bytes)))
        .collect()
}

/// Where entries set aside are kept: `aside/<seq>` → [`Aside`].
pub const ASIDE_PREFIX: &str = "aside/";

/// An entry set aside: why, when (UTC ms), and its bytes as stored (base64).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Aside {
    pub reason: String,
    pub at: i64,
    pub entry: String,
}

/// One entry read from the outbox: its sequence number and its event (or why it cannot be read).
pub type Entry = (u64, Result<Event, OutboxError>);

/// The outbox of a store, as the publisher sees it.
#[derive(Clone)]
pub struct Outbox {
    store: Arc<dyn Store>,
    /// Events just committed by this process, taken instead of decoding their bytes.
    recent: Option<Arc<Recent>>,
}

impl Outbox {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Outbox {
            store,
            recent: None,
        }
    }

    /// Take the events this process just committed from `recent` where it has them.
    pub fn with_recent(mut self, recent: Option<Arc<Recent>>) -> Self {
        self.recent = recent;
        self
    }

    /// Up to `limit` entries after sequence number `after` (from the start with `None`), in
    /// commit order.
    pub fn read_after(&self, after: Option<u64>, limit: usize) -> Result<Vec<Entry>, StoreError> {
        let stored = self.store.outbox_after(after, limit)?;
        let Some(recent) = self.recent.as_ref().filter(|r| !r.is_empty()) else {
            return Ok(decoded(stored));
        };
        let kept = recent.take_all(stored.iter().map(|(seq, _)| *seq));
        Ok(stored
            .into_iter()
            .zip(kept)
            .map(|((seq, bytes), kept)| match kept {
                Some(event) => (seq, Ok(event)),
                None => (seq, decode_entry(seq, &bytes)),
            })
            .collect())
    }

    /// [`Outbox::read_after`] from the store's bytes alone (for reads out of the publisher's
    /// order, which must not take kept events from [`Recent`]).
    fn read_stored(&self, after: Option<u64>, limit: usize) -> Result<Vec<Entry>, StoreError> {
        Ok(decoded(self.store.outbox_after(after, limit)?))
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

    /// The entry `seq` (if still waiting).
    pub fn get(&self, seq: u64) -> Result<Option<Entry>, StoreError> {
        let after = seq.checked_sub(1);
        Ok(self
            .read_stored(after, 1)?
            .into_iter()
            .find(|(s, _)| *s == seq))
    }

    /// An entry that can be neither delivered nor dead-lettered (undecodable, or refused on both
    /// topics): move its bytes, as stored, out of the outbox to `aside/<seq>` with the reason, so
    /// the rest goes on. Nothing is dropped: an operator can look at it (or a later ccdc read it).
    pub fn set_aside(&self, seq: u64, reason: &str) -> Result<(), StoreError> {
        let bytes = self
            .store
            .outbox_after(seq.checked_sub(1), 1)?
            .into_iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, b)| b);
        if let Some(bytes) = bytes {
            let aside = Aside {
                reason: reason.to_string(),
                at: chrono::Utc::now().timestamp_millis(),
                entry: base64::engine::general_purpose::STANDARD.encode(bytes),
            };
            self.store.commit(
                vec![super::Write::Put(
                    format!("{ASIDE_PREFIX}{seq:020}"),
                    super::encode_state(&aside),
                )],
                vec![],
            )?;
        }
        self.acknowledge(&[seq])
    }

    /// Entries set aside so far.
    pub fn set_aside_count(&self) -> Result<usize, StoreError> {
        Ok(self.store.scan_prefix(ASIDE_PREFIX)?.len())
    }

    /// The event time ([`Event::time_ms`]) of the oldest waiting entry that can be read.
    pub fn oldest_time_ms(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .read_stored(None, 1)?
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
