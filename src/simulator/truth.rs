//! A simulated Wolkvox operation with a known ground truth (the "truth benchmark"): every chat
//! with its exact start, end and agents, every agent status with the millisecond it began, drawn
//! from a seed and anchored on a real instant. Simulated time is real wall-clock time (ccdc stamps
//! its polls with the real clock and converts the vendor's local dates, so every clock must agree);
//! durations are scaled to the poll interval instead: many chats are shorter than an interval, many
//! last several, some are transferred to another agent mid-way (same `conn_id`, one moment).
//!
//! At any instant the Wolkvox endpoints serve the truth at that instant (`real_time.php?api=
//! interactions|agents`, `reports_manager.php?api=chat_1`: the chats that started in the range and
//! have ended by now), and every answer is logged ([`Served`]) so that [`score`] can set ccdc's
//! output against what the vendor said and when. Serve it with [`super::SimMode::Truth`].

mod observed;
/// ccdc's output set against the truth.
pub mod score;
mod serve;

pub(crate) use serve::{real_time, report_rows};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::NaiveDateTime;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::reports::SIM_TZ;
use super::wolkvox::{SimAgent, SimInteraction};
use super::{Route, SimState};

/// The status of an agent with no chat.
pub const READY: &str = "Ready";
/// The status of an agent with at least one chat.
pub const BUSY: &str = "Busy";
/// The status of an idle agent inside one of its break windows.
pub const BREAK: &str = "Aux - Break";

/// How a truth world is drawn, and the ccdc configuration it is meant to be polled with.
#[derive(Debug, Clone)]
pub struct TruthSpec {
    /// Everything random is drawn from this seed.
    pub seed: u64,
    /// Agents `2001`, `2002`, …, always logged in.
    pub agents: usize,
    /// The real instant the world is anchored on (UTC ms): the moment ccdc starts polling.
    pub start_ms: i64,
    /// Chats already going on before `start_ms` (ccdc's first poll sees them as initial).
    pub warmup_ms: i64,
    /// No chat starts after `start_ms + horizon_ms`; every chat has ended `max_chat_ms` later.
    pub horizon_ms: i64,
    /// The real-time poll interval, the unit every duration is drawn in.
    pub interval_ms: i64,
    /// The longest chat.
    pub max_chat_ms: i64,
    /// Mean number of chats per agent at once.
    pub load: f64,
    /// Chats an agent takes at most at once (new and transferred chats go to agents below it).
    pub max_concurrent: usize,
    /// Share of the chats of at least two intervals transferred once to another agent.
    pub transfer_share: f64,
    /// How long each report call takes to answer.
    pub report_latency_ms: u64,
    /// ccdc's `settle_delay` for `chat_1` (keep it whole seconds: see `tests/truth.rs`).
    pub settle_ms: i64,
    /// ccdc's `interval` for `chat_1`.
    pub report_interval_ms: i64,
}

impl TruthSpec {
    /// A world of `agents` agents starting now-ish (`start_ms`), polled every `interval_ms`:
    /// 20 intervals of warm-up, 40 of chats, chats up to 8 intervals, reports settled after 10.
    pub fn new(seed: u64, agents: usize, start_ms: i64, interval_ms: i64) -> Self {
        TruthSpec {
            seed,
            agents,
            start_ms,
            warmup_ms: 20 * interval_ms,
            horizon_ms: 40 * interval_ms,
            interval_ms,
            max_chat_ms: 8 * interval_ms,
            load: 0.5,
            max_concurrent: 2,
            transfer_share: 0.25,
            report_latency_ms: 0,
            settle_ms: 10 * interval_ms,
            report_interval_ms: 4 * interval_ms,
        }
    }

    /// When the timeline begins (the first chat may start here).
    pub fn first_ms(&self) -> i64 {
        self.start_ms - self.warmup_ms
    }

    /// No chat starts after this.
    pub fn last_start_ms(&self) -> i64 {
        self.start_ms + self.horizon_ms
    }

