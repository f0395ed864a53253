//! Just enough SQL lexing for the recipes: statements, top-level lists, `WITH` options and the
//! identifiers a query names. String literals (`'…'`, `''` an escaped quote) and quoted
//! identifiers (`` `…` ``) are kept whole; `--` comments are dropped.

/// The statements of a file, comments removed, each trimmed, empty ones dropped.
pub fn statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '`' => {
                quote = Some(c);
                cur.push(c);
            }
            None if c == '-' && chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        cur.push('\n');
                        break;
                    }
                }
            }
            None if c == ';' => out.push(std::mem::take(&mut cur)),
            None => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `s` split at `sep` outside quotes and brackets (`()` and `<>`), each part trimmed.
pub fn split_top(s: &str, sep: char) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quote) = (Vec::new(), String::new(), 0i32, None);
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '`' => quote = Some(c),
            None if c == '(' || c == '<' => depth += 1,
            None if c == ')' || c == '>' => depth -= 1,
            None if c == sep && depth == 0 => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            None => {}
        }
        cur.push(c);
    }
    out.push(cur.trim().to_string());
    out.into_iter().filter(|p| !p.is_empty()).collect()
}

/// The text inside the parentheses that open at byte `open` of `s`, and the byte after the closing one.
pub fn parenthesized(s: &str, open: usize) -> Option<(&str, usize)> {
    let (mut depth, mut quote) = (0, None);
    for (i, c) in s.char_indices().skip_while(|(i, _)| *i < open) {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '`' => quote = Some(c),
            None if c == '(' => depth += 1,
            None if c == ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some((&s[open + 1..i], i + 1));
                }
            }
            None => {}
        }
    }
    None
}

/// A string literal's text (`'it''s'` → `it's`), or the word as it is.
pub fn unquote(s: &str) -> String {
    let s = s.trim();
    match s.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
        Some(inner) => inner.replace("''", "'"),
        None => s.trim_matches('`').to_string(),
    }
}

/// `key = value` options of a `WITH (…)` list, keys and values unquoted.
pub fn options(body: &str) -> Result<Vec<(String, String)>, String> {
    split_top(body, ',')
        .into_iter()
        .map(|o| {
            let (k, v) =
                split_once_top(&o, '=').ok_or_else(|| format!("not `key = value`: {o}"))?;
            Ok((unquote(k), unquote(v)))
        })
        .collect()
}

fn split_once_top(s: &str, sep: char) -> Option<(&str, &str)> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '`' => quote = Some(c),
            None if c == sep => return Some((&s[..i], &s[i + 1..])),
            None => {}
        }
    }
    None
}

/// One identifier a statement names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub text: String,
    /// Written in backticks (case kept).
    pub quoted: bool,
    /// Followed by `(`: a function, not a column.
    pub call: bool,
    /// Follows `AS`: an alias.
    pub alias: bool,
    /// Follows `->`: a field of a struct.
    pub deref: bool,
}

/// Every identifier of a statement, in order (string literals and numbers skipped).
pub fn identifiers(stmt: &str) -> Vec<Ident> {
    let chars: Vec<char> = stmt.chars().collect();
    let (mut out, mut i) = (Vec::<Ident>::new(), 0);
    let mut prev_word = String::new();
    let mut prev_arrow = false;
    while i < chars.len() {
        let c = chars[i];
        let (text, quoted, end) = if c == '\'' {
            let end = (i + 1..chars.len())
                .find(|&j| chars[j] == '\'')
                .unwrap_or(chars.len());
            i = end + 1;
            prev_arrow = false;
            continue;
        } else if c == '`' {
            let end = (i + 1..chars.len())
                .find(|&j| chars[j] == '`')
                .unwrap_or(chars.len());
            (chars[i + 1..end].iter().collect::<String>(), true, end + 1)
        } else if c.is_ascii_alphabetic() || c == '_' {
            let end = (i..chars.len())
                .find(|&j| !(chars[j].is_ascii_alphanumeric() || chars[j] == '_'))
                .unwrap_or(chars.len());
            (chars[i..end].iter().collect::<String>(), false, end)
        } else if c.is_ascii_digit() {
            let end = (i..chars.len())
                .find(|&j| !chars[j].is_ascii_alphanumeric())
                .unwrap_or(chars.len());
            i = end;
            prev_arrow = false;
            continue;
        } else {
            prev_arrow = c == '>' && i > 0 && chars[i - 1] == '-';
            i += 1;
            continue;
        };
        let next = (end..chars.len()).find(|&j| !chars[j].is_whitespace());
        out.push(Ident {
            call: !quoted && next.is_some_and(|j| chars[j] == '('),
            alias: prev_word.eq_ignore_ascii_case("AS"),
            deref: prev_arrow,
            text: text.clone(),
            quoted,
        });
        prev_word = if quoted { String::new() } else { text };
        prev_arrow = false;
        i = end;
    }
    out
}

/// `s` with backticks dropped and white space normalised, for comparing type texts.
pub fn normalize_type(s: &str) -> String {
    let s: String = s.replace('`', "");
    let words = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::new();
    for c in words.chars() {
        if c == ' ' && out.ends_with(['<', '(', ',']) {
            continue;
        }
        if matches!(c, '<' | '>' | '(' | ')' | ',') && out.ends_with(' ') {
            out.pop();
        }
        out.push(c);
    }
    out
}
