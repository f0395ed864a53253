//! ccdc's output scored against a [`TruthWorld`]: precision (every event names something that truly
//! happened, with time bounds that hold the true moment), recall (what polling should have seen),
//! reconciliation (every reported chat, with the report's duration), and timing errors.
//!
//! Precision is checked twice. ccdc stamps a Wolkvox poll when the answer's headers arrive (before
//! the redesign: before the request and the wait for the token's limiter, up to a slow report
//! call earlier), while the vendor reads its state when it answers: the **strict** check takes
//! ccdc's stamps at their word; the main check places each poll at the moment the simulator
//! answered it (the last answer of that route at or before the stamp), which is what ccdc actually
//! saw. Strict violations that the main check does not have are the request's own latency.

use std::collections::{BTreeSet, HashMap, HashSet};

pub use super::observed::{unreconciled, Observed};
use super::{Route, TruthChat, TruthWorld};
use crate::event::reconciled::InteractionReconciled;
use crate::event::{AgentStatusEvent, InteractionEvent, InteractionEventType};

/// Slack for the vendor's whole seconds (`time_state_now`, dates, `chat_duration`).
const SECOND: i64 = 1000;

/// How ccdc did against the truth. Durations in ms; `None`: nothing to measure.
#[derive(Debug, Default)]
pub struct Score {
    /// Distinct events delivered, per stream.
    pub interaction_events: usize,
    pub status_events: usize,
    pub reconciled_records: usize,
    /// One line per event that contradicts what the vendor answered.
    pub violations: Vec<String>,
    /// One line per event that contradicts the truth at ccdc's own stamps.
    pub strict_violations: Vec<String>,
    /// Event ids delivered again with other content.
    pub conflicting_ids: usize,
    /// Segments longer than two intervals inside the observed period, and those without a
    /// `STARTED` and an `ENDED`.
    pub recall_eligible: usize,
    pub recall_missing: Vec<String>,
    /// Eligible segments no interactions answer fell in (the polls slipped): not in `recall_missing`.
    pub recall_unpolled: usize,
    /// The longest time between two interactions answers.
    pub max_answer_gap_ms: i64,
    /// Chats some `chat_1` answer listed, and what is wrong with their reconciliation.
    pub reported: usize,
    /// One line per problem (missing record, wrong duration, start, agent or `seen_realtime`).
    pub reconciliation_problems: Vec<String>,
    /// `in_report = false` records of chats the vendor would have listed at that moment.
    pub false_only_polling: Vec<String>,
    /// `in_report = false` records of chats still going on when reconciled (longer than
    /// `settle_delay`).
    pub premature_only_polling: Vec<String>,
    /// Chats that started and ended inside the observed period; those with a `STARTED`; those
    /// with a `STARTED` or an `in_report` record.
    pub chats: usize,
    pub chats_realtime: usize,
    pub chats_after_reconciliation: usize,
    /// ENDED `duration_ms` against the true segment: all, first segments, transferred-in ones.
    pub ended_mae: Option<f64>,
    pub ended_mae_first: Option<f64>,
    pub ended_mae_transferred_in: Option<f64>,
    /// The mean signed error of first segments' `duration_ms` (> 0: too long).
    pub ended_bias_first: Option<f64>,
    /// True segment durations inside `[duration_min_ms, duration_max_ms]`, of ENDED events.
    pub within_bounds: (usize, usize),
    /// Non-initial `status_since` against the true change.
    pub status_since_mae: Option<f64>,
    /// Status events whose `[status_since_after, status_since_before]` holds the true change
    /// without any slack, of those with bounds.
    pub status_bounds_hold: (usize, usize),
    /// Chat handle time: polling (the last agent's ENDED `duration_ms`, n) and the report's
    /// `report_duration_ms` (n).
    pub handle_mae_polling: (Option<f64>, usize),
    pub handle_mae_report: (Option<f64>, usize),
    /// Answer time − ccdc's stamp over the interactions and agents polls: mean and max.
    pub stamp_lag_ms: (Option<f64>, i64),
}

fn mae(errors: &[i64]) -> Option<f64> {
    (!errors.is_empty())
        .then(|| errors.iter().map(|e| e.abs() as f64).sum::<f64>() / errors.len() as f64)
}

fn mean(errors: &[i64]) -> Option<f64> {
    (!errors.is_empty()).then(|| errors.iter().sum::<i64>() as f64 / errors.len() as f64)
}

