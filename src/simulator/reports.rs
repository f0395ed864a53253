//! Simulated Wolkvox `reports_manager.php?api=chat_1|diagram_9&date_ini=..&date_end=..` (seeds 001–002):
//! rows generated deterministically every `spacing` seconds of local (America/Bogota) time up to now,
//! truncated at the row limit as the vendor does, a 31-day range check, and injectable extra rows
//! (late, changed or malformed).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{Duration, NaiveDateTime, Timelike};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{fault_response, InFlight, Route, SimState};

pub const SIM_TZ: chrono_tz::Tz = chrono_tz::America::Bogota;

pub struct ReportSim {
    /// Seconds between generated rows (on multiples of it since the epoch, local); 0: none.
    pub spacing_s: i64,
    pub row_limit: usize,
    /// Characters of `comments` in each generated chat_1 row (large responses for benchmarks).
    pub padding: usize,
    /// (report, local time, row): rows added on top of the generated ones; a row whose identity
    /// matches a generated one replaces it (added rows may share an identity).
    pub extra: Vec<(String, NaiveDateTime, Map<String, Value>)>,
}

impl Default for ReportSim {
    fn default() -> Self {
        ReportSim {
            spacing_s: 60,
            row_limit: 60_000,
            padding: 0,
            extra: Vec::new(),
        }
    }
}

fn fmt(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The generated row of `report` at local time `t`.
pub fn generated_row(report: &str, t: NaiveDateTime) -> Map<String, Value> {
    let id = t.format("%Y%m%d%H%M%S").to_string();
    let n = (t.minute() + t.second()) as i64;
    let v = match report {
        "diagram_9" => json!({
            "session_id": format!("s-{id}"), "channel": "webchat", "rp_id": "4", "date": fmt(t),
            "customer_name": "Ana", "customer_email": "ana@example.com", "customer_phone": "573001112233",
            "customer_query": "saldo", "routing_answer": "skill 3", "customer_id": "99", "conn_id": format!("d-{id}")
        }),
        _ => json!({
            "conn_id": format!("c-{id}"), "channel": "whatsapp", "date": fmt(t), "customer_name": "Ana",
            "customer_email": "ana@example.com", "customer_phone": "573001112233", "customer_chars": (100 + n).to_string(),
            "agent_id": "1001", "agent_name": "Luis", "agent_chars": (200 + n).to_string(), "time_on_agent": "00:05:10",
            "chat_duration": "420", "cod_act": "7", "description_cod_act": "Sale", "comments": "", "customer_id": "99",
            "skill_id": "3", "ASA": "15", "last_participant_who_spoke": "agent", "extra_field": "", "comment": "",
            "user_id": "u1", "feeling": "positive", "agent_anwers ": n.to_string()
        }),
    };
    v.as_object().cloned().unwrap_or_default()
}

fn identity(report: &str, row: &Map<String, Value>) -> String {
    let get = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match report {
        "diagram_9" => format!("{}/{}", get("session_id"), get("conn_id")),
        _ => get("conn_id"),
    }
}

/// Every row of `report` dated in `[ini, end]` (inclusive, local) and not after `now`, in date order.
pub fn report_rows(
    sim: &ReportSim,
    report: &str,
    ini: NaiveDateTime,
    end: NaiveDateTime,
    now: NaiveDateTime,
) -> Vec<Map<String, Value>> {
    let last = end.min(now);
    let mut rows: Vec<(NaiveDateTime, Map<String, Value>)> = Vec::new();
    // Spacing 0: no generated rows, only the added ones.
    if sim.spacing_s > 0 {
        let spacing = sim.spacing_s;
        let first = ini.and_utc().timestamp().div_euclid(spacing) * spacing;
        let mut t = chrono::DateTime::from_timestamp(first, 0)
            .unwrap_or_default()
            .naive_utc();
        if t < ini {
            t += Duration::seconds(spacing);
        }
        while t <= last {
            let mut row = generated_row(report, t);
            if sim.padding > 0 && report == "chat_1" {
                row.insert("comments".into(), Value::String("x".repeat(sim.padding)));
            }
            rows.push((t, row));
            t += Duration::seconds(spacing);
        }
    }
    // An added row replaces the generated one of its identity; added rows may share one (a chat
    // listed once per agent that handled it).
    let added: Vec<&(String, NaiveDateTime, Map<String, Value>)> = sim
        .extra
        .iter()
        .filter(|(r, at, _)| r == report && *at >= ini && *at <= last)
        .collect();
    let ids: std::collections::HashSet<String> = added
        .iter()
        .map(|(_, _, row)| identity(report, row))
        .collect();
    rows.retain(|(_, g)| !ids.contains(&identity(report, g)));
    rows.extend(added.into_iter().map(|(_, at, row)| (*at, row.clone())));
    rows.sort_by_key(|(at, _)| *at);
    rows.into_iter().map(|(_, r)| r).collect()
}

#[derive(Deserialize)]
struct ReportQuery {
    api: Option<String>,
    date_ini: Option<String>,
    date_end: Option<String>,
}

fn envelope(code: &str, error: Option<&str>, data: Value) -> Value {
    let n = data.as_array().map_or(0, |a| a.len());
    json!({"code": code, "error": error, "msg": format!("{n} records were found"), "data": data})
}

async fn reports(
    State(st): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(q): Query<ReportQuery>,
) -> Response {
    let _f = InFlight::enter(&st);
    if headers.get("wolkvox-token").and_then(|v| v.to_str().ok()) != Some(st.token.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(envelope("401", Some("Invalid token"), json!([]))),
        )
            .into_response();
    }
    let report = q.api.unwrap_or_default();
    if !matches!(report.as_str(), "chat_1" | "diagram_9") {
        return Json(envelope("400", Some("Unknown report"), Value::Null)).into_response();
    }
    let parse =
        |s: Option<String>| s.and_then(|s| NaiveDateTime::parse_from_str(&s, "%Y%m%d%H%M%S").ok());
    let (Some(ini), Some(end)) = (parse(q.date_ini), parse(q.date_end)) else {
        return Json(envelope(
            "400",
            Some("date_ini and date_end are YYYYmmddHHiiss"),
            Value::Null,
        ))
        .into_response();
    };
    if end - ini > Duration::days(31) {
        return Json(envelope(
            "400",
            Some("The range of dates cannot exceed 31 days"),
            Value::Null,
        ))
        .into_response();
    }
    let (fault, slow) = st.begin(Route::WolkvoxReports);
    let now = chrono::Utc::now().with_timezone(&SIM_TZ).naive_local();
    let rows = match super::truth::report_rows(&st, &report, ini, end).await {
        Some(rows) => rows,
        None => {
            let g = st.lock();
            let mut rows = report_rows(&g.reports, &report, ini, end, now);
            rows.truncate(g.reports.row_limit);
            rows
        }
    };
    let body = envelope(
        "200",
        None,
        Value::Array(rows.into_iter().map(Value::Object).collect()),
    );
    match fault {
        Some(f) => fault_response(f, &body, slow)
            .await
            .unwrap_or_else(|| Json(body).into_response()),
        None => Json(body).into_response(),
    }
}

