//! What an event says about itself beyond its payload, for the record that carries it: its event
//! time (the Kafka record timestamp and the CloudEvents `time`), its subject (CloudEvents
//! `subject`) and its versioned CloudEvents `type`. The README's topic table lists them per stream.

use super::report::ReportRow;
use super::{Event, InteractionEventType, MetricsValues};

impl Event {
    /// When what the event tells happened, as well as ccdc knows it (UTC ms): the Kafka record
    /// timestamp (CreateTime) and the CloudEvents `time`.
    ///
    /// - snapshot events (interactions, agent statuses, metrics, heartbeats): `observed_at`, the
    ///   poll that saw it;
    /// - report rows: the row's own `date` (the chat's or session's start), else `pulled_at`;
    /// - reconciled chats: the chat's start, `report_started_at`, else `first_observed_at`, else
    ///   `reconciled_at`;
    /// - dead letters: `failed_at`.
    ///
    /// A vendor's time is taken only between 1970 and ccdc's own time of the record (`pulled_at`,
    /// `reconciled_at`): a row cannot have happened after it was pulled, and a broker may refuse
    /// timestamps far from its clock (`log.message.timestamp.after.max.ms`).
    pub fn event_time_ms(&self) -> i64 {
        match self {
            Event::Interaction(e) => e.observed_at,
            Event::AgentStatus(e) => e.observed_at,
            Event::Metrics(m) => m.observed_at,
            Event::ReportRow(r) => {
                let date = match &r.row {
                    ReportRow::Chat1(row) => row.date,
                    ReportRow::Diagram9(row) => row.date,
                };
                vendor_time_until(date, r.pulled_at)
            }
            Event::DeadLetter(d) => d.failed_at,
            Event::Heartbeat(h) => h.observed_at,
            Event::Reconciled(r) => {
                let start = r.report_started_at.or(r.first_observed_at);
                vendor_time_until(start, r.reconciled_at)
            }
            Event::AgentState(a) => a.observed_at,
        }
    }

    /// What the event is about within its source (CloudEvents `subject`): the interaction (its
    /// id; Wolkvox `conn_id` on report rows), the agent, the Comm100 department of a queue record,
    /// the endpoint of a heartbeat. `None` where there is none (Comm100 Today/RightNow, dead
    /// letters).
    pub fn subject(&self) -> Option<&str> {
        match self {
            Event::Interaction(e) => Some(&e.interaction_id),
            Event::AgentStatus(e) => Some(&e.agent_id),
            Event::Metrics(m) => m.department_id.as_deref(),
            Event::ReportRow(r) => Some(match &r.row {
                ReportRow::Chat1(row) => &row.conn_id,
                ReportRow::Diagram9(row) => &row.conn_id,
            }),
            Event::DeadLetter(_) => None,
            Event::Heartbeat(h) => Some(&h.endpoint),
            Event::Reconciled(r) => Some(&r.interaction_id),
            Event::AgentState(a) => Some(&a.agent_id),
        }
    }

    /// The CloudEvents `type`: reverse-DNS prefix, the event type, and the major version of its
    /// schema (`v1` until an incompatible change, which ccdc's schemas never made: they only add
    /// optional fields).
    pub fn cloudevents_type(&self) -> &'static str {
        match self {
            Event::Interaction(e) => match e.event_type {
                InteractionEventType::Started => "io.ccdc.interaction.started.v1",
                InteractionEventType::Ended => "io.ccdc.interaction.ended.v1",
            },
            Event::AgentStatus(_) => "io.ccdc.agent.status_changed.v1",
            Event::Metrics(m) => match m.values {
                MetricsValues::Comm100Queue(_) => "io.ccdc.comm100.queue.v1",
                MetricsValues::Comm100Today(_) => "io.ccdc.comm100.today.v1",
                MetricsValues::Comm100RightNow(_) => "io.ccdc.comm100.right_now.v1",
            },
            Event::ReportRow(r) => match r.row {
                ReportRow::Chat1(_) => "io.ccdc.wolkvox.chat_1.row.v1",
                ReportRow::Diagram9(_) => "io.ccdc.wolkvox.diagram_9.row.v1",
            },
            Event::DeadLetter(_) => "io.ccdc.dead_letter.v1",
            Event::Heartbeat(_) => "io.ccdc.heartbeat.v1",
            Event::Reconciled(_) => "io.ccdc.interaction.reconciled.v1",
            Event::AgentState(_) => "io.ccdc.agent.state.v1",
        }
    }
}

