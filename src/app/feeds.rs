//! Which feeds a configuration enables: one snapshot feed per enabled endpoint of every source
//! (Wolkvox interactions and agents, with agent state joined to the interactions feed's committed
//! snapshots; Comm100 agents, queues, today and right now; Vonage interactions), and one report
//! feed per enabled Wolkvox report, each with how it is polled; and their pollers started.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, PollConfig, SourceConfig};
use crate::feed::{Feed, SnapshotFeed};
use crate::poller::Poller;
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

/// First polls are spread over at most this much time per feed (and never more than a feed's
/// interval): a thousand sources do not all poll, parse and commit in the same instant, every
/// interval, and a handful of feeds start at once.
pub const START_SPREAD_PER_FEED: Duration = Duration::from_millis(5);

/// One poller per enabled feed, each restored from the store (a corrupt stored state fails
/// start-up) and polling until `stop`; their commits share one group committer
/// ([`crate::poller::commit`]) and their first polls are spread ([`START_SPREAD_PER_FEED`]).
pub(super) fn start_pollers(
    config: &Config,
    pipeline: &super::Pipeline,
    stop: &CancellationToken,
) -> anyhow::Result<JoinSet<()>> {
    let mut pollers = JoinSet::new();
    let group =
        crate::poller::GroupCommit::start_with(pipeline.store.clone(), pipeline.recent.clone())
            .context("cannot start the committer thread")?;
    let feeds = feeds(config, &pipeline.store)?;
    let n = feeds.len() as u32;
    for (i, (feed, poll)) in (0u32..).zip(feeds) {
        let spread = poll.interval.min(START_SPREAD_PER_FEED * n);
        let what = format!("source `{}` endpoint `{}`", feed.source(), feed.endpoint());
        let mut poller = Poller::new(
            feed,
            pipeline.store.clone(),
            pipeline.notify.clone(),
            poll.interval,
            poll.max_backoff,
        )
        .observe(
            pipeline.health.clone(),
            config.observability.heartbeat_every_polls,
        )
        .group_commit(group.clone())
        .start_after(spread / n.max(1) * i);
        poller.load().with_context(|| what)?;
        match pipeline.checkpoints.clone() {
            // A report feed waits for the checkpoint topic (and may resume from it) first.
            Some(checkpoints) => pollers.spawn(checkpoints.run_poller(poller, stop.clone())),
            None => pollers.spawn(poller.run(stop.clone())),
        };
    }
    Ok(pollers)
}
