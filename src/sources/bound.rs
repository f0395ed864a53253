//! How much one poll may decode. A response is bounded in bytes (`max_response_bytes`, enforced
//! while streaming, [`super::http`]), but bytes are not memory: decoded into maps and structs, a
//! body of tiny Wolkvox agent rows took 26× its size (43× at its peak), and an interaction's agent
//! id is copied into every interaction of that agent (516× for one long id over many short rows;
//! `tests/decoded_memory.rs`, README "Bounds of one poll").
//!
//! So every list a poll keeps is counted as it is decoded, one row at a time, against a
//! [`PollBound`]: at most `max_rows_per_poll` rows, and at most [`DECODED_FACTOR`] ×
//! `max_response_bytes` of decoded data, a row being accounted as the bytes of its strings plus
//! the size of the structures that hold it, at the worst occupancy of the map's nodes
//! ([`map_entry_bytes`]). Past either, decoding stops at once and the poll fails as a whole
//! ([`SourceError::OverBound`], `kind="over_bound"`): an incomplete observation is never diffed.
//!
//! The count of the poll being decoded lives in a thread-local for the duration of one
//! [`decode_bounded`] call (decoding is synchronous, on the parser's blocking thread), so derived
//! `Deserialize` types can hold a [`Rows`] list, and hand-written visitors call [`charge`],
//! without threading a seed through serde. Outside [`decode_bounded`] nothing is counted.

use std::cell::RefCell;
use std::io::Read;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::SourceError;

/// Decoded data one poll may keep, as a multiple of the source's `max_response_bytes`.
pub const DECODED_FACTOR: u64 = 8;

/// The bound of one poll of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollBound {
    pub max_rows: u64,
    pub max_decoded_bytes: u64,
}

impl PollBound {
    /// `max_rows` rows and [`DECODED_FACTOR`] × `max_response_bytes` decoded bytes.
    pub fn new(max_rows: u64, max_response_bytes: u64) -> Self {
        PollBound {
            max_rows,
            max_decoded_bytes: max_response_bytes.saturating_mul(DECODED_FACTOR),
        }
    }

    /// A fresh count against this bound.
    pub fn tally(self) -> Tally {
        Tally {
            bound: self,
            rows: 0,
            bytes: 0,
            exceeded: None,
        }
    }
}

/// Which bound a poll went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exceeded {
    Rows,
    DecodedBytes,
    /// One row longer than its endpoint's per-row limit (the limit).
    RowBytes(u64),
}

/// What one poll has decoded so far.
#[derive(Debug, Clone)]
pub struct Tally {
    bound: PollBound,
    rows: u64,
    bytes: u64,
    exceeded: Option<Exceeded>,
}

impl Tally {
    /// Count one kept row of `bytes` decoded bytes; `false` once over the bound (and from then on).
    pub fn charge_row(&mut self, bytes: u64) -> bool {
        self.rows = self.rows.saturating_add(1);
        self.charge_bytes(bytes)
    }

