//! The sled outbox's layout: events are stored in *segments* of up to [`SEGMENT_EVENTS`] events (or
//! about [`SEGMENT_BYTES`]), one sled entry each, instead of one entry per event. sled spends several
//! microseconds and hundreds of bytes of memory per entry in a batch; the first poll of a
//! 60,000-interaction source commits 60,000 events at once.
//!
//! - segment `q` + id (u64, big-endian) → a segment, by its first byte:
//!   - `0x00` (written): `count: u32` (at most 2^16, so its first byte is 0), then the body,
//!     `count` × (`len: u32`, payload), LZ4-compressed (its size prepended, little-endian);
//!   - `0x01` (read, no longer written): `count: u32`, then the body as is. A development build
//!     of the binary outbox wrote it: without compression a commit used less CPU, but sled keeps
//!     what is written in its page cache until reads evict it, and a feed committing 250 MB of
//!     compressible rows with no publisher draining them grew to 308 MB instead of 87 MB
//!     (BENCHMARKS.md, P2e);
//! - acknowledgements of a partly delivered segment: `a` + id → a bitmap of its delivered events.
//!
//! All integers big-endian unless said otherwise.
//!
//! An event's sequence number is `id << 16 | index`: strictly increasing in commit order, because
//! segment ids come from sled's monotonic id generator and indexes increase within a segment.

/// Most events in one segment (also bounded by [`SEGMENT_BYTES`]); below 2^16 by construction.
pub const SEGMENT_EVENTS: usize = 1024;
/// A segment is closed once its payloads reach this size.
pub const SEGMENT_BYTES: usize = 1 << 20;

const INDEX_BITS: u32 = 16;

pub fn seq(segment: u64, index: usize) -> u64 {
    (segment << INDEX_BITS) | index as u64
}

/// `(segment id, index)` of a sequence number.
pub fn split(seq: u64) -> (u64, usize) {
    (seq >> INDEX_BITS, (seq & ((1 << INDEX_BITS) - 1)) as usize)
}

/// Split `events` into segments: slices of at most [`SEGMENT_EVENTS`] events and, unless a single
/// event is larger, at most [`SEGMENT_BYTES`] of payload.
pub fn chunks(events: &[Vec<u8>]) -> Vec<&[Vec<u8>]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, e) in events.iter().enumerate() {
        if i > start && (i - start == SEGMENT_EVENTS || bytes + e.len() > SEGMENT_BYTES) {
            out.push(&events[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += e.len();
    }
    if start < events.len() {
        out.push(&events[start..]);
    }
    out
}

/// The first byte of the uncompressed layout (read, not written).
pub const PLAIN_LAYOUT: u8 = 1;
/// The first byte of the LZ4-compressed layout, the one written.
const LZ4_LAYOUT: u8 = 0;

/// `count: u32`, then the LZ4-compressed body (`len: u32`, payload)*: less to copy into sled, to
/// write, to fsync and for sled to keep in its page cache.
pub fn encode(events: &[Vec<u8>]) -> Vec<u8> {
    let size = events.iter().map(|e| 4 + e.len()).sum::<usize>();
    let mut body = Vec::with_capacity(size);
    for e in events {
        body.extend_from_slice(&(e.len() as u32).to_be_bytes());
        body.extend_from_slice(e);
    }
    let packed = lz4_flex::compress_prepend_size(&body);
    let mut out = Vec::with_capacity(4 + packed.len());
    out.extend_from_slice(&(events.len() as u32).to_be_bytes());
    out.extend_from_slice(&packed);
    out
}

/// A segment of the uncompressed layout (for the tests of reading it).
#[cfg(test)]
pub fn encode_plain(events: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![PLAIN_LAYOUT];
    out.extend_from_slice(&(events.len() as u32).to_be_bytes());
    for e in events {
        out.extend_from_slice(&(e.len() as u32).to_be_bytes());
        out.extend_from_slice(e);
    }
    out
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// The number of events in an encoded segment (without reading its body).
pub fn count(segment: &[u8]) -> Option<usize> {
    match *segment.first()? {
        PLAIN_LAYOUT => read_u32(segment, 1),
        LZ4_LAYOUT => read_u32(segment, 0),
        _ => None,
    }
    .map(|n| n as usize)
}

/// A segment's events, read in place (or decompressed, for the earlier layout).
#[derive(Debug)]
pub struct Segment<'a> {
    count: usize,
    body: std::borrow::Cow<'a, [u8]>,
}

/// Largest body a segment may claim (a few times [`SEGMENT_BYTES`], or one very large event).
const MAX_BODY: usize = 256 << 20;

/// What is wrong with a stored segment.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(String);

pub fn decode(stored: &[u8]) -> Result<Segment<'_>, Malformed> {
    let malformed = |m: &str| Malformed(m.to_string());
    match stored.first() {
        Some(&PLAIN_LAYOUT) => {
            let count =
                count(stored).ok_or_else(|| malformed("segment shorter than its header"))?;
            return Ok(Segment {
                count,
                body: std::borrow::Cow::Borrowed(&stored[5..]),
            });
        }
        Some(&LZ4_LAYOUT) => {}
        Some(&other) => return Err(Malformed(format!("unknown segment layout {other}"))),
        None => return Err(malformed("empty segment")),
    }
    let count = count(stored).ok_or_else(|| malformed("segment shorter than its header"))?;
    let claimed = stored
        .get(4..8)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| malformed("segment has no body"))?;
    if claimed as usize > MAX_BODY {
        return Err(Malformed(format!("segment claims a {claimed}-byte body")));
    }
    let body = lz4_flex::decompress_size_prepended(&stored[4..])
        .map_err(|e| Malformed(format!("segment does not decompress: {e}")))?;
    Ok(Segment {
        count,
        body: std::borrow::Cow::Owned(body),
    })
}

