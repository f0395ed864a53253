//! The Flink SQL recipe against ccdc's schemas: each `CREATE TABLE` reads a default topic with the
//! `avro-confluent` format and passes the topic's writer schema in `avro-confluent.schema`, so its
//! value columns must be exactly what Flink derives from that schema (the format refuses the
//! option otherwise): every field, in order, with the type `AvroSchemaConverter` gives it. Queries
//! may only name declared columns.

use std::collections::HashMap;

use serde_json::Value;

use super::sql::{
    identifiers, normalize_type, options, parenthesized, split_top, statements, unquote,
};
use super::{fields, name, schema_of_topic, without_docs};

/// The Flink type `avro-confluent` derives for an Avro type (Flink's `AvroSchemaConverter`, with
/// its default timestamp mapping): `timestamp-millis` is `TIMESTAMP(3)`, enums and uuids are
/// `STRING`, and only a union with null is nullable.
pub fn flink_type(t: &Value, named: &mut HashMap<String, Value>) -> Result<String, String> {
    let nn = |s: &str| format!("{s} NOT NULL");
    match t {
        Value::String(p) => Ok(match p.as_str() {
            "string" => nn("STRING"),
            "long" => nn("BIGINT"),
            "int" => nn("INT"),
            "boolean" => nn("BOOLEAN"),
            "double" => nn("DOUBLE"),
            "float" => nn("FLOAT"),
            "bytes" => nn("BYTES"),
            other => {
                let def = named.get(other).cloned();
                return flink_type(&def.ok_or(format!("unknown Avro type {other}"))?, named);
            }
        }),
        Value::Array(u) => match u.as_slice() {
            [Value::String(n), x] | [x, Value::String(n)] if n == "null" => {
                let inner = flink_type(x, named)?;
                Ok(inner
                    .strip_suffix(" NOT NULL")
                    .unwrap_or(&inner)
                    .to_string())
            }
            _ => Err(format!("union {t} has no Flink type")),
        },
        Value::Object(o) => {
            if let Some(n) = o.get("name").and_then(Value::as_str) {
                named.insert(n.to_string(), t.clone());
                if let Some(ns) = o.get("namespace").and_then(Value::as_str) {
                    named.insert(format!("{ns}.{n}"), t.clone());
                }
            }
            let logical = o.get("logicalType").and_then(Value::as_str);
            match (o["type"].as_str(), logical) {
                (Some("record"), _) => {
                    let fs: Result<Vec<String>, String> = fields(t)
                        .iter()
                        .map(|f| Ok(format!("{} {}", name(f), flink_type(&f["type"], named)?)))
                        .collect();
                    Ok(nn(&format!("ROW<{}>", fs?.join(", "))))
                }
                (Some("enum"), _) => Ok(nn("STRING")),
                (Some("array"), _) => {
                    Ok(nn(&format!("ARRAY<{}>", flink_type(&o["items"], named)?)))
                }
                (Some("map"), _) => Ok(nn(&format!(
                    "MAP<STRING NOT NULL, {}>",
                    flink_type(&o["values"], named)?
                ))),
                (Some("long"), Some("timestamp-millis")) => Ok(nn("TIMESTAMP(3)")),
                (Some("long"), Some("timestamp-micros")) => Ok(nn("TIMESTAMP(6)")),
                (Some("int"), Some("date")) => Ok(nn("DATE")),
                _ => flink_type(&o["type"], named),
            }
        }
        _ => Err(format!("{t} is no Avro type")),
    }
}

#[derive(Debug)]
enum Kind {
    Physical(String),
    Metadata { ty: String, key: String },
    Computed,
}

#[derive(Debug)]
pub struct Table {
    pub name: String,
    columns: Vec<(String, Kind)>,
    primary_key: Vec<String>,
    watermark: Option<String>,
    options: Vec<(String, String)>,
}

