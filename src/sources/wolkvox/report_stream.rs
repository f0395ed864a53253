//! Streaming a report response: the envelope read row by row ([`stream_rows`]; [`body_rows`]
//! finds the rows of a response read whole in place), and a complete window's rows kept until
//! they are committed ([`Spill`]): in memory up to [`SPILL_AT`] bytes of row text (or as much as a
//! response read whole held: [`Spill::keep_in_memory`]), beyond that in an unnamed temporary
//! file, so a response of the vendor's 256 MB is never held in memory; the feed then commits them
//! a chunk at a time.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::PathBuf;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::sources::http::Body;
use crate::sources::SourceError;

/// Stream a Wolkvox envelope, handing each row of `data` to `on_row` as it is parsed (the body is
/// never held whole). Returns `true` when the row count reached `limit` (parsing stops there: the
/// response is assumed truncated). Errors name the JSON path of the problem.
pub fn stream_rows(
    source: &str,
    endpoint: &str,
    body: &mut dyn Read,
    limit: usize,
    on_row: impl FnMut(Box<RawValue>),
) -> Result<bool, SourceError> {
    // A concrete buffered reader: serde_json reads byte by byte, which must not be a virtual call.
    let mut de =
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(64 * 1024, body));
    envelope_rows(source, endpoint, &mut de, limit, on_row)
}

/// [`stream_rows`] of a body read whole ([`Body::Whole`]: parsed in place, each row's text found
/// without going byte by byte through a reader) or streamed.
pub fn body_rows(
    source: &str,
    endpoint: &str,
    body: Body<'_>,
    limit: usize,
    on_row: impl FnMut(Box<RawValue>),
) -> Result<bool, SourceError> {
    match body {
        Body::Whole(bytes) => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            envelope_rows(source, endpoint, &mut de, limit, on_row)
        }
        Body::Stream(r) => stream_rows(source, endpoint, r, limit, on_row),
    }
}

fn envelope_rows<'de, R: serde_json::de::Read<'de>>(
    source: &str,
    endpoint: &str,
    de: &mut serde_json::Deserializer<R>,
    limit: usize,
    on_row: impl FnMut(Box<RawValue>),
) -> Result<bool, SourceError> {
    const OVERFLOW: &str = "\u{0}ccdc-row-limit";
    let mut on_row = on_row;
    let mut head = Head::default();
    let seed = EnvelopeSeed {
        head: &mut head,
        on_row: &mut on_row,
        limit,
        count: 0,
    };
    match seed.deserialize(de) {
        Ok(()) => {}
        Err(e) if e.to_string().starts_with(OVERFLOW) => return Ok(true),
        Err(e) => return Err(SourceError::from_json(source, endpoint, None, e)),
    }
    let env = crate::sources::wolkvox::Envelope::<()> {
        code: head.code,
        error: head.error,
        msg: head.msg,
        data: head.data.then_some(()),
    };
    env.into_data(source, endpoint)?;
    return Ok(false);

    #[derive(Default)]
    struct Head {
        code: Option<String>,
        error: Option<Value>,
        msg: Option<String>,
        data: bool,
    }
    struct EnvelopeSeed<'a, F> {
        head: &'a mut Head,
        on_row: &'a mut F,
        limit: usize,
        count: usize,
    }
    impl<'de, F: FnMut(Box<RawValue>)> DeserializeSeed<'de> for EnvelopeSeed<'_, F> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de, F: FnMut(Box<RawValue>)> Visitor<'de> for EnvelopeSeed<'_, F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a Wolkvox envelope {code, error, msg, data}")
        }
        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
            #[derive(Deserialize)]
            struct Lenient(
                #[serde(deserialize_with = "crate::sources::wolkvox::opt_lenient_string")]
                Option<String>,
            );
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "code" => self.head.code = map.next_value::<Lenient>()?.0,
                    "msg" => self.head.msg = map.next_value::<Lenient>()?.0,
                    "error" => self.head.error = map.next_value()?,
                    "data" => {
                        let rows = RowsSeed {
                            on_row: &mut *self.on_row,
                            limit: self.limit,
                            count: &mut self.count,
                        };
                        self.head.data = map.next_value_seed(rows)?;
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        }
    }
    struct RowsSeed<'a, F> {
        on_row: &'a mut F,
        limit: usize,
        count: &'a mut usize,
    }
    impl<'de, F: FnMut(Box<RawValue>)> DeserializeSeed<'de> for RowsSeed<'_, F> {
        type Value = bool;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de, F: FnMut(Box<RawValue>)> Visitor<'de> for RowsSeed<'_, F> {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of rows or null")
        }
        fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            while let Some(row) = seq.next_element::<Box<RawValue>>()? {
                *self.count += 1;
                if *self.count >= self.limit {
                    return Err(de::Error::custom(OVERFLOW));
                }
                (self.on_row)(row);
            }
            Ok(true)
        }
    }
}

