//! A seeded random timeline of Wolkvox snapshot steps (interactions starting, ending and moving
//! between 30 agents) and the events each step implies, for the fault tests that check "nothing
//! lost, nothing invented" against what was served ([`Tally`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ccdc::event::{InteractionEvent, InteractionEventType, InteractionEventType::*};
use ccdc::simulator::{SimAgent, SimInteraction, Step};

/// A small deterministic generator (an LCG), so a failing seed replays exactly.
pub struct Rng(pub u64);
impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// One snapshot: the (agent, conn_id) pairs on the vendor's real-time list.
pub type Pairs = BTreeSet<(String, String)>;

/// `steps` snapshots, each differing from the one before.
pub fn timeline(seed: u64, steps: usize) -> Vec<Pairs> {
    let mut rng = Rng(seed);
    let agents: Vec<String> = (0..30).map(|i| format!("{}", 1001 + i)).collect();
    // Draws a random index only when there is something to pick (the sequence of draws, and so
    // every seed's timeline, is what the recorded figures were measured with).
    let pick = |rng: &mut Rng, cur: &Pairs| {
        if cur.is_empty() {
            return None;
        }
        cur.iter()
            .nth(rng.below(cur.len() as u64) as usize)
            .cloned()
    };
    let mut cur: Pairs = BTreeSet::new();
    let mut next_conn = 0;
    let mut out = Vec::new();
    for _ in 0..steps {
        let before = cur.clone();
        while cur == before {
            for _ in 0..1 + rng.below(4) {
                match rng.below(3) {
                    0 => {
                        next_conn += 1;
                        let agent = agents[rng.below(30) as usize].clone();
                        cur.insert((agent, format!("k{next_conn:05}")));
                    }
                    1 => {
                        if let Some(p) = pick(&mut rng, &cur) {
                            cur.remove(&p);
                        }
                    }
                    _ => {
                        if let Some((a, c)) = pick(&mut rng, &cur) {
                            let to = agents[rng.below(30) as usize].clone();
                            if to != a {
                                cur.remove(&(a, c.clone()));
                                cur.insert((to, c));
                            }
                        }
                    }
                }
            }
        }
        out.push(cur.clone());
    }
    out
}

/// The simulator step that serves `pairs`.
pub fn to_step(pairs: &Pairs) -> Step {
    let mut by_agent: BTreeMap<&str, Vec<SimInteraction>> = BTreeMap::new();
    for (a, c) in pairs {
        by_agent.entry(a).or_default().push(SimInteraction {
            conn_id: c.clone(),
            subject: "s".into(),
            fromname: "f".into(),
            date: "2026-11-21 10:15:00".into(),
        });
    }
    by_agent
        .into_iter()
        .map(|(a, its)| SimAgent::new(a, "Busy", its))
        .collect()
}

/// (type, agent, conn)
pub type Transition = (InteractionEventType, String, String);

/// What the timeline implies between two steps, ENDED before STARTED within an interaction.
pub fn implied(prev: &Pairs, cur: &Pairs) -> Vec<Transition> {
    let mut v: Vec<Transition> = prev
        .difference(cur)
        .map(|(a, c)| (Ended, a.clone(), c.clone()))
        .collect();
    v.extend(
        cur.difference(prev)
            .map(|(a, c)| (Started, a.clone(), c.clone())),
    );
    v
}

/// Every event received, in arrival order, and the first occurrence of each event id.
#[derive(Default)]
pub struct Tally {
    pub received: usize,
    pub firsts: Vec<InteractionEvent>,
    seen: HashSet<String>,
}

/// What a run received compared with what its timeline implied.
#[derive(Debug)]
pub struct Verdict {
    pub lost: i64,
    pub invented: Vec<Transition>,
    pub duplicates: usize,
}

impl Tally {
    pub fn add(&mut self, e: InteractionEvent) {
        self.received += 1;
        if self.seen.insert(e.event_id.clone()) {
            self.firsts.push(e);
        }
    }

    /// Compare with `expected` as multisets; duplicates are records repeating a seen event id.
    pub fn verdict(&self, expected: &[Transition]) -> Verdict {
        let mut want: HashMap<&Transition, i64> = HashMap::new();
        for t in expected {
            *want.entry(t).or_default() += 1;
        }
        let mut invented = Vec::new();
        for e in &self.firsts {
            let t = (e.event_type, e.agent_id.clone(), e.interaction_id.clone());
            match want.get_mut(&t) {
                Some(n) if *n > 0 => *n -= 1,
                _ => invented.push(t),
            }
        }
        Verdict {
            lost: want.values().sum(),
            invented,
            duplicates: self.received - self.firsts.len(),
        }
    }

    /// Per interaction, the first occurrences follow the timeline's order.
    pub fn assert_order(&self, expected: &[Transition]) {
        let mut per_key: HashMap<&str, Vec<(InteractionEventType, &str)>> = HashMap::new();
        for e in &self.firsts {
            per_key
                .entry(&e.interaction_id)
                .or_default()
                .push((e.event_type, &e.agent_id));
        }
        for (conn, seq) in per_key {
            let want_seq: Vec<(InteractionEventType, &str)> = expected
                .iter()
                .filter(|t| t.2 == conn)
                .map(|t| (t.0, t.1.as_str()))
                .collect();
            assert_eq!(seq, want_seq, "order of {conn}");
        }
    }
}
