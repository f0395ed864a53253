//! Which feeds a configuration enables: one snapshot feed per enabled endpoint of every source
//! (Wolkvox interactions and agents, with agent state joined to the interactions feed's committed
//! snapshots; Comm100 agents, queues, today and right now; Vonage interactions), and one report
//! feed per enabled Wolkvox report, each with how it is polled.

use std::sync::Arc;

use crate::config::{Config, PollConfig, SourceConfig};
use crate::feed::{Feed, SnapshotFeed};
use crate::reports::{Mode, ReportFeed, ReportPlan};
use crate::sources::agent_state::{InteractionsView, PublishInteractions, WithAgentState};
use crate::sources::comm100::{Comm100Agents, Comm100Client, Comm100Metrics, MetricsEndpoint};
use crate::sources::vonage::{VonageInteractions, VonageSource};
use crate::sources::wolkvox::agents::WolkvoxAgents;
use crate::sources::wolkvox::interactions::WolkvoxInteractions;
use crate::sources::wolkvox::WolkvoxClient;
use crate::sources::SnapshotSource;
use crate::store::Store;

/// Every feed the configuration enables, with how to poll it.
pub fn feeds(
    config: &Config,
    store: &Arc<dyn Store>,
) -> anyhow::Result<Vec<(Box<dyn Feed>, PollConfig)>> {
    fn add<S: SnapshotSource>(
        out: &mut Vec<(Box<dyn Feed>, PollConfig)>,
        source: S,
        poll: &PollConfig,
        confirm_empty: bool,
    ) {
        if poll.enabled {
            let confirm = if confirm_empty {
                poll.confirm_empty_polls
            } else {
                1
            };
            out.push((
                Box::new(SnapshotFeed::new(Arc::new(source), confirm)),
                poll.clone(),
            ));
        }
    }
    let mut out = Vec::new();
    for src in &config.sources {
        match src {
            SourceConfig::Wolkvox(w) => {
                let client = WolkvoxClient::with_quota(w, store.clone())?;
                // agent-state: the agents feed joins the interactions feed's committed snapshots.
                let state = &w.agent_state;
                let join = (state.enabled && w.agents.enabled).then(InteractionsView::default);
                let interactions = WolkvoxInteractions(client.clone());
                match join.clone() {
                    Some(view) => {
                        let inner = interactions;
                        let source = PublishInteractions { inner, view };
                        add(&mut out, source, &w.interactions, true)
                    }
                    None => add(&mut out, interactions, &w.interactions, true),
                }
                let agents = WolkvoxAgents(client.clone());
                match state.enabled {
                    true => add(
                        &mut out,
                        WithAgentState::new(agents, state, join),
                        &w.agents,
                        true,
                    ),
                    false => add(&mut out, agents, &w.agents, true),
                }
                for r in w.reports.iter().filter(|r| r.enabled) {
                    let feed = ReportFeed::new(
                        client.clone(),
                        store.clone(),
                        ReportPlan::from_config(r)?,
                        Mode::Live,
                    )
                    .with_spill_dir(config.state_dir.clone());
                    let poll = PollConfig {
                        enabled: true,
                        interval: r.interval,
                        max_backoff: r.max_backoff,
                        confirm_empty_polls: 1,
                        ..PollConfig::default()
                    };
                    out.push((Box::new(feed), poll));
                }
            }
            SourceConfig::Comm100(c) => {
                let client = Comm100Client::new(c)?;
                let agents = Comm100Agents(client.clone());
                match c.agent_state.enabled {
                    true => add(
                        &mut out,
                        WithAgentState::new(agents, &c.agent_state, None),
                        &c.agents,
                        true,
                    ),
                    false => add(&mut out, agents, &c.agents, true),
                }
                for (endpoint, poll) in [
                    (MetricsEndpoint::Queue, &c.queue),
                    (MetricsEndpoint::Today, &c.today),
                    (MetricsEndpoint::RightNow, &c.right_now),
                ] {
                    add(
                        &mut out,
                        Comm100Metrics {
                            client: client.clone(),
                            endpoint,
                        },
                        poll,
                        false,
                    );
                }
            }
            SourceConfig::Vonage(v) => {
                let latest = VonageInteractions(VonageSource::new(v)?);
                match v.agent_state.enabled {
                    true => add(
                        &mut out,
                        WithAgentState::new(latest, &v.agent_state, None),
                        &v.interactions,
                        true,
                    ),
                    false => add(&mut out, latest, &v.interactions, true),
                }
            }
        }
    }
    Ok(out)
}