fn pct(n: usize, of: usize) -> f64 {
    if of == 0 {
        100.0
    } else {
        100.0 * n as f64 / of as f64
    }
}

impl Score {
    /// Share of events that agree with what the vendor answered (100 with no event).
    pub fn precision(&self) -> f64 {
        let events = self.interaction_events + self.status_events;
        pct(events - self.violations.len().min(events), events)
    }

    /// The same at ccdc's own stamps.
    pub fn strict_precision(&self) -> f64 {
        let events = self.interaction_events + self.status_events;
        pct(events - self.strict_violations.len().min(events), events)
    }

    /// Share of the eligible segments with both events (unpolled ones count as missed).
    pub fn recall(&self) -> f64 {
        let missed = self.recall_missing.len() + self.recall_unpolled;
        pct(
            self.recall_eligible - missed.min(self.recall_eligible),
            self.recall_eligible,
        )
    }

    /// The figures, one per line.
    pub fn report(&self) -> String {
        let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
        [
            format!("events: {} interaction, {} agent-status, {} reconciled; conflicting duplicate ids {}", self.interaction_events, self.status_events, self.reconciled_records, self.conflicting_ids),
            format!("precision {:.2} % ({} violations); at ccdc's own stamps {:.2} % ({}); poll answer − stamp: mean {} ms, max {} ms", self.precision(), self.violations.len(), self.strict_precision(), self.strict_violations.len(), f(self.stamp_lag_ms.0), self.stamp_lag_ms.1),
            format!("recall of segments > 2 intervals: {:.2} % of {} ({} without any poll answer inside: longest gap between answers {} ms)", self.recall(), self.recall_eligible, self.recall_unpolled, self.max_answer_gap_ms),
            format!("chats: {} ; seen by polling {:.1} %, accounted for after reconciliation {:.1} %", self.chats, pct(self.chats_realtime, self.chats), pct(self.chats_after_reconciliation, self.chats)),
            format!("reconciliation: {} reported chats, {} problems, {} false in_report=false, {} in_report=false for chats still going on", self.reported, self.reconciliation_problems.len(), self.false_only_polling.len(), self.premature_only_polling.len()),
            format!("ENDED duration MAE {} ms (first segments {} ms, bias {} ms; transferred-in {} ms); true duration within [min, max]: {:.1} % of {}", f(self.ended_mae), f(self.ended_mae_first), f(self.ended_bias_first), f(self.ended_mae_transferred_in), pct(self.within_bounds.0, self.within_bounds.1), self.within_bounds.1),
            format!("status_since MAE {} ms; true change inside [status_since_after, status_since_before] with no slack: {:.1} % of {}", f(self.status_since_mae), pct(self.status_bounds_hold.0, self.status_bounds_hold.1), self.status_bounds_hold.1),
            format!("chat handle time MAE: polling {} ms over {} chats, report {} ms over {} chats", f(self.handle_mae_polling.0), self.handle_mae_polling.1, f(self.handle_mae_report.0), self.handle_mae_report.1),
        ]
        .join("\n")
    }
}

/// The answer times of one route, to place ccdc's stamps.
struct Answers(Vec<i64>);

impl Answers {
    fn of(world: &TruthWorld, route: Route) -> Answers {
        let mut v: Vec<i64> = world
            .served()
            .iter()
            .filter(|s| s.route == route)
            .map(|s| s.at_ms)
            .collect();
        v.sort_unstable();
        Answers(v)
    }

    /// The answer to the poll stamped `stamp`: ccdc stamps a Wolkvox poll when the answer's
    /// headers arrive, so the last answer at or before it.
    fn to(&self, stamp: i64) -> i64 {
        let i = self.0.partition_point(|&a| a <= stamp);
        i.checked_sub(1)
            .and_then(|i| self.0.get(i))
            .copied()
            .unwrap_or(stamp)
    }
}