/// `vendor` when it lies in `(0, own]` (ccdc's clock), else `own`.
fn vendor_time_until(vendor: Option<i64>, own: i64) -> i64 {
    vendor.filter(|t| *t > 0 && *t <= own).unwrap_or(own)
}

#[cfg(test)]
mod tests {
    use super::super::report::Chat1Row;
    use super::super::{Heartbeat, ReportRecord};
    use super::*;

    fn chat_row(date: Option<i64>) -> Event {
        Event::ReportRow(Box::new(ReportRecord {
            event_id: "e".into(),
            source: "s".into(),
            vendor: "wolkvox".into(),
            identity: "c9".into(),
            row_hash: "h".into(),
            window_start: 10,
            window_end: 20,
            window_start_raw: "a".into(),
            window_end_raw: "b".into(),
            pulled_at: 5_000,
            row: ReportRow::Chat1(Chat1Row {
                conn_id: "c9".into(),
                channel: None,
                date,
                date_raw: None,
                customer_name: None,
                customer_email: None,
                customer_phone: None,
                customer_chars: None,
                agent_id: None,
                agent_name: None,
                agent_chars: None,
                time_on_agent_s: None,
                chat_duration_s: None,
                cod_act: None,
                description_cod_act: None,
                comments: None,
                customer_id: None,
                skill_id: None,
                asa_s: None,
                last_participant_who_spoke: None,
                extra_field: None,
                comment: None,
                user_id: None,
                feeling: None,
                agent_answers: None,
            }),
        }))
    }

    #[test]
    fn a_report_row_happened_at_its_date_else_when_it_was_pulled() {
        assert_eq!(chat_row(Some(1_234)).event_time_ms(), 1_234);
        assert_eq!(chat_row(None).event_time_ms(), 5_000);
        // Not after it was pulled, not before 1970.
        assert_eq!(chat_row(Some(5_001)).event_time_ms(), 5_000);
        assert_eq!(chat_row(Some(-1)).event_time_ms(), 5_000);
        assert_eq!(chat_row(None).subject(), Some("c9"));
        assert_eq!(
            chat_row(None).cloudevents_type(),
            "io.ccdc.wolkvox.chat_1.row.v1"
        );
    }

    #[test]
    fn snapshot_events_happened_when_observed() {
        let mut e = crate::event::started_for_tests("id", "c1");
        if let Event::Interaction(i) = &mut e {
            i.observed_at = 1_795_274_100_000;
            i.started_at = Some(1_795_274_000_000);
        }
        assert_eq!(e.event_time_ms(), 1_795_274_100_000);
        assert_eq!(e.subject(), Some("c1"));
        assert_eq!(e.cloudevents_type(), "io.ccdc.interaction.started.v1");
        let hb = Event::Heartbeat(Heartbeat {
            event_id: "h".into(),
            source: "s".into(),
            vendor: "comm100".into(),
            endpoint: "Agents".into(),
            observed_at: 77,
            polls: 1,
            size: 0,
        });
        assert_eq!((hb.event_time_ms(), hb.subject()), (77, Some("Agents")));
    }

    #[test]
    fn every_type_is_reverse_dns_and_versioned() {
        let e = crate::event::started_for_tests("id", "c1");
        for t in [e.cloudevents_type(), chat_row(None).cloudevents_type()] {
            assert!(t.starts_with("io.ccdc.") && t.ends_with(".v1"), "{t}");
        }
    }
}
