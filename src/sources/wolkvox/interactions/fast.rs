//! A fast reader for the shape an interactions response nearly always has: a successful
//! envelope, agent rows of `agent_id` and `active_interactions`, interactions of `conn_id`,
//! `subject`, `fromname` and `date`, every value a string without escapes (or `null`; an agent
//! id may be a plain number).
//!
//! It accepts a strict subset of what the serde decoder ([`super::wire`]) accepts and reads it
//! the same way, charging the poll's bound in the same order; anything else — an escape, another
//! field, a number where it expects text, a repeated field, an empty id, an error code, a syntax
//! error — makes it give up, and the caller decodes the body with serde instead, which gives the
//! same result or the error to report. Decoding a 60,000-interaction body through serde's visitors
//! was the largest part of a steady P1 cycle (BENCHMARKS.md); the tests compare both readers.

use crate::diff::snapshot::{Builder, Span, ENTRY_BYTES};
use crate::sources::bound;

/// How a fast read ended.
pub enum Scan {
    /// The whole body was read into the builder (the envelope said success); `rows` agent rows.
    Done { rows: usize },
    /// Not the usual shape: decode with serde.
    GiveUp,
    /// The poll's bound is exceeded (the tally says which).
    Over,
}

/// Read `text` (a whole response body) into `b`.
pub fn scan(text: &str, b: &mut Builder) -> Scan {
    let mut r = Reader {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    // What follows the document is not read, as serde's readers do not.
    let mut rows = 0;
    match r.envelope(b, &mut rows) {
        Some(true) => Scan::Done { rows },
        Some(false) => Scan::Over,
        None => Scan::GiveUp,
    }
}

/// The position of the first quote, backslash or control character in `bytes`, eight bytes at a
/// time (a zero byte of `w ^ c` or a byte of `w` below 0x20 sets its high bit in the mask; the
/// lowest set bit is the first such byte, whatever the borrows do above it).
fn special(bytes: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(LO) & !v;
    let mut chunks = bytes.chunks_exact(8);
    for (n, chunk) in chunks.by_ref().enumerate() {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let found = (zero(w ^ (LO * u64::from(b'"')))
            | zero(w ^ (LO * u64::from(b'\\')))
            | (w.wrapping_sub(LO * 0x20) & !w))
            & HI;
        if found != 0 {
            return Some(n * 8 + (found.trailing_zeros() / 8) as usize);
        }
    }
    let rest = chunks.remainder();
    let at = bytes.len() - rest.len();
    rest.iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| at + p)
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

/// A value the reader met.
enum Value<'a> {
    Text(&'a str),
    Null,
}

impl<'a> Reader<'a> {
    fn ws(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.at += 1;
        }
    }

    /// Whitespace, then `c`.
    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.bytes.get(self.at) == Some(&c)).then(|| self.at += 1)
    }

    /// Whitespace, then `c` if it is there.
    fn maybe(&mut self, c: u8) -> bool {
        self.eat(c).is_some()
    }

    /// A string without escapes or control characters: its text.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let end = start + special(&self.bytes[start..])?;
        (self.bytes[end] == b'"').then_some(())?;
        self.at = end + 1;
        // Both ends are ASCII quotes: character boundaries of the (valid UTF-8) text.
        self.text.get(start..end)
    }

    /// A string, or `null`.
    fn text_or_null(&mut self) -> Option<Value<'a>> {
        self.ws();
        if self.bytes[self.at..].starts_with(b"null") {
            self.at += 4;
            return Some(Value::Null);
        }
        self.string().map(Value::Text)
    }

    /// The members of an object, `member` reading each value after its key; `None` if it gives up.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.maybe(b'}') {
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            member(self, key)?;
            if !self.maybe(b',') {
                return self.eat(b'}');
            }
        }
    }

    /// The elements of an array, `element` reading each.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.maybe(b']') {
            return Some(());
        }
        loop {
            element(self)?;
            if !self.maybe(b',') {
                return self.eat(b']');
            }
        }
    }

    /// `{code, error, msg, data}` of a successful response: `Some(true)` read whole, `Some(false)`
    /// over the bound, `None` given up.
    /// `rows` counts the rows of `data`.
    fn envelope(&mut self, b: &mut Builder, rows: &mut usize) -> Option<bool> {
        let (mut code, mut error, mut msg, mut data, mut over) =
            (false, false, false, false, false);
        let read = self.object(|r, key| {
            let seen = match key {
                "code" => &mut code,
                "error" => &mut error,
                "msg" => &mut msg,
                "data" => &mut data,
                _ => return None,
            };
            if std::mem::replace(seen, true) {
                return None;
            }
            match key {
                "code" => r.success_code(),
                "data" => r.array(|r| match r.agent(b)? {
                    true => {
                        *rows += 1;
                        Some(())
                    }
                    false => {
                        over = true;
                        None
                    }
                }),
                _ => r.text_or_null().map(|_| ()),
            }
        });
        if over {
            return Some(false);
        }
        read?;
        (code && data).then_some(true)
    }

    /// 200, 201 or 202, as a number or a string.
    fn success_code(&mut self) -> Option<()> {
        self.ws();
        let digits = match self.bytes.get(self.at) {
            Some(b'"') => crate::vendor_time::trim(self.string()?),
            _ => {
                let start = self.at;
                while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
                    self.at += 1;
                }
                self.text.get(start..self.at)?
            }
        };
        matches!(digits, "200" | "201" | "202").then_some(())
    }

    /// An agent's id: a string, or a plain non-negative integer (its digits).
    fn agent_id(&mut self) -> Option<&'a str> {
        self.ws();
        if self.bytes.get(self.at) == Some(&b'"') {
            return self.string().map(crate::vendor_time::trim);
        }
        let start = self.at;
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        let digits = self.text.get(start..self.at)?;
        // What serde reads as a u64 and writes back the same: no leading zero, at most 19 digits
        // (a fraction or an exponent stops here and gives up at the next token).
        let plain = matches!(digits.len(), 1..=19) && (digits == "0" || !digits.starts_with('0'));
        plain.then_some(digits)
    }

    /// One agent row: `Some(true)` read, `Some(false)` over the bound, `None` given up.
    fn agent(&mut self, b: &mut Builder) -> Option<bool> {
        let from = b.len();
        let (mut agent, mut listed, mut over) = (None, false, false);
        let read = self.object(|r, key| match key {
            "agent_id" if agent.is_none() => {
                agent = Some(r.agent_id().filter(|a| !a.is_empty())?);
                Some(())
            }
            "active_interactions" if !listed => {
                listed = true;
                r.array(|r| match r.interaction(b)? {
                    true => Some(()),
                    false => {
                        over = true;
                        None
                    }
                })
            }
            _ => None,
        });
        if over {
            return Some(false);
        }
        read?;
        let agent = agent.filter(|_| listed)?;
        let span = b.text(agent).ok()?;
        // Each interaction was counted as it was read; every one of its events copies the id.
        let copies = (b.len() - from) as u64;
        let bytes = (agent.len() as u64).saturating_mul(copies);
        if bound::charge_bytes::<serde_json::Error>(bytes).is_err() {
            return Some(false);
        }
        b.set_agent(from, span);
        Some(true)
    }

    /// One interaction: `Some(true)` read, `Some(false)` over the bound, `None` given up.
    fn interaction(&mut self, b: &mut Builder) -> Option<bool> {
        let mut texts: [Option<Option<&'a str>>; 4] = [None; 4];
        self.object(|r, key| {
            let slot = match key {
                "conn_id" => 0,
                "subject" => 1,
                "fromname" => 2,
                "date" => 3,
                _ => return None,
            };
            if texts[slot].is_some() {
                return None;
            }
            texts[slot] = Some(match r.text_or_null()? {
                Value::Text(t) => Some(crate::vendor_time::trim(t)).filter(|t| !t.is_empty()),
                Value::Null => None,
            });
            Some(())
        })?;
        let [conn, subject, from_name, date] = texts.map(Option::flatten);
        let conn = b.text(conn?).ok()?;
        let mut values = [Span::NONE; 3];
        for (span, t) in values.iter_mut().zip([subject, from_name, date]) {
            *span = b.opt_text(t).ok()?;
        }
        let [subject, from_name, date] = values;
        let texts: usize = [conn, subject, from_name, date]
            .iter()
            .map(|s| s.text_len())
            .sum();
        if bound::charge::<serde_json::Error>(ENTRY_BYTES + 2 * texts).is_err() {
            return Some(false);
        }
        b.push(conn, Span::NONE, subject, from_name, date);
        Some(true)
    }
}

#[cfg(test)]
mod tests;