impl Table {
    fn opt(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn column(&self, n: &str) -> Option<&Kind> {
        self.columns.iter().find(|(c, _)| c == n).map(|(_, k)| k)
    }
}

/// A `CREATE TABLE` statement.
pub fn parse_table(stmt: &str) -> Result<Table, String> {
    let head = stmt.get(..12).unwrap_or("");
    if !head.eq_ignore_ascii_case("CREATE TABLE") {
        return Err(format!("not a CREATE TABLE: {stmt:.40}"));
    }
    let open = stmt.find('(').ok_or("CREATE TABLE without columns")?;
    let name = unquote(&stmt[12..open]);
    let (body, after) = parenthesized(stmt, open).ok_or("unbalanced parentheses")?;
    let with = stmt[after..]
        .find('(')
        .map(|i| after + i)
        .ok_or("no WITH options")?;
    let (opts, _) = parenthesized(stmt, with).ok_or("unbalanced WITH")?;
    let mut t = Table {
        name,
        columns: Vec::new(),
        primary_key: Vec::new(),
        watermark: None,
        options: options(opts)?,
    };
    for el in split_top(body, ',') {
        let up = el.to_uppercase();
        if up.starts_with("WATERMARK") {
            t.watermark = el.split_whitespace().nth(2).map(unquote);
        } else if up.starts_with("PRIMARY KEY") {
            let open = el.find('(').ok_or("PRIMARY KEY without columns")?;
            let (cols, _) = parenthesized(&el, open).ok_or("unbalanced PRIMARY KEY")?;
            t.primary_key = split_top(cols, ',').iter().map(|c| unquote(c)).collect();
        } else {
            let end = match el.strip_prefix('`') {
                Some(rest) => rest.find('`').map(|i| i + 2),
                None => el.find(char::is_whitespace),
            }
            .ok_or(format!("column without a type: {el}"))?;
            let (col, rest) = (unquote(&el[..end]), el[end..].trim());
            let rest_up = rest.to_uppercase();
            let kind = if rest_up.starts_with("AS ") {
                Kind::Computed
            } else if let Some(i) = rest_up.find(" METADATA") {
                let key = rest_up[i..].find(" FROM ").map(|j| &rest[i + j + 6..]);
                let key = key.and_then(|k| k.split_whitespace().next()).map(unquote);
                Kind::Metadata {
                    ty: rest[..i].to_string(),
                    key: key.unwrap_or(col.clone()),
                }
            } else {
                Kind::Physical(rest.to_string())
            };
            t.columns.push((col, kind));
        }
    }
    Ok(t)
}

/// The Kafka connector's readable metadata and their types.
const METADATA: &[(&str, &str)] = &[
    ("timestamp", "TIMESTAMP_LTZ(3)"),
    ("timestamp-type", "STRING"),
    ("partition", "INT"),
    ("offset", "BIGINT"),
    ("topic", "STRING"),
    ("headers", "MAP<STRING,BYTES>"),
    ("leader-epoch", "INT"),
];

fn base_type(ty: &str) -> String {
    let t = normalize_type(ty);
    t.strip_suffix(" NOT NULL").unwrap_or(&t).to_string()
}

/// The problems of one table: its topic, formats, key, value columns, schema option, watermark.
pub fn check_table(t: &Table) -> Vec<String> {
    let topic = t.opt("topic").unwrap_or("");
    let problems = match schema_of_topic(topic) {
        Err(e) => vec![e],
        Ok(schema) => {
            let (mut p, keys) = check_formats(t);
            p.extend(check_value_columns(t, &keys, topic, &schema));
            p.extend(check_schema_option(t, topic, &schema));
            p.extend(check_other_columns(t));
            p
        }
    };
    problems
        .into_iter()
        .map(|m| format!("table {}: {m}", t.name))
        .collect()
}

/// The value options' prefix: `value.` when the table names a key format.
fn value_prefix(t: &Table) -> &'static str {
    if t.opt("value.format").is_some() {
        "value."
    } else {
        ""
    }
}

/// Connector, value format and registry, and the key: its columns and their problems.
fn check_formats(t: &Table) -> (Vec<String>, Vec<String>) {
    let mut p = Vec::new();
    let connector = t.opt("connector").unwrap_or("");
    if !matches!(connector, "kafka" | "upsert-kafka") {
        p.push(format!(
            "connector `{connector}` is not kafka or upsert-kafka"
        ));
    }
    let prefix = value_prefix(t);
    if t.opt(&format!("{prefix}format")) != Some("avro-confluent") {
        p.push("the value format is not avro-confluent".into());
    }
    if t.opt(&format!("{prefix}avro-confluent.url")).is_none() {
        p.push("no avro-confluent.url (the registry)".into());
    }
    let keys: Vec<String> = match (connector, t.opt("key.fields")) {
        ("upsert-kafka", _) => t.primary_key.clone(),
        (_, Some(k)) => k.split(';').map(str::to_string).collect(),
        _ => Vec::new(),
    };
    if !keys.is_empty() {
        if t.opt("key.format") != Some("raw") {
            p.push("ccdc's keys are plain strings: key.format must be raw".into());
        }
        if t.opt("value.fields-include") != Some("EXCEPT_KEY") {
            p.push("the key is no value field: value.fields-include must be EXCEPT_KEY".into());
        }
    }
    for k in &keys {
        match t.column(k) {
            Some(Kind::Physical(ty)) if base_type(ty) == "STRING" => {}
            _ => p.push(format!("key column `{k}` is not a STRING column")),
        }
    }
    (p, keys)
}

/// The value columns must be the schema's fields, in order, each with the type Flink derives.
fn check_value_columns(t: &Table, keys: &[String], topic: &str, schema: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let value: Vec<(&str, &str)> = t
        .columns
        .iter()
        .filter_map(|(c, k)| match k {
            Kind::Physical(ty) if !keys.contains(c) => Some((c.as_str(), ty.as_str())),
            _ => None,
        })
        .collect();
    let want: Vec<&str> = fields(schema).iter().map(name).collect();
    let have: Vec<&str> = value.iter().map(|(c, _)| *c).collect();
    for c in have.iter().filter(|c| !want.contains(c)) {
        p.push(format!(
            "column `{c}` is no field of the {topic} schema ({want:?})"
        ));
    }
    for f in want.iter().filter(|f| !have.contains(f)) {
        p.push(format!(
            "field `{f}` of the {topic} schema has no column (all are needed)"
        ));
    }
    if p.is_empty() && have != want {
        p.push(format!(
            "columns {have:?} are not in the schema's order {want:?}"
        ));
    }
    let mut named = HashMap::new();
    for f in fields(schema) {
        let expect = flink_type(&f["type"], &mut named);
        let Some((c, ty)) = value.iter().find(|(c, _)| *c == name(f)) else {
            continue;
        };
        match expect {
            Ok(e) if normalize_type(ty) == normalize_type(&e) => {}
            Ok(e) => p.push(format!(
                "column `{c}` is declared `{ty}`; its Avro type reads as `{e}`"
            )),
            Err(e) => p.push(format!("field `{c}`: {e}")),
        }
    }
    p
}