/// Why an interaction event contradicts the truth, `at` placing ccdc's stamps. A `STARTED` claims
/// the pair appeared in `(previous_observed_at, observed_at]` (an initial one: active at the poll);
/// `answered`: the poll is placed at the vendor's answer, so the pair must also be active there.
fn check_interaction(
    e: &InteractionEvent,
    chat: Option<&TruthChat>,
    at: &dyn Fn(i64) -> i64,
    answered: bool,
) -> Option<String> {
    let Some(chat) = chat else {
        return Some("no such chat".into());
    };
    let Some(seg) = chat.segment(&e.agent_id) else {
        return Some("never at this agent".into());
    };
    let mut why = Vec::new();
    let t = at(e.observed_at);
    let prev = e.previous_observed_at.map(at);
    match e.event_type {
        InteractionEventType::Started => match prev {
            None if !seg.active_at(t) => why.push("not active at the first poll"),
            Some(p) if !(p < seg.start_ms && seg.start_ms <= t) => {
                why.push("did not start in the window")
            }
            Some(_) if answered && !seg.active_at(t) => why.push("not active at the poll"),
            _ => {}
        },
        InteractionEventType::Ended => {
            let (a, b) = (e.ended_after.map(at), e.ended_before.map(at));
            if !(a.is_none_or(|a| a < seg.end_ms) && b.is_some_and(|b| seg.end_ms <= b)) {
                why.push("true end outside (ended_after, ended_before]");
            }
        }
    }
    if e.transfer {
        let other = e.transfer_agent_id.as_deref().and_then(|o| chat.segment(o));
        let ok = other.is_some_and(|o| match e.event_type {
            InteractionEventType::Started => o.end_ms == seg.start_ms,
            InteractionEventType::Ended => o.start_ms == seg.end_ms,
        });
        if !ok {
            why.push("not a transfer with that agent");
        }
    }
    if e.started_at != Some(chat.start_to_second_ms()) {
        why.push("started_at is not the chat's start");
    }
    (!why.is_empty()).then(|| why.join(", "))
}

/// Why a status event contradicts the truth, `at` placing ccdc's stamps. The true change must lie in
/// `[status_since_after, status_since_before]` give or take the vendor's whole second, plus how much
/// later than its stamp the poll was answered (`time_state_now` counts to the answer).
fn check_status(
    world: &TruthWorld,
    e: &AgentStatusEvent,
    at: &dyn Fn(i64) -> i64,
) -> Option<String> {
    let truth = world.truth();
    let t = at(e.observed_at);
    let Some(now) = truth.status_at(&e.agent_id, t) else {
        return Some("no such agent".into());
    };
    let mut why = Vec::new();
    if now.status != e.status {
        why.push(format!("status is {}", now.status));
    }
    if let Some(p) = e.previous_observed_at.map(at) {
        let before = truth.status_at(&e.agent_id, p).map(|c| c.status.as_str());
        if before != e.previous_status.as_deref() {
            why.push(format!("previous status was {before:?}"));
        }
    }
    let (lo, hi) = (
        e.status_since_after.unwrap_or(i64::MIN),
        e.status_since_before.unwrap_or(i64::MAX),
    );
    let lag = t - e.observed_at;
    if e.status_since.is_some()
        && !(lo.saturating_sub(SECOND) <= now.at_ms && now.at_ms <= hi.saturating_add(SECOND + lag))
    {
        why.push(format!("began at {} outside [{lo}, {hi}] ± 1 s", now.at_ms));
    }
    (!why.is_empty()).then(|| why.join(", "))
}