    /// Count `bytes` more decoded bytes of rows already counted (e.g. a key copied into each).
    pub fn charge_bytes(&mut self, bytes: u64) -> bool {
        self.bytes = self.bytes.saturating_add(bytes);
        if self.exceeded.is_none() {
            if self.rows > self.bound.max_rows {
                self.exceeded = Some(Exceeded::Rows);
            } else if self.bytes > self.bound.max_decoded_bytes {
                self.exceeded = Some(Exceeded::DecodedBytes);
            }
        }
        self.exceeded.is_none()
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Decoded bytes accounted so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The error of a poll that went past its bound, naming the bound.
    pub fn error(&self, source: &str, endpoint: &str) -> Option<SourceError> {
        let (limit, unit, setting) = match self.exceeded? {
            Exceeded::Rows => (self.bound.max_rows, "rows", "max_rows_per_poll"),
            Exceeded::DecodedBytes => (
                self.bound.max_decoded_bytes,
                "decoded bytes",
                "8 × max_response_bytes",
            ),
            Exceeded::RowBytes(limit) => (limit, "bytes in one row", "the endpoint's row limit"),
        };
        Some(SourceError::OverBound {
            source_name: source.into(),
            endpoint: endpoint.into(),
            limit,
            unit,
            setting,
        })
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Tally>> = const { RefCell::new(None) };
}

/// What a bounded decode says to serde when it stops (replaced by the bound's own error).
const OVER: &str = "over the poll's decoding bound";

/// Charge one kept row of `bytes` decoded bytes to the poll being decoded on this thread; an
/// error (that stops decoding) once it is over its bound.
pub fn charge<E: de::Error>(bytes: usize) -> Result<(), E> {
    with_current(|t| t.charge_row(bytes as u64))
}

/// Charge `bytes` more decoded bytes, no new row (see [`Tally::charge_bytes`]).
pub fn charge_bytes<E: de::Error>(bytes: u64) -> Result<(), E> {
    with_current(|t| t.charge_bytes(bytes))
}

/// Refuse a row of `len` bytes over an endpoint's per-row `limit` (its decoding would take many
/// times its size at once).
pub fn check_row_len<E: de::Error>(len: usize, limit: u64) -> Result<(), E> {
    if (len as u64) <= limit {
        return Ok(());
    }
    with_current(|t| {
        t.exceeded.get_or_insert(Exceeded::RowBytes(limit));
        false
    })?;
    // Outside a bounded decode the row is refused all the same.
    Err(E::custom(format!("a row of more than {limit} bytes")))
}

fn with_current<E: de::Error>(f: impl FnOnce(&mut Tally) -> bool) -> Result<(), E> {
    let within = CURRENT.with(|c| c.borrow_mut().as_mut().is_none_or(f));
    if within {
        Ok(())
    } else {
        Err(E::custom(OVER))
    }
}

/// The thread's count while one bounded decode runs; the previous one (if any) is back on drop.
struct Scope {
    outer: Option<Tally>,
}

impl Scope {
    fn enter(tally: Tally) -> Scope {
        Scope {
            outer: CURRENT.with(|c| c.replace(Some(tally))),
        }
    }

    fn leave(mut self) -> Option<Tally> {
        let outer = self.outer.take();
        CURRENT.with(|c| c.replace(outer))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some(outer) = self.outer.take() {
            CURRENT.with(|c| c.replace(Some(outer)));
        }
    }
}

/// [`super::decode_json`] with every [`Rows`] list and [`charge`] inside it counted in `tally`:
/// the decoded value and the count, or [`SourceError::OverBound`] as soon as it is over.
pub fn decode_bounded<T: DeserializeOwned>(
    source: &str,
    endpoint: &str,
    body: &mut dyn Read,
    tally: Tally,
) -> Result<(T, Tally), SourceError> {
    bounded(source, endpoint, tally, || {
        super::decode_json::<T>(source, endpoint, body)
    })
}

/// Run `decode` (any decoding on this thread: from a reader, from a slice) with every [`Rows`]
/// list and [`charge`] inside it counted in `tally`: its result and the count, or
/// [`SourceError::OverBound`] as soon as it is over (whatever error `decode` gave then).
pub fn bounded<T>(
    source: &str,
    endpoint: &str,
    tally: Tally,
    decode: impl FnOnce() -> Result<T, SourceError>,
) -> Result<(T, Tally), SourceError> {
    let scope = Scope::enter(tally);
    let decoded = decode();
    let tally = scope.leave().ok_or_else(|| SourceError::Internal {
        source_name: source.into(),
        endpoint: endpoint.into(),
        detail: "the decoding count went missing".into(),
    })?;
    if let Some(e) = tally.error(source, endpoint) {
        return Err(e);
    }
    decoded.map(|v| (v, tally))
}

/// Bytes of one entry of a `BTreeMap<K, V>` at the worst occupancy of its nodes (5 of 11 slots
/// used), plus a share of the node's header and parent edge.
pub fn map_entry_bytes<K, V>() -> usize {
    (std::mem::size_of::<K>() + std::mem::size_of::<V>()) * 11 / 5 + 16
}

/// Bytes of an optional string's text.
pub fn text_len(s: &Option<String>) -> usize {
    s.as_ref().map_or(0, String::len)
}

/// A row type's decoded size: what keeping it costs, its strings included.
pub trait DecodedSize {
    fn decoded_bytes(&self) -> usize;
}

/// A JSON list whose every element is charged to the poll being decoded as it is read.
#[derive(Debug)]
pub struct Rows<T>(pub Vec<T>);

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Rows(Vec::new())
    }
}