/// Row text kept in memory before the rows move to a file.
pub const SPILL_AT: usize = 4 << 20;

/// A window's rows as they stream in: in memory, then (past [`SPILL_AT`]) in a temporary file in
/// `dir`, unlinked from the start (nothing is left behind, even after a crash).
pub struct Spill {
    dir: PathBuf,
    /// Row text kept in memory before the rows move to a file ([`SPILL_AT`] unless raised).
    spill_at: usize,
    memory: Vec<Box<str>>,
    bytes: usize,
    file: Option<BufWriter<File>>,
    count: usize,
}

impl Spill {
    pub fn new(dir: PathBuf) -> Self {
        Spill {
            dir,
            spill_at: SPILL_AT,
            memory: Vec::new(),
            bytes: 0,
            file: None,
            count: 0,
        }
    }

    /// Keep up to `bytes` of row text in memory (a response already read whole into memory: its
    /// rows take no more than it did).
    pub fn keep_in_memory(&mut self, bytes: usize) {
        self.spill_at = self.spill_at.max(bytes);
    }

    pub fn push(&mut self, row: Box<RawValue>) -> std::io::Result<()> {
        let row: Box<str> = row.into();
        self.count += 1;
        if let Some(f) = &mut self.file {
            return write_row(f, &row);
        }
        self.bytes += row.len();
        self.memory.push(row);
        if self.bytes > self.spill_at {
            let mut f = BufWriter::with_capacity(256 << 10, tempfile::tempfile_in(&self.dir)?);
            // Taken, not drained: the rows and the vector's capacity are released.
            for r in std::mem::take(&mut self.memory) {
                write_row(&mut f, &r)?;
            }
            self.file = Some(f);
        }
        Ok(())
    }

    /// Rows pushed so far.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether the rows went to a file.
    pub fn spilled(&self) -> bool {
        self.file.is_some()
    }

    /// The rows, in the order they were pushed.
    pub fn finish(self) -> std::io::Result<Rows> {
        let file = match self.file {
            None => None,
            Some(f) => {
                let mut f = f.into_inner().map_err(|e| e.into_error())?;
                f.rewind()?;
                Some(BufReader::with_capacity(256 << 10, f))
            }
        };
        Ok(Rows {
            memory: self.memory.into_iter(),
            file,
            left: self.count,
        })
    }
}

fn write_row(f: &mut impl Write, row: &str) -> std::io::Result<()> {
    let len = u32::try_from(row.len()).map_err(std::io::Error::other)?;
    f.write_all(&len.to_le_bytes())?;
    f.write_all(row.as_bytes())
}

/// A window's rows, read back a chunk at a time.
pub struct Rows {
    memory: std::vec::IntoIter<Box<str>>,
    file: Option<BufReader<File>>,
    left: usize,
}