/// `avro-confluent.schema` must be the topic's writer schema (docs aside).
fn check_schema_option(t: &Table, topic: &str, schema: &Value) -> Vec<String> {
    let option = t.opt(&format!("{}avro-confluent.schema", value_prefix(t)));
    match option.map(serde_json::from_str::<Value>) {
        None => vec!["no avro-confluent.schema: Flink could not read the Avro enums".into()],
        Some(Err(e)) => vec![format!("avro-confluent.schema is no JSON: {e}")],
        Some(Ok(s)) if without_docs(&s) != without_docs(schema) => {
            vec![format!(
                "avro-confluent.schema is not ccdc's writer schema of {topic}"
            )]
        }
        Some(Ok(_)) => Vec::new(),
    }
}

/// Metadata columns read real Kafka metadata with its type; the watermark is on a timestamp.
fn check_other_columns(t: &Table) -> Vec<String> {
    let mut p = Vec::new();
    for (c, k) in &t.columns {
        match k {
            Kind::Metadata { ty, key } => match METADATA.iter().find(|(m, _)| m == key) {
                Some((_, mt)) if base_type(ty) == *mt => {}
                _ => p.push(format!(
                    "metadata column `{c}`: `{key}` is no Kafka metadata of type {ty}"
                )),
            },
            Kind::Computed => p.push(format!("computed column `{c}` is not checked here")),
            Kind::Physical(_) => {}
        }
    }
    if let Some(w) = &t.watermark {
        let ty = match t.column(w) {
            Some(Kind::Physical(ty) | Kind::Metadata { ty, .. }) => base_type(ty),
            _ => String::new(),
        };
        if ty != "TIMESTAMP(3)" && ty != "TIMESTAMP_LTZ(3)" {
            p.push(format!(
                "watermark column `{w}` is no TIMESTAMP(3) / TIMESTAMP_LTZ(3) column"
            ));
        }
    }
    p
}

/// Words a query may use besides columns, tables and aliases.
const KEYWORDS: &str = "SELECT FROM WHERE GROUP BY AS AND OR NOT TABLE DESCRIPTOR INTERVAL \
    SECOND SECONDS MINUTE MINUTES HOUR HOURS DAY DAYS DISTINCT HAVING ORDER LIMIT IS NULL TRUE \
    FALSE IN CASE WHEN THEN ELSE END ON JOIN LEFT INNER ASC DESC";

fn is_keyword(word: &str) -> bool {
    KEYWORDS
        .split_whitespace()
        .any(|k| k.eq_ignore_ascii_case(word))
}

/// The problems of a query: a name that is no column, table, alias or keyword.
pub fn check_query(stmt: &str, tables: &[Table]) -> Vec<String> {
    let ids = identifiers(stmt);
    let aliases: Vec<&str> = ids
        .iter()
        .filter(|i| i.alias)
        .map(|i| i.text.as_str())
        .collect();
    let is_column = |n: &str| {
        ["window_start", "window_end", "window_time"].contains(&n)
            || tables.iter().any(|t| t.column(n).is_some())
    };
    let is_table = |n: &str| tables.iter().any(|t| t.name == n);
    let mut p = Vec::new();
    for id in ids.iter().filter(|i| !i.call && !i.alias) {
        let n = id.text.as_str();
        let known =
            is_column(n) || is_table(n) || aliases.contains(&n) || (!id.quoted && is_keyword(n));
        if !known {
            p.push(format!(
                "`{n}` in `{stmt:.60}…` is no column of the tables declared here"
            ));
        }
    }
    p
}

/// Every problem of a Flink SQL file.
pub fn check(text: &str) -> Vec<String> {
    let (mut tables, mut p) = (Vec::new(), Vec::new());
    for stmt in statements(text) {
        let up = stmt.to_uppercase();
        if up.starts_with("SET ") {
            continue;
        } else if up.starts_with("CREATE TABLE") {
            match parse_table(&stmt) {
                Ok(t) => {
                    p.extend(check_table(&t));
                    tables.push(t);
                }
                Err(e) => p.push(e),
            }
        } else if up.starts_with("SELECT") || up.starts_with("INSERT") {
            p.extend(check_query(&stmt, &tables));
        } else {
            p.push(format!("statement not checked: {stmt:.60}"));
        }
    }
    if tables.is_empty() {
        p.push("no CREATE TABLE".into());
    }
    p
}