impl<'de, T: Deserialize<'de> + DecodedSize> Deserialize<'de> for Rows<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + DecodedSize> Visitor<'de> for V<T> {
            type Value = Rows<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Rows<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(row) = seq.next_element::<T>()? {
                    // The list's spare capacity too (it at most doubles).
                    charge(row.decoded_bytes() + 2 * std::mem::size_of::<T>())?;
                    out.push(row);
                }
                Ok(Rows(out))
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Row(String);
    impl DecodedSize for Row {
        fn decoded_bytes(&self) -> usize {
            self.0.len()
        }
    }

    #[derive(Debug, Deserialize)]
    struct Page {
        list: Rows<Row>,
    }

    fn decode(body: &str, bound: PollBound) -> Result<(Page, Tally), SourceError> {
        decode_bounded::<Page>("src", "ep", &mut body.as_bytes(), bound.tally())
    }

    #[test]
    fn rows_past_the_bound_fail_the_decode_naming_the_bound() {
        let body = r#"{"list":["a","b","c"]}"#;
        let (page, tally) = decode(body, PollBound::new(3, 1 << 20)).unwrap();
        assert_eq!((page.list.0.len(), tally.rows()), (3, 3));
        let e = decode(body, PollBound::new(2, 1 << 20)).unwrap_err();
        assert_eq!(e.kind(), "over_bound");
        let text = e.to_string();
        assert!(
            text.starts_with("src ep: ") && text.contains("more than 2 rows (max_rows_per_poll)"),
            "{text}"
        );
    }

    #[test]
    fn decoded_bytes_past_the_bound_fail_the_decode() {
        // 8 × 8 bytes = 64 decoded bytes allowed; each row costs its text + 2 × size_of::<Row>().
        let per_row = 2 * std::mem::size_of::<Row>() as u64;
        let long = "x".repeat(65);
        let e = decode(&format!(r#"{{"list":["{long}"]}}"#), PollBound::new(10, 8)).unwrap_err();
        assert!(e.to_string().contains("decoded bytes"), "{e}");
        let (_, t) = decode(r#"{"list":["xy"]}"#, PollBound::new(10, 1024)).unwrap();
        assert_eq!(t.bytes(), 2 + per_row);
    }

    #[test]
    fn a_count_continues_across_decodes_and_nothing_is_counted_outside() {
        let bound = PollBound::new(3, 1 << 20);
        let (_, t) = decode_bounded::<Page>(
            "s",
            "e",
            &mut r#"{"list":["a","b"]}"#.as_bytes(),
            bound.tally(),
        )
        .unwrap();
        let e = decode_bounded::<Page>("s", "e", &mut r#"{"list":["c","d"]}"#.as_bytes(), t)
            .unwrap_err();
        assert_eq!(e.kind(), "over_bound");
        // No bounded decode running: plain decoding is not counted.
        let page: Page =
            serde_json::from_str(r#"{"list":["a","b","c","d","e"]}"#).expect("unbounded");
        assert_eq!(page.list.0.len(), 5);
        assert!(CURRENT.with(|c| c.borrow().is_none()));
    }

    #[test]
    fn a_malformed_body_is_still_a_parse_error() {
        let e = decode(r#"{"list":[1]}"#, PollBound::new(3, 1024)).unwrap_err();
        assert_eq!(e.kind(), "parse");
    }
}