    /// ccdc's report `lookback`: the first pull reaches back before the warm-up.
    pub fn lookback_ms(&self) -> i64 {
        self.warmup_ms + 2 * self.settle_ms
    }
}

/// A stretch of a chat at one agent: `[start_ms, end_ms)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub agent_id: String,
    /// UTC ms, exact.
    pub start_ms: i64,
    /// UTC ms, exact (excluded).
    pub end_ms: i64,
}

impl Segment {
    /// The agent has the chat at `t`.
    pub fn active_at(&self, t: i64) -> bool {
        self.start_ms <= t && t < self.end_ms
    }

    /// The handle time at this agent.
    pub fn duration_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }
}

/// One chat: its exact start and end, and the agents it was at, in order (two on a transfer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruthChat {
    /// The vendor's `conn_id` (`tw-000001`, … in start order).
    pub conn_id: String,
    /// `subject` and `fromname` as the interactions API lists them.
    pub subject: String,
    pub fromname: String,
    /// UTC ms, exact: the first segment's start and the last one's end.
    pub start_ms: i64,
    pub end_ms: i64,
    /// One per agent, in order, each ending where the next begins.
    pub segments: Vec<Segment>,
}

impl TruthChat {
    /// The chat's handle time, all agents together.
    pub fn duration_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }

    /// The agent it ended at (the report's `agent_id`).
    pub fn last_agent(&self) -> &str {
        self.segments.last().map_or("", |s| s.agent_id.as_str())
    }

    /// Its stretch at `agent`, if it was there.
    pub fn segment(&self, agent: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.agent_id == agent)
    }

    /// The start as the vendor dates it: local wall-clock time, to the second.
    pub fn local_start(&self) -> NaiveDateTime {
        local(self.start_ms)
    }

    /// The start to the second, as the vendor's date converts back to UTC ms.
    pub fn start_to_second_ms(&self) -> i64 {
        self.start_ms.div_euclid(1000) * 1000
    }

    /// The report's `chat_duration`: whole-second end − whole-second start (within 1 s of the truth).
    pub fn report_duration_s(&self) -> i64 {
        self.end_ms.div_euclid(1000) - self.start_ms.div_euclid(1000)
    }
}

/// From `at_ms` on, the agent has `status` (until the next change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// UTC ms, exact.
    pub at_ms: i64,
    /// [`READY`], [`BUSY`] or [`BREAK`].
    pub status: String,
}

/// Everything that happened.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    /// When the timeline begins: every agent's first status dates from here.
    pub first_ms: i64,
    /// In start order.
    pub chats: Vec<TruthChat>,
    /// Per agent, its status changes in time order; the first one is at `first_ms`.
    pub statuses: BTreeMap<String, Vec<StatusChange>>,
}

/// Local wall-clock time (the simulator's zone) of `ms`, to the second.
fn local(ms: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(ms.div_euclid(1000), 0)
        .unwrap_or_default()
        .with_timezone(&SIM_TZ)
        .naive_local()
}

/// One chat duration in ms: 40 % under an interval, 45 % of 1.5 to 6 intervals, 15 % longer.
fn draw_duration(rng: &mut StdRng, i: i64, max: i64) -> i64 {
    let r: f64 = rng.random();
    let (lo, hi) = if r < 0.4 {
        (i / 10, i * 9 / 10)
    } else if r < 0.85 || max <= 6 * i {
        (i * 3 / 2, (6 * i).min(max))
    } else {
        (6 * i, max)
    };
    rng.random_range(lo.max(1)..hi.max(lo.max(1) + 1))
}

/// The mean of [`draw_duration`], to set the arrival rate.
fn mean_duration(i: f64, max: f64) -> f64 {
    let mid = (1.5 * i + (6.0 * i).min(max)) / 2.0;
    if max <= 6.0 * i {
        0.4 * 0.5 * i + 0.6 * mid
    } else {
        0.4 * 0.5 * i + 0.45 * mid + 0.15 * (6.0 * i + max) / 2.0
    }
}

