//! What the simulated vendors say of every agent right now (the current scripted step, or the
//! random world): the truth an `agent-state` table built from ccdc's topic must converge to
//! (`tests/e2e_agent_state.rs`). Vendor facts only; mapping them to categories is ccdc's job.

use std::collections::BTreeMap;

use super::{comm100, wolkvox, SimState};

/// One agent the simulator lists now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTruth {
    /// The vendor's status: Wolkvox `agent_status`, Comm100 `currentStatusId`; `None` for Vonage.
    pub status: Option<String>,
    /// The status's name where the vendor names it apart (Comm100's away-status list).
    pub status_name: Option<String>,
    /// The agent's active interactions, sorted (Wolkvox conn ids, Vonage the running latest
    /// guid); `None` where the vendor does not name them (Comm100).
    pub interactions: Option<Vec<String>>,
    /// How many interactions it handles (Comm100 `ongoingChats`).
    pub count: i64,
}

/// The name the simulated Comm100 away-status list gives a status id.
pub fn comm100_status_name(id: &str) -> Option<&'static str> {
    match id {
        comm100::ONLINE => Some("Online"),
        comm100::AWAY => Some("Away"),
        comm100::OFFLINE => Some("Offline"),
        _ => None,
    }
}

impl SimState {
    /// Every agent each vendor lists now, by vendor (`wolkvox`, `comm100`, `vonage`) and agent id.
    /// Vonage lists the agents of the current step (the configured agents the vendor knows).
    pub fn agent_truth(&self) -> BTreeMap<&'static str, BTreeMap<String, AgentTruth>> {
        let wolkvox = wolkvox::current_agents(self, false)
            .into_iter()
            .map(|a| {
                let mut ids: Vec<String> = a
                    .active_interactions
                    .into_iter()
                    .map(|i| i.conn_id)
                    .collect();
                ids.sort();
                let truth = AgentTruth {
                    status: Some(a.status),
                    status_name: None,
                    count: ids.len() as i64,
                    interactions: Some(ids),
                };
                (a.agent_id, truth)
            })
            .collect();
        let comm100 = comm100::agents(self)
            .into_iter()
            .map(|a| {
                let truth = AgentTruth {
                    status_name: comm100_status_name(&a.status_id).map(str::to_string),
                    status: Some(a.status_id),
                    interactions: None,
                    count: a.ongoing_chats,
                };
                (a.agent_id, truth)
            })
            .collect();
        let g = self.lock();
        let vonage = g
            .scenario
            .vonage
            .get(g.step)
            .map(|step| {
                step.iter()
                    .map(|(agent, latest)| {
                        let ids: Vec<String> = latest
                            .iter()
                            .filter(|l| !l.has_ended)
                            .map(|l| l.guid.clone())
                            .collect();
                        let truth = AgentTruth {
                            status: None,
                            status_name: None,
                            count: ids.len() as i64,
                            interactions: Some(ids),
                        };
                        (agent.clone(), truth)
                    })
                    .collect()
            })
            .unwrap_or_default();
        BTreeMap::from([
            ("wolkvox", wolkvox),
            ("comm100", comm100),
            ("vonage", vonage),
        ])
    }
}
