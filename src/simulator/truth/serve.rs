//! Serving a [`TruthWorld`] as the Wolkvox endpoints do, and the ccdc configuration that polls it.

use std::sync::Arc;

use chrono::{NaiveDateTime, Utc};
use serde_json::{json, Map, Value};

use super::{Route, SimState, TruthChat, TruthSpec, TruthWorld};
use crate::simulator::reports::{generated_row, SIM_TZ};
use crate::simulator::wolkvox::{agent_row, envelope};

impl TruthSpec {
    /// The ccdc configuration (TOML) of a Wolkvox source `truth-wv` polling this world at
    /// `base_url`: interactions and agents every interval, `chat_1` reconciled; no observability.
    pub fn ccdc_config(&self, base_url: &str, token_file: &str, state_dir: &str) -> String {
        let ms = |v: i64| format!("{}ms", v.max(1));
        let (every, lookback) = (ms(self.interval_ms), self.lookback_ms());
        format!(
            "state_dir = {state_dir:?}\nshutdown_timeout = \"10s\"\noutput = \"stdout\"\n\
             [observability]\nenabled = false\nheartbeat_every_polls = 0\n\
             [[sources]]\nvendor = \"wolkvox\"\nname = \"truth-wv\"\nbase_url = {base_url:?}\n\
             token = {{ file = {token_file:?} }}\ntime_zone = \"{tz}\"\nallow_insecure_http = true\n\
             request_timeout = \"5s\"\n\
             [sources.interactions]\ninterval = \"{every}\"\nmax_backoff = \"{every}\"\n\
             [sources.agents]\ninterval = \"{every}\"\nmax_backoff = \"{every}\"\n\
             [[sources.reports]]\nreport = \"chat_1\"\ninterval = \"{report}\"\nmax_backoff = \"{report}\"\n\
             settle_delay = \"{settle}\"\nlookback = \"{lb}\"\nmax_window = \"{window}\"\n\
             min_window = \"1s\"\ndedupe_ttl = \"1h\"\n",
            tz = SIM_TZ.name(),
            report = ms(self.report_interval_ms),
            settle = ms(self.settle_ms),
            lb = ms(lookback),
            window = ms((lookback / 3).max(5_000) / 1000 * 1000),
        )
    }
}

/// `HH:MM:SS` of a number of seconds.
fn clock(s: i64) -> String {
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

impl TruthWorld {
    /// `api=agents` rows at `t`: status, and `time_state_now` = whole seconds in it.
    fn agent_rows(&self, t: i64) -> Vec<Value> {
        self.truth
            .interactions_at(t)
            .iter()
            .map(|a| {
                let mut row = agent_row(a);
                let since = self.truth.status_at(&a.agent_id, t).map_or(t, |c| c.at_ms);
                row["time_state_now"] = json!(((t - since) / 1000).to_string());
                row
            })
            .collect()
    }

    /// The `chat_1` row of `chat`, on the shape of the simulator's generated rows.
    pub(super) fn chat_row(chat: &TruthChat) -> Map<String, Value> {
        let mut row = generated_row("chat_1", chat.local_start());
        let last = chat.segments.last().map_or(0, |s| s.duration_ms() / 1000);
        for (k, v) in [
            ("conn_id", chat.conn_id.clone()),
            ("agent_id", chat.last_agent().to_string()),
            ("agent_name", format!("Agent {}", chat.last_agent())),
            ("customer_name", chat.fromname.clone()),
            ("chat_duration", chat.report_duration_s().to_string()),
            ("time_on_agent", clock(last)),
            ("ASA", "0".into()),
        ] {
            row.insert(k.into(), Value::String(v));
        }
        row
    }
}

fn world(st: &SimState) -> Option<Arc<TruthWorld>> {
    st.lock().truth.clone()
}

/// The `real_time.php` envelope of the truth at this instant (`None` outside the truth mode).
pub(crate) fn real_time(st: &SimState, route: Route) -> Option<Value> {
    let world = world(st)?;
    let now = Utc::now().timestamp_millis();
    let data = match route {
        Route::WolkvoxInteractions => {
            serde_json::to_value(world.truth.interactions_at(now)).ok()?
        }
        Route::WolkvoxAgents => Value::Array(world.agent_rows(now)),
        _ => return None,
    };
    world.log(route, now, None, Vec::new());
    Some(envelope("200", None, data))
}

/// The rows of `report` in `[ini, end]` after the world's report latency (`None` outside the
/// truth mode; the truth has no `diagram_9` sessions).
pub(crate) async fn report_rows(
    st: &SimState,
    report: &str,
    ini: NaiveDateTime,
    end: NaiveDateTime,
) -> Option<Vec<Map<String, Value>>> {
    let world = world(st)?;
    if world.spec.report_latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(
            world.spec.report_latency_ms,
        ))
        .await;
    }
    if report != "chat_1" {
        return Some(Vec::new());
    }
    let now = Utc::now().timestamp_millis();
    let chats = world.truth.report_at(ini, end, now);
    world.log(
        Route::WolkvoxReports,
        now,
        Some((ini, end)),
        chats.iter().map(|c| c.conn_id.clone()).collect(),
    );
    Some(chats.into_iter().map(TruthWorld::chat_row).collect())
}