impl Truth {
    /// Draw the world of `spec` (deterministic given the spec).
    pub fn generate(spec: &TruthSpec) -> Truth {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let i = spec.interval_ms.max(10);
        let (from, until) = (spec.first_ms(), spec.last_start_ms());
        let ids: Vec<String> = (0..spec.agents).map(|a| (2001 + a).to_string()).collect();
        // Break windows: the agent takes no new chat, and is "Aux - Break" once idle.
        let breaks: Vec<Vec<(i64, i64)>> = (0..spec.agents)
            .map(|_| {
                let (mut out, mut t) = (Vec::new(), from + rng.random_range(0..30 * i));
                while t < until {
                    let len = rng.random_range(3 * i..10 * i);
                    out.push((t, t + len));
                    t += len + rng.random_range(20 * i..60 * i);
                }
                out
            })
            .collect();
        let mut busy: Vec<Vec<(i64, i64)>> = vec![Vec::new(); spec.agents];
        let free = |busy: &[Vec<(i64, i64)>], a: usize, t: i64| {
            !breaks[a].iter().any(|&(s, e)| s <= t && t < e)
                && busy[a].iter().filter(|&&(s, e)| s <= t && t < e).count() < spec.max_concurrent
        };
        let mean = mean_duration(i as f64, spec.max_chat_ms.max(i) as f64);
        let gap_ms = mean / (spec.load * spec.agents.max(1) as f64).max(1e-6);
        let (subjects, names) = (
            [
                "Billing",
                "Order status",
                "Technical support",
                "Cancellation",
            ],
            ["Ana", "Luis", "Marta", "Jorge", "Sofía"],
        );
        let (mut chats, mut t) = (Vec::new(), from as f64);
        loop {
            t += -gap_ms * (1.0 - rng.random::<f64>()).ln();
            let start = t as i64;
            if start >= until {
                break;
            }
            let candidates: Vec<usize> = (0..spec.agents)
                .filter(|&a| free(&busy, a, start))
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let a = candidates[rng.random_range(0..candidates.len())];
            let end = start + draw_duration(&mut rng, i, spec.max_chat_ms.max(i));
            let mut segments = vec![(a, start, end)];
            if end - start >= 2 * i && rng.random_bool(spec.transfer_share.clamp(0.0, 1.0)) {
                let at = start + (end - start) * rng.random_range(30..70) / 100;
                let others: Vec<usize> = (0..spec.agents)
                    .filter(|&b| b != a && free(&busy, b, at))
                    .collect();
                if !others.is_empty() {
                    let b = others[rng.random_range(0..others.len())];
                    segments = vec![(a, start, at), (b, at, end)];
                }
            }
            for &(agent, s, e) in &segments {
                busy[agent].push((s, e));
            }
            chats.push(TruthChat {
                conn_id: format!("tw-{:06}", chats.len() + 1),
                subject: subjects[rng.random_range(0..subjects.len())].into(),
                fromname: names[rng.random_range(0..names.len())].into(),
                start_ms: start,
                end_ms: end,
                segments: segments
                    .into_iter()
                    .map(|(agent, s, e)| Segment {
                        agent_id: ids[agent].clone(),
                        start_ms: s,
                        end_ms: e,
                    })
                    .collect(),
            });
        }
        let statuses = ids
            .iter()
            .enumerate()
            .map(|(a, id)| (id.clone(), status_timeline(from, &busy[a], &breaks[a])))
            .collect();
        Truth {
            first_ms: from,
            chats,
            statuses,
        }
    }

    /// The agent's status at `t` and when it began (`None`: unknown agent).
    pub fn status_at(&self, agent: &str, t: i64) -> Option<&StatusChange> {
        let changes = self.statuses.get(agent)?;
        let n = changes.partition_point(|c| c.at_ms <= t);
        changes.get(n.saturating_sub(1))
    }