/// Score `observed` against `world`.
pub fn score(world: &TruthWorld, observed: &Observed) -> Score {
    let truth = world.truth();
    let spec = world.spec();
    let chats: HashMap<&str, &TruthChat> = truth
        .chats
        .iter()
        .map(|c| (c.conn_id.as_str(), c))
        .collect();
    let (ia, aa) = (
        Answers::of(world, Route::WolkvoxInteractions),
        Answers::of(world, Route::WolkvoxAgents),
    );
    let mut s = Score {
        interaction_events: observed.interactions.len(),
        status_events: observed.statuses.len(),
        reconciled_records: observed.reconciled.len(),
        conflicting_ids: observed.conflicting_ids.len(),
        ..Score::default()
    };
    let (answer_i, answer_a) = (|t| ia.to(t), |t| aa.to(t));
    let stamp = |t: i64| t;
    let mut lags = Vec::new();
    for e in &observed.interactions {
        let chat = chats.get(e.interaction_id.as_str()).copied();
        let name = format!(
            "{:?} {}@{} at {}",
            e.event_type, e.interaction_id, e.agent_id, e.observed_at
        );
        if let Some(why) = check_interaction(e, chat, &answer_i, true) {
            s.violations.push(format!("{name}: {why}"));
        }
        if let Some(why) = check_interaction(e, chat, &stamp, false) {
            s.strict_violations.push(format!("{name}: {why}"));
        }
        lags.push(ia.to(e.observed_at) - e.observed_at);
    }
    for e in &observed.statuses {
        let name = format!("{} {} at {}", e.agent_id, e.status, e.observed_at);
        if let Some(why) = check_status(world, e, &answer_a) {
            s.violations.push(format!("{name}: {why}"));
        }
        if let Some(why) = check_status(world, e, &stamp) {
            s.strict_violations.push(format!("{name}: {why}"));
        }
        lags.push(aa.to(e.observed_at) - e.observed_at);
    }
    s.stamp_lag_ms = (mae(&lags), lags.iter().copied().max().unwrap_or(0));

    // Recall and timing of the interaction events.
    let mut by_pair: HashMap<(&str, &str, InteractionEventType), &InteractionEvent> =
        HashMap::new();
    for e in &observed.interactions {
        by_pair
            .entry((e.interaction_id.as_str(), e.agent_id.as_str(), e.event_type))
            .or_insert(e);
    }
    let (first, last) = (
        ia.0.first().copied().unwrap_or(0),
        ia.0.last().copied().unwrap_or(0),
    );
    let i = spec.interval_ms;
    let started: HashSet<&str> = observed
        .interactions
        .iter()
        .filter(|e| e.event_type == InteractionEventType::Started)
        .map(|e| e.interaction_id.as_str())
        .collect();
    let in_report = observed.in_report();
    let (mut all, mut firsts, mut moved, mut handle) = (vec![], vec![], vec![], vec![]);
    for chat in &truth.chats {
        let inside = chat.start_ms >= first && chat.end_ms + 2 * i <= last;
        if inside {
            s.chats += 1;
            s.chats_realtime += usize::from(started.contains(chat.conn_id.as_str()));
            s.chats_after_reconciliation += usize::from(
                started.contains(chat.conn_id.as_str())
                    || in_report.contains(chat.conn_id.as_str()),
            );
        }
        for (n, seg) in chat.segments.iter().enumerate() {
            let key = |ty| by_pair.get(&(chat.conn_id.as_str(), seg.agent_id.as_str(), ty));
            if inside && seg.duration_ms() > 2 * i && seg.start_ms >= first {
                s.recall_eligible += 1;
                let polled = ia.0.partition_point(|&a| a < seg.start_ms)
                    < ia.0.partition_point(|&a| a < seg.end_ms);
                s.recall_unpolled += usize::from(!polled);
                if polled
                    && (key(InteractionEventType::Started).is_none()
                        || key(InteractionEventType::Ended).is_none())
                {
                    s.recall_missing.push(format!(
                        "{}@{} ({} ms)",
                        chat.conn_id,
                        seg.agent_id,
                        seg.duration_ms()
                    ));
                }
            }
            let Some(ended) = key(InteractionEventType::Ended) else {
                continue;
            };
            if let Some(d) = ended.duration_ms {
                let err = d - seg.duration_ms();
                all.push(err);
                if n == 0 {
                    firsts.push(err)
                } else {
                    moved.push(err)
                }
                if n + 1 == chat.segments.len() {
                    handle.push(d - chat.duration_ms());
                }
            }
            let (lo, hi) = (
                ended.duration_min_ms.unwrap_or(i64::MIN),
                ended.duration_max_ms.unwrap_or(i64::MAX),
            );
            s.within_bounds.1 += 1;
            s.within_bounds.0 += usize::from((lo..=hi).contains(&seg.duration_ms()));
        }
    }
    (s.ended_mae, s.ended_mae_first, s.ended_mae_transferred_in) =
        (mae(&all), mae(&firsts), mae(&moved));
    s.handle_mae_polling = (mae(&handle), handle.len());
    let since: Vec<i64> = observed
        .statuses
        .iter()
        .filter(|e| !e.initial)
        .filter_map(|e| {
            Some(e.status_since? - truth.status_at(&e.agent_id, aa.to(e.observed_at))?.at_ms)
        })
        .collect();
    s.status_since_mae = mae(&since);
    s.ended_bias_first = mean(&firsts);
    s.max_answer_gap_ms = ia.0.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    for e in observed
        .statuses
        .iter()
        .filter(|e| e.status_since.is_some())
    {
        let change = truth.status_at(&e.agent_id, aa.to(e.observed_at));
        let (lo, hi) = (
            e.status_since_after.unwrap_or(i64::MIN),
            e.status_since_before.unwrap_or(i64::MAX),
        );
        s.status_bounds_hold.1 += 1;
        s.status_bounds_hold.0 += usize::from(change.is_some_and(|c| (lo..=hi).contains(&c.at_ms)));
    }
    reconciliation(world, observed, &chats, &started, &mut s);
    s
}

