//! A fast reader for the shape report rows nearly always have: one flat JSON object whose values
//! are all strings without escapes (the vendor sends every field as a string).
//!
//! It accepts a strict subset of what `serde_json` accepts and reads it the same way; anything
//! else — an escape, a number, `null`, a nested value, a control character, a repeated field of
//! the row, a syntax error — makes it answer `false`, and the caller reads the row with
//! `serde_json` instead, which gives the same result or the same error as before. Reading a
//! 25-field chat_1 row through serde's derived visitor was about 40 % of the conversion from
//! row text to record (BENCHMARKS.md). The tests check both readers agree on generated rows.

/// Calls `member(key, value)` for every member of the object in `raw`, in order, with both taken
/// from `raw` without their quotes. `member` answers `false` to give up (a repeated field).
/// Answers whether the whole text was read: `false` means "use serde_json", and whatever
/// `member` was told must then be thrown away.
pub fn scan<'a>(raw: &'a str, mut member: impl FnMut(&'a str, &'a str) -> bool) -> bool {
    let b = raw.as_bytes();
    let mut at = ws(b, 0);
    if b.get(at) != Some(&b'{') {
        return false;
    }
    at = ws(b, at + 1);
    if b.get(at) == Some(&b'}') {
        return ws(b, at + 1) == b.len();
    }
    loop {
        let Some((key, next)) = string(raw, at) else {
            return false;
        };
        at = ws(b, next);
        if b.get(at) != Some(&b':') {
            return false;
        }
        at = ws(b, at + 1);
        let Some((value, next)) = string(raw, at) else {
            return false;
        };
        if !member(key, value) {
            return false;
        }
        at = ws(b, next);
        match b.get(at) {
            Some(b',') => at = ws(b, at + 1),
            Some(b'}') => return ws(b, at + 1) == b.len(),
            _ => return false,
        }
    }
}

/// The position of the first byte at or after `at` that is not JSON whitespace.
fn ws(b: &[u8], mut at: usize) -> usize {
    while matches!(b.get(at), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        at += 1;
    }
    at
}

/// A string starting at `at` (its opening quote) without escapes or control characters: its text
/// and the position after its closing quote.
fn string(raw: &str, at: usize) -> Option<(&str, usize)> {
    let b = raw.as_bytes();
    if b.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let len = b
        .get(start..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    let end = start + len;
    if b[end] != b'"' {
        return None;
    }
    // Both ends are ASCII quotes, so on character boundaries.
    Some((raw.get(start..end)?, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(raw: &str) -> Option<Vec<(&str, &str)>> {
        let mut out = Vec::new();
        scan(raw, |k, v| {
            out.push((k, v));
            true
        })
        .then_some(out)
    }

    #[test]
    fn reads_flat_string_objects_with_any_json_whitespace() {
        assert_eq!(members("{}"), Some(vec![]));
        assert_eq!(members(" \n{ \t}\r\n"), Some(vec![]));
        assert_eq!(
            members(r#"{"a":"1","b c":" x ","":"ü😀"}"#),
            Some(vec![("a", "1"), ("b c", " x "), ("", "ü😀")])
        );
        assert_eq!(
            members("{ \"a\" :\n\"1\" , \"a\"\t:\"2\" }"),
            Some(vec![("a", "1"), ("a", "2")])
        );
    }

    #[test]
    fn gives_up_on_anything_else() {
        for raw in [
            "",
            "[]",
            "{",
            r#"{"a":"1""#,
            r#"{"a":"1",}"#,
            r#"{"a":"1"} x"#,
            r#"{"a":"1"}{}"#,
            r#"{"a":1}"#,
            r#"{"a":null}"#,
            r#"{"a":{"b":"c"}}"#,
            r#"{"a":["b"]}"#,
            r#"{"a":"x\"y"}"#,
            r#"{"a\u0062":"1"}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a" "1"}"#,
            r#"{"a":"1" "b":"2"}"#,
            "\u{a0}{}",
        ] {
            assert_eq!(members(raw), None, "{raw}");
        }
        assert!(!scan(r#"{"a":"1","b":"2"}"#, |k, _| k != "b"));
    }
}