pub(crate) fn routes() -> Router<Arc<SimState>> {
    Router::new().route("/api/v2/reports_manager.php", get(reports))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn rows_are_generated_on_the_grid_inclusive_and_not_in_the_future() {
        let sim = ReportSim::default();
        let rows = report_rows(
            &sim,
            "chat_1",
            t("2026-11-01 00:00:30"),
            t("2026-11-01 00:03:00"),
            t("2026-11-30 00:00:00"),
        );
        let ids: Vec<String> = rows.iter().map(|r| identity("chat_1", r)).collect();
        assert_eq!(
            ids,
            vec!["c-20261101000100", "c-20261101000200", "c-20261101000300"]
        );
        assert!(
            report_rows(
                &sim,
                "chat_1",
                t("2026-11-01 00:00:00"),
                t("2026-11-01 01:00:00"),
                t("2026-11-01 00:00:30")
            )
            .len()
                == 1
        );
    }

    #[test]
    fn extra_rows_replace_generated_ones_with_the_same_identity() {
        let mut sim = ReportSim::default();
        let mut changed = generated_row("chat_1", t("2026-11-01 00:01:00"));
        changed.insert("agent_name".into(), json!("Marta"));
        sim.extra
            .push(("chat_1".into(), t("2026-11-01 00:01:00"), changed));
        let rows = report_rows(
            &sim,
            "chat_1",
            t("2026-11-01 00:00:00"),
            t("2026-11-01 00:02:00"),
            t("2026-11-30 00:00:00"),
        );
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1]["agent_name"], json!("Marta"));
    }

    #[test]
    fn spacing_zero_serves_only_the_added_rows() {
        let mut sim = ReportSim {
            spacing_s: 0,
            ..ReportSim::default()
        };
        let midnight = t("2026-12-03 00:00:00");
        sim.extra.push((
            "chat_1".into(),
            t("2026-12-03 00:00:10"),
            generated_row("chat_1", t("2026-12-03 00:00:10")),
        ));
        let rows = report_rows(
            &sim,
            "chat_1",
            midnight,
            t("2026-12-03 01:00:00"),
            midnight + Duration::hours(2),
        );
        let ids: Vec<String> = rows.iter().map(|r| identity("chat_1", r)).collect();
        assert_eq!(ids, vec!["c-20261203000010"]);
    }
}