/// Every chat a `chat_1` answer listed has one `in_report` record with the truth's times; every
/// `in_report = false` record is of a chat the vendor would not have listed then.
fn reconciliation(
    world: &TruthWorld,
    observed: &Observed,
    chats: &HashMap<&str, &TruthChat>,
    started: &HashSet<&str>,
    s: &mut Score,
) {
    let reported: BTreeSet<&str> = world
        .served()
        .iter()
        .filter(|a| a.route == Route::WolkvoxReports)
        .flat_map(|a| a.conn_ids.clone())
        .filter_map(|c| chats.get_key_value(c.as_str()).map(|(k, _)| *k))
        .collect();
    s.reported = reported.len();
    let mut records: HashMap<&str, Vec<&InteractionReconciled>> = HashMap::new();
    for r in &observed.reconciled {
        records
            .entry(r.interaction_id.as_str())
            .or_default()
            .push(r);
    }
    let mut report_err = Vec::new();
    for conn in reported {
        let chat = chats[conn];
        let found: Vec<_> = records
            .get(conn)
            .into_iter()
            .flatten()
            .filter(|r| r.in_report)
            .collect();
        if found.is_empty() {
            s.reconciliation_problems
                .push(format!("{conn}: reported, no in_report record"));
        }
        for r in found {
            let d = r.report_duration_ms.unwrap_or(i64::MIN / 2) - chat.duration_ms();
            report_err.push(d);
            let mut why = Vec::new();
            if d.abs() >= SECOND {
                why.push(format!("report_duration_ms off by {d}"));
            }
            if r.report_started_at != Some(chat.start_to_second_ms()) {
                why.push("report_started_at".into());
            }
            if r.report_agent_id.as_deref() != Some(chat.last_agent()) {
                why.push("report_agent_id".into());
            }
            if r.seen_realtime != started.contains(conn) {
                why.push(format!(
                    "seen_realtime {} but STARTED {}",
                    r.seen_realtime,
                    started.contains(conn)
                ));
            }
            if !why.is_empty() {
                s.reconciliation_problems
                    .push(format!("{conn}: {}", why.join(", ")));
            }
        }
    }
    s.handle_mae_report = (mae(&report_err), report_err.len());
    for r in &observed.reconciled {
        let Some(chat) = chats.get(r.interaction_id.as_str()) else {
            s.reconciliation_problems
                .push(format!("{}: no such chat", r.interaction_id));
            continue;
        };
        if r.in_report {
            continue;
        }
        let started_in = (r.window_start..r.window_end).contains(&chat.start_to_second_ms());
        if chat.end_ms > r.reconciled_at {
            let agents: Vec<&str> = chat.segments.iter().map(|g| g.agent_id.as_str()).collect();
            s.premature_only_polling.push(format!(
                "{}: ends at {}, in_report=false at {}; agents {agents:?}, polling saw {:?} (end bounds {:?}..{:?})",
                chat.conn_id, chat.end_ms, r.reconciled_at, r.polled_agent_ids, r.ended_after, r.ended_before
            ));
        } else if started_in {
            // The evidence: an earlier in_report record, made before polling had seen the end?
            let earlier = records[r.interaction_id.as_str()]
                .iter()
                .find(|x| x.in_report && x.reconciled_at <= r.reconciled_at)
                .map_or("none".into(), |x| {
                    let end = x
                        .ended_before
                        .map_or("not seen yet".into(), |b| b.to_string());
                    format!("at {} (polling's end then: {end})", x.reconciled_at)
                });
            s.false_only_polling.push(format!(
                "{}: ended at {}, in_report=false at {}; earlier in_report record {earlier}",
                chat.conn_id, chat.end_ms, r.reconciled_at
            ));
        } else {
            s.reconciliation_problems.push(format!(
                "{}: in_report=false outside its window",
                chat.conn_id
            ));
        }
    }
}