impl Rows {
    /// Rows not read yet.
    pub fn len(&self) -> usize {
        self.left
    }

    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// The next rows: up to `max_rows`, and no more once `max_bytes` of text are taken.
    pub fn chunk(&mut self, max_rows: usize, max_bytes: usize) -> std::io::Result<Vec<Box<str>>> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while self.left > 0 && out.len() < max_rows && bytes < max_bytes {
            let row = match &mut self.file {
                Some(f) => {
                    let mut len = [0u8; 4];
                    f.read_exact(&mut len)?;
                    let mut text = vec![0u8; u32::from_le_bytes(len) as usize];
                    f.read_exact(&mut text)?;
                    String::from_utf8(text)
                        .map_err(std::io::Error::other)?
                        .into_boxed_str()
                }
                None => self
                    .memory
                    .next()
                    .ok_or_else(|| std::io::Error::other("fewer rows than were pushed"))?,
            };
            bytes += row.len();
            self.left -= 1;
            out.push(row);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn stream(body: &str, limit: usize) -> Result<(bool, usize), SourceError> {
        let mut n = 0;
        let overflow = stream_rows("s", "e", &mut body.as_bytes(), limit, |_| n += 1)?;
        // A body read whole gives the same rows, overflow and errors.
        let mut whole = Vec::new();
        let same = body_rows("s", "e", Body::Whole(body.as_bytes()), limit, |r| {
            whole.push(r.get().to_string())
        });
        let mut streamed = Vec::new();
        let again = body_rows("s", "e", Body::Stream(&mut body.as_bytes()), limit, |r| {
            streamed.push(r.get().to_string())
        });
        match (&same, &again) {
            (Ok(a), Ok(b)) => assert_eq!((a, &whole), (b, &streamed)),
            (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind()),
            _ => panic!("whole {same:?} against streamed {again:?}"),
        }
        assert_eq!(whole.len(), n);
        Ok((overflow, n))
    }

    #[test]
    fn rows_stream_one_by_one_and_the_limit_means_truncated() {
        let body = r#"{"code":200,"error":null,"msg":"3 records were found","data":[{"conn_id":"1"},{"conn_id":"2"},{"conn_id":"3"}]}"#;
        assert_eq!(stream(body, 10).unwrap(), (false, 3));
        assert!(
            stream(body, 3).unwrap().0,
            "reaching the limit is an overflow"
        );
        assert!(stream(body, 2).unwrap().0);
    }

    #[test]
    fn envelope_errors_are_reported() {
        assert_eq!(
            stream(r#"{"code":"500","error":"busy","data":null}"#, 10)
                .unwrap_err()
                .kind(),
            "vendor_code"
        );
        // A success without rows, `data` written as null or left out: none.
        for none in [
            r#"{"code":200,"data":null}"#,
            r#"{"code":200,"msg":"0 records were found"}"#,
        ] {
            assert_eq!(stream(none, 10).unwrap(), (false, 0), "{none}");
        }
        assert_eq!(
            stream(r#"{"code":200,"data":[{"conn_id":"1"},"#, 10)
                .unwrap_err()
                .kind(),
            "parse"
        );
        assert_eq!(
            stream(r#"{"data":[],"code":"201"}"#, 10).unwrap(),
            (false, 0),
            "key order does not matter"
        );
    }

    #[test]
    fn rows_come_back_in_order_from_memory_and_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        for (n, spilled) in [(3, false), (60_000, true)] {
            let mut s = Spill::new(dir.path().to_path_buf());
            let row = |i: usize| {
                format!(
                    r#"{{"conn_id":"{i}","comments":"{}"}}"#,
                    "x".repeat(i % 200)
                )
            };
            for i in 0..n {
                s.push(RawValue::from_string(row(i)).unwrap()).unwrap();
            }
            assert_eq!((s.len(), s.spilled()), (n, spilled));
            let mut rows = s.finish().unwrap();
            let mut i = 0;
            while !rows.is_empty() {
                let chunk = rows.chunk(5_000, 1 << 20).unwrap();
                assert!(!chunk.is_empty() && chunk.len() <= 5_000);
                // Row text bounds a chunk too (the last row may cross it).
                assert!(chunk.iter().map(|r| r.len()).sum::<usize>() < (1 << 20) + 300);
                for r in chunk {
                    assert_eq!(&*r, row(i));
                    i += 1;
                }
            }
            assert_eq!(i, n);
            assert!(rows.chunk(10, 10).unwrap().is_empty());
        }
        // The rows of a response read whole stay in memory, as many as it held.
        let mut s = Spill::new(dir.path().to_path_buf());
        s.keep_in_memory(32 << 20);
        for i in 0..60_000 {
            let row = format!(r#"{{"conn_id":"{i}"}}"#);
            s.push(RawValue::from_string(row).unwrap()).unwrap();
        }
        assert!(!s.spilled());
        assert_eq!(
            s.finish().unwrap().chunk(70_000, usize::MAX).unwrap().len(),
            60_000
        );
        // The file is unnamed: nothing is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
