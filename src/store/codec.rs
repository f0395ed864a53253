//! How feed states are stored: plain serde data as JSON, readable and easy to evolve; large
//! snapshots in a compact binary form ([`BinWriter`], [`BinReader`]).

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

/// A compact binary value: a version byte, then unsigned LEB128 varints, zigzag varints and
/// length-prefixed texts, in an order the caller defines (the snapshot layout,
/// [`super::buckets`]). About a third of the JSON's size and an order of magnitude faster to
/// write and read.
pub struct BinWriter(Vec<u8>);

impl BinWriter {
    /// A value of format `version` (never `{` or `[`: JSON values of earlier formats start so).
    pub fn new(version: u8, capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity + 1);
        out.push(version);
        BinWriter(out)
    }

    pub fn byte(&mut self, b: u8) {
        self.0.push(b);
    }

    pub fn u64(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    pub fn i64(&mut self, v: i64) {
        self.u64(((v << 1) ^ (v >> 63)) as u64);
    }

    pub fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }

    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Reads what [`BinWriter`] wrote; any malformation is [`StoreError::Corrupt`] naming the key.
pub struct BinReader<'a> {
    key: &'a str,
    buf: &'a [u8],
    at: usize,
}

impl<'a> BinReader<'a> {
    /// A reader of `buf` stored under `key`, which must be of format `version`.
    pub fn new(key: &'a str, buf: &'a [u8], version: u8) -> Result<Self, StoreError> {
        let r = BinReader { key, buf, at: 1 };
        match buf.first() {
            Some(v) if *v == version => Ok(r),
            Some(v) => Err(r.corrupt(&format!("format {v}, expected {version}"))),
            None => Err(r.corrupt("empty value")),
        }
    }

    /// A corruption of this value, with `reason` and where the reader is.
    pub fn corrupt(&self, reason: &str) -> StoreError {
        StoreError::Corrupt {
            key: self.key.to_string(),
            reason: format!("{reason} (at byte {} of {})", self.at, self.buf.len()),
        }
    }

    /// Nothing left to read.
    pub fn is_done(&self) -> bool {
        self.at >= self.buf.len()
    }

    pub fn byte(&mut self) -> Result<u8, StoreError> {
        let b = *self
            .buf
            .get(self.at)
            .ok_or_else(|| self.corrupt("truncated"))?;
        self.at += 1;
        Ok(b)
    }

    pub fn u64(&mut self) -> Result<u64, StoreError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.corrupt("varint longer than 64 bits"))
    }

    pub fn i64(&mut self) -> Result<i64, StoreError> {
        let v = self.u64()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    pub fn str(&mut self) -> Result<&'a str, StoreError> {
        let len = usize::try_from(self.u64()?).map_err(|_| self.corrupt("text length"))?;
        let end = self
            .at
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| self.corrupt("text past the end"))?;
        let s = std::str::from_utf8(&self.buf[self.at..end])
            .map_err(|_| self.corrupt("text not UTF-8"))?;
        self.at = end;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_values_round_trip() {
        let mut w = BinWriter::new(7, 0);
        let ints = [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN, 1_795_274_100_000];
        for v in ints {
            w.i64(v);
        }
        w.u64(u64::MAX);
        w.str("");
        w.str("María ☎");
        w.byte(0xfe);
        let bytes = w.finish();
        assert_eq!(bytes[0], 7);
        let mut r = BinReader::new("k", &bytes, 7).unwrap();
        for v in ints {
            assert_eq!(r.i64().unwrap(), v);
        }
        assert_eq!(r.u64().unwrap(), u64::MAX);
        assert_eq!(r.str().unwrap(), "");
        assert_eq!(r.str().unwrap(), "María ☎");
        assert_eq!(r.byte().unwrap(), 0xfe);
        assert!(r.is_done());
    }

    #[test]
    fn malformed_values_are_corrupt_naming_the_key() {
        let e = |buf: &[u8]| -> String {
            let mut r = match BinReader::new("ops/k", buf, 2) {
                Ok(r) => r,
                Err(e) => return e.to_string(),
            };
            r.str().map(|_| ()).unwrap_err().to_string()
        };
        for (buf, why) in [
            (&b""[..], "empty value"),
            (&b"{\"a\":1}"[..], "format 123, expected 2"),
            (&[2, 5, b'a'][..], "text past the end"),
            (&[2, 2, 0xff, 0xfe][..], "not UTF-8"),
            (&[2, 0x80][..], "truncated"),
            (
                &[
                    2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ][..],
                "64 bits",
            ),
        ] {
            let text = e(buf);
            assert!(
                text.contains("ops/k") && text.contains(why),
                "{why}: {text}"
            );
        }
    }
}