impl Segment<'_> {
    /// The events with their indexes, in order; `Err` names what is malformed.
    pub fn events(&self) -> impl Iterator<Item = Result<(usize, &[u8]), Malformed>> {
        let (n, body) = (self.count, &*self.body);
        let mut at = 0;
        let mut index = 0;
        std::iter::from_fn(move || {
            if index >= n {
                return None;
            }
            let item = read_u32(body, at)
                .map(|len| len as usize)
                .and_then(|len| body.get(at + 4..at + 4 + len).map(|p| (len, p)));
            match item {
                Some((len, payload)) => {
                    at += 4 + len;
                    index += 1;
                    Some(Ok((index - 1, payload)))
                }
                None => {
                    let bad = index;
                    index = n;
                    Some(Err(Malformed(format!(
                        "event {bad} runs past the segment's end"
                    ))))
                }
            }
        })
    }
}

/// Delivered-event bitmaps.
pub fn is_set(bitmap: &[u8], index: usize) -> bool {
    bitmap
        .get(index / 8)
        .is_some_and(|b| b & (1 << (index % 8)) != 0)
}

/// Set `index`; `true` when it was not set before.
pub fn set(bitmap: &mut Vec<u8>, index: usize) -> bool {
    if bitmap.len() <= index / 8 {
        bitmap.resize(index / 8 + 1, 0);
    }
    let was = is_set(bitmap, index);
    bitmap[index / 8] |= 1 << (index % 8);
    !was
}

