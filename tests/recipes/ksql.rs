//! The ksqlDB recipe against ccdc's schemas: every `CREATE STREAM` / `CREATE TABLE` on a topic
//! reads a default topic, Avro values (columns inferred from the registry) and a plain-string key
//! (`KEY_FORMAT = 'KAFKA'`, one `VARCHAR` key column); every column a query names is a field of
//! the schema of the stream or table it reads (inferred names are upper case: a bare name matches
//! in any case, a backticked one only in upper case), its key column, or a pseudo column.

use std::collections::HashMap;

use super::sql::{identifiers, options, parenthesized, split_top, statements, unquote};
use super::{fields, name, schema_of_topic};

/// A stream or table declared on a topic: the upper-case names of its schema's fields, its key.
struct Source {
    fields: Vec<String>,
    key: String,
}

const PSEUDO: &[&str] = &[
    "ROWTIME",
    "ROWPARTITION",
    "ROWOFFSET",
    "WINDOWSTART",
    "WINDOWEND",
];

const KEYWORDS: &str = "SELECT FROM WHERE GROUP BY AS AND OR NOT EMIT CHANGES FINAL WINDOW \
    TUMBLING HOPPING SESSION SIZE ADVANCE GRACE PERIOD SECOND SECONDS MINUTE MINUTES HOUR HOURS \
    DAY DAYS HAVING LIMIT IS NULL TRUE FALSE IN CASE WHEN THEN ELSE END";

/// A `CREATE STREAM|TABLE name (key …) WITH (…)` on a topic.
fn declare(stmt: &str, table: bool) -> Result<(String, Source, Vec<String>), String> {
    let open = stmt.find('(').ok_or("no columns")?;
    let name_ = unquote(stmt[..open].split_whitespace().last().unwrap_or(""));
    let (cols, after) = parenthesized(stmt, open).ok_or("unbalanced parentheses")?;
    let with = stmt[after..]
        .find('(')
        .map(|i| after + i)
        .ok_or("no WITH")?;
    let (opts, _) = parenthesized(stmt, with).ok_or("unbalanced WITH")?;
    let opts: HashMap<String, String> = options(opts)?
        .into_iter()
        .map(|(k, v)| (k.to_uppercase(), v))
        .collect();
    let at = |m: String| format!("{name_}: {m}");
    let mut p = Vec::new();
    let topic = opts.get("KAFKA_TOPIC").cloned().unwrap_or_default();
    let schema = schema_of_topic(&topic).map_err(at)?;
    for (k, want) in [("KEY_FORMAT", "KAFKA"), ("VALUE_FORMAT", "AVRO")] {
        if !opts.get(k).is_some_and(|v| v.eq_ignore_ascii_case(want)) {
            p.push(at(format!("{k} must be '{want}'")));
        }
    }
    let upper: Vec<String> = fields(&schema)
        .iter()
        .map(|f| name(f).to_uppercase())
        .collect();
    let mut key = None;
    for col in split_top(cols, ',') {
        let words: Vec<String> = col.split_whitespace().map(|w| w.to_uppercase()).collect();
        let c = unquote(col.split_whitespace().next().unwrap_or("")).to_uppercase();
        let marker = if table { "PRIMARY KEY" } else { "KEY" };
        if words.join(" ").ends_with(marker) {
            if !matches!(words.get(1).map(String::as_str), Some("VARCHAR" | "STRING")) {
                p.push(at(format!(
                    "key column {c} must be VARCHAR (keys are plain strings)"
                )));
            }
            key = Some(c);
        } else if !upper.contains(&c) {
            p.push(at(format!(
                "value column {c} is no field of the {topic} schema"
            )));
        }
    }
    let key = key.ok_or_else(|| {
        at(format!(
            "no {} column",
            if table { "PRIMARY KEY" } else { "KEY" }
        ))
    })?;
    Ok((name_.to_uppercase(), Source { fields: upper, key }, p))
}

/// The problems of a query reading one declared source.
fn check_query(stmt: &str, sources: &HashMap<String, Source>, derived: &[String]) -> Vec<String> {
    let ids = identifiers(stmt);
    let from = ids
        .windows(2)
        .find(|w| w[0].text.eq_ignore_ascii_case("FROM"))
        .map(|w| w[1].text.to_uppercase());
    let Some(src) = from.as_ref().and_then(|f| sources.get(f)) else {
        return vec![format!(
            "`{stmt:.60}…` reads {from:?}, no stream or table declared on a topic"
        )];
    };
    let aliases: Vec<String> = ids
        .iter()
        .filter(|i| i.alias)
        .map(|i| i.text.to_uppercase())
        .collect();
    let mut p = Vec::new();
    for id in ids.iter().filter(|i| !i.call && !i.alias) {
        let up = id.text.to_uppercase();
        if id.deref {
            p.push(format!(
                "struct field `{}` (->) is not checked here",
                id.text
            ));
            continue;
        }
        let column = up == src.key || src.fields.contains(&up) || PSEUDO.contains(&up.as_str());
        let ok = if id.quoted {
            (column && id.text == up)
                || sources.contains_key(&id.text)
                || derived.contains(&id.text)
        } else {
            column
                || KEYWORDS.split_whitespace().any(|k| k == up)
                || sources.contains_key(&up)
                || derived.contains(&up)
                || aliases.contains(&up)
        };
        if !ok {
            p.push(format!(
                "`{}` in `{stmt:.60}…` is no column of {}",
                id.text,
                from.clone().unwrap_or_default()
            ));
        }
    }
    p
}

/// Where the `SELECT` of a `CREATE … AS SELECT` starts.
fn as_select(up: &str) -> Option<usize> {
    let sel = up.find("SELECT")?;
    up[..sel].trim_end().ends_with(" AS").then_some(sel)
}

/// Every problem of a ksqlDB file.
pub fn check(text: &str) -> Vec<String> {
    let (mut sources, mut derived, mut p) = (HashMap::new(), Vec::new(), Vec::new());
    for stmt in statements(text) {
        let up = stmt.to_uppercase();
        let create = ["CREATE STREAM", "CREATE TABLE"]
            .iter()
            .find(|c| up.starts_with(*c));
        if up.starts_with("SET ") {
            continue;
        } else if let (Some(c), Some(sel)) = (create, as_select(&up)) {
            let name_ = up[c.len()..sel].trim().trim_end_matches(" AS").trim();
            p.extend(check_query(&stmt[sel..], &sources, &derived));
            derived.push(unquote(name_));
        } else if let Some(c) = create {
            match declare(&stmt, *c == "CREATE TABLE") {
                Ok((n, s, problems)) => {
                    p.extend(problems);
                    sources.insert(n, s);
                }
                Err(e) => p.push(e),
            }
        } else if up.starts_with("SELECT") {
            p.extend(check_query(&stmt, &sources, &derived));
        } else {
            p.push(format!("statement not checked: {stmt:.60}"));
        }
    }
    if sources.is_empty() {
        p.push("no stream or table on a topic".into());
    }
    p
}