    /// Every agent with the chats it has at `t`, as `api=interactions` lists them.
    pub fn interactions_at(&self, t: i64) -> Vec<SimAgent> {
        let mut agents: BTreeMap<&str, Vec<SimInteraction>> = self
            .statuses
            .keys()
            .map(|a| (a.as_str(), Vec::new()))
            .collect();
        for chat in self.chats.iter().take_while(|c| c.start_ms <= t) {
            for seg in chat.segments.iter().filter(|s| s.active_at(t)) {
                agents
                    .entry(seg.agent_id.as_str())
                    .or_default()
                    .push(SimInteraction {
                        conn_id: chat.conn_id.clone(),
                        subject: chat.subject.clone(),
                        fromname: chat.fromname.clone(),
                        date: chat.local_start().format("%Y-%m-%d %H:%M:%S").to_string(),
                    });
            }
        }
        agents
            .into_iter()
            .map(|(agent, its)| {
                let status = self
                    .status_at(agent, t)
                    .map_or(READY, |c| c.status.as_str());
                SimAgent::new(agent, status, its)
            })
            .collect()
    }

    /// `chat_1` as of `now_ms`: the chats that started in `[ini, end]` (local, to the second,
    /// inclusive) and have ended, in start order.
    pub fn report_at(
        &self,
        ini: NaiveDateTime,
        end: NaiveDateTime,
        now_ms: i64,
    ) -> Vec<&TruthChat> {
        self.chats
            .iter()
            .filter(|c| c.end_ms <= now_ms && (ini..=end).contains(&c.local_start()))
            .collect()
    }
}

/// An agent's status changes from its chats (`busy`) and break windows: Busy with a chat, else
/// Aux - Break inside a break window, else Ready.
fn status_timeline(from: i64, busy: &[(i64, i64)], breaks: &[(i64, i64)]) -> Vec<StatusChange> {
    let mut points: Vec<i64> = std::iter::once(from)
        .chain(busy.iter().chain(breaks).flat_map(|&(s, e)| [s, e]))
        .filter(|&p| p >= from)
        .collect();
    points.sort_unstable();
    points.dedup();
    let mut out: Vec<StatusChange> = Vec::new();
    for p in points {
        let status = if busy.iter().any(|&(s, e)| s <= p && p < e) {
            BUSY
        } else if breaks.iter().any(|&(s, e)| s <= p && p < e) {
            BREAK
        } else {
            READY
        };
        if out.last().is_none_or(|c| c.status != status) {
            out.push(StatusChange {
                at_ms: p,
                status: status.into(),
            });
        }
    }
    out
}

/// One answer the simulator gave: when, on which route, and (reports) the local range asked
/// (`date_ini`, `date_end`) and the chats listed.
#[derive(Debug, Clone)]
pub struct Served {
    pub route: Route,
    /// The instant the answer's state was taken (UTC ms).
    pub at_ms: i64,
    /// Reports: `date_ini` and `date_end`, local, inclusive.
    pub range: Option<(NaiveDateTime, NaiveDateTime)>,
    /// Reports: the chats listed.
    pub conn_ids: Vec<String>,
}

/// A truth world being served: its spec, its truth and the log of what was served.
pub struct TruthWorld {
    spec: TruthSpec,
    truth: Truth,
    served: Mutex<Vec<Served>>,
}

impl TruthWorld {
    /// Draw the world of `spec`.
    pub fn new(spec: TruthSpec) -> Arc<Self> {
        let truth = Truth::generate(&spec);
        Arc::new(TruthWorld {
            spec,
            truth,
            served: Mutex::new(Vec::new()),
        })
    }

    /// How the world was drawn (and is meant to be polled).
    pub fn spec(&self) -> &TruthSpec {
        &self.spec
    }

    /// The ground truth: every chat with its agent segments and exact times, every status change.
    pub fn truth(&self) -> &Truth {
        &self.truth
    }

    /// Every answer served so far, in order.
    pub fn served(&self) -> Vec<Served> {
        self.served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn log(
        &self,
        route: Route,
        at_ms: i64,
        range: Option<(NaiveDateTime, NaiveDateTime)>,
        conn_ids: Vec<String>,
    ) {
        self.served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Served {
                route,
                at_ms,
                range,
                conn_ids,
            });
    }
}

#[cfg(test)]
mod tests;