pub fn ones(bitmap: &[u8]) -> usize {
    bitmap.iter().map(|b| b.count_ones() as usize).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_and_respect_both_bounds() {
        let all: Vec<Vec<u8>> = (0..3000)
            .map(|i| format!("event-{i}").into_bytes())
            .collect();
        let parts = chunks(&all);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [1024, 1024, 952]
        );
        for layout in [encode, encode_plain] {
            let decoded: Vec<Vec<u8>> = parts
                .iter()
                .flat_map(|p| {
                    let enc = layout(p);
                    assert_eq!(count(&enc), Some(p.len()));
                    decode(&enc)
                        .unwrap()
                        .events()
                        .map(|r| r.unwrap().1.to_vec())
                        .collect::<Vec<_>>()
                })
                .collect();
            assert_eq!(decoded, all);
        }
        assert_eq!(encode(&all[..2])[0], LZ4_LAYOUT);

        let big: Vec<Vec<u8>> = vec![vec![1; 700_000], vec![2; 700_000], vec![3; 10]];
        assert_eq!(
            chunks(&big).iter().map(|p| p.len()).collect::<Vec<_>>(),
            [1, 2],
            "a segment closes before it would pass 1 MiB"
        );
        assert!(chunks(&[]).is_empty());
        let huge = vec![vec![0; 3 << 20]];
        assert_eq!(chunks(&huge).len(), 1, "one event larger than a segment");
    }

    #[test]
    fn malformed_segments_are_errors_not_panics() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[7, 0, 0, 0, 1]).unwrap_err().0.contains("layout 7"));
        assert_eq!(count(&[7, 0, 0, 0, 1]), None);
        assert!(decode(&[PLAIN_LAYOUT, 0, 0]).is_err(), "short header");
        let enc = encode_plain(&[b"abc".to_vec(), b"def".to_vec()]);
        let events = |b: &[u8]| {
            let seg = decode(b).unwrap();
            let all: Vec<Result<Vec<u8>, Malformed>> =
                seg.events().map(|r| r.map(|(_, p)| p.to_vec())).collect();
            all
        };
        let truncated = events(&enc[..enc.len() - 2]);
        assert!(truncated[0].is_ok() && truncated[1].is_err(), "truncated");
        let mut more = enc.clone();
        more[1..5].copy_from_slice(&3u32.to_be_bytes());
        let got = events(&more);
        assert!(got[0].is_ok() && got[1].is_ok() && got[2].is_err() && got.len() == 3);
        let mut long = enc.clone();
        long[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(events(&long)[0].is_err(), "a length past the end");

        // The LZ4 layout.
        assert!(decode(&[0, 0]).is_err());
        assert!(decode(&[0, 0, 0, 1]).is_err(), "no body");
        let enc = encode(&[b"abc".to_vec(), b"def".to_vec()]);
        assert!(decode(&enc[..enc.len() - 2]).is_err(), "truncated");
        let mut huge = enc.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).unwrap_err().0.contains("claims"));
        // A count larger than the body holds.
        let mut more = enc.clone();
        more[..4].copy_from_slice(&3u32.to_be_bytes());
        let seg = decode(&more).unwrap();
        let got: Vec<_> = seg.events().collect();
        assert!(got[0].is_ok() && got[1].is_ok() && got[2].is_err() && got.len() == 3);
    }

    #[test]
    fn a_segment_written_by_the_previous_version_is_read() {
        // `count: u32` then LZ4 with its size prepended: two JSON events, as ccdc wrote them.
        let stored: &[u8] = &[
            0, 0, 0, 2, 18, 0, 0, 0, 240, 3, 0, 0, 0, 5, 123, 34, 97, 34, 125, 0, 0, 0, 5, 123, 34,
            98, 34, 125,
        ];
        assert_eq!(count(stored), Some(2));
        let got: Vec<Vec<u8>> = decode(stored)
            .unwrap()
            .events()
            .map(|r| r.unwrap().1.to_vec())
            .collect();
        assert_eq!(got, [br#"{"a"}"#.to_vec(), br#"{"b"}"#.to_vec()]);
        assert_eq!(encode(&got), stored, "the layout this build writes");
    }

    #[test]
    fn an_outbox_written_by_the_previous_version_drains_after_the_upgrade() {
        use crate::store::outbox::{self, Outbox};
        use crate::store::{id_key, SledStore, Store, SEGMENT_PREFIX};
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<crate::event::Event> = (0..3)
            .map(|i| crate::event::started_for_tests(&format!("id-{i}"), "c1"))
            .collect();
        // What the previous version stored: events as JSON (outbox version 1) in an LZ4 segment.
        let v1: Vec<Vec<u8>> = events
            .iter()
            .map(|e| [vec![outbox::JSON_VERSION], serde_json::to_vec(e).unwrap()].concat())
            .collect();
        {
            let db = sled::open(dir.path()).unwrap();
            let tree = db.open_tree("state").unwrap();
            tree.insert(&id_key(SEGMENT_PREFIX, 7)[..], encode(&v1))
                .unwrap();
            db.flush().unwrap();
        }
        let store: std::sync::Arc<dyn Store> =
            std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
        assert_eq!(store.outbox_len(), 3);
        // New events go after them, in the new layout.
        store
            .commit(
                vec![],
                vec![outbox::encode(&crate::event::started_for_tests(
                    "id-3", "c1",
                ))],
            )
            .unwrap();
        let outbox = Outbox::new(store.clone());
        let read = outbox.read_after(None, 10).unwrap();
        let got: Vec<_> = read
            .iter()
            .map(|(_, e)| e.as_ref().unwrap().clone())
            .collect();
        assert_eq!(got[..3], events[..]);
        assert_eq!(got.len(), 4);
        outbox
            .acknowledge(&read.iter().map(|(s, _)| *s).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(store.outbox_len(), 0);
        assert!(outbox.read_after(None, 10).unwrap().is_empty());
    }

    #[test]
    fn sequence_numbers_order_by_segment_then_index() {
        assert!(seq(7, 1023) < seq(8, 0));
        assert_eq!(split(seq(123_456, 42)), (123_456, 42));
        let mut bm = Vec::new();
        assert!(set(&mut bm, 9) && !set(&mut bm, 9) && set(&mut bm, 0));
        assert!(is_set(&bm, 9) && is_set(&bm, 0) && !is_set(&bm, 1) && !is_set(&bm, 100));
        assert_eq!(ones(&bm), 2);
    }
}
