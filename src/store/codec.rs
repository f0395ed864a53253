//! How feed states (plain serde data) are stored: JSON, readable and easy to evolve.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StoreError;

/// Serialize a feed state (plain serde data) as JSON, readable and easy to evolve.
pub fn encode_state<T: Serialize>(state: &T) -> Vec<u8> {
    // Feed states and events are plain data (strings, numbers, lists, string-keyed maps): JSON
    // serialization of such values cannot fail.
    serde_json::to_vec(state).expect("plain data serializes to JSON")
}

/// Decode a feed state stored under `key`.
pub fn decode_state<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })
}
