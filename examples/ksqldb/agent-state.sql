-- ksqlDB over ccdc's topics: a STREAM of interaction events and a TABLE of agent state.
-- ksqlDB 0.29+ / Confluent Platform 7.x, with ksql.schema.registry.url pointing at the registry
-- ccdc registers its schemas in. tests/examples.rs checks every column named here against
-- schemas/*.avsc and the topic names against ccdc's defaults.
--
-- Values: ksqlDB reads each value schema from the registry (subject <topic>-value: schema
-- inference), so no value column is declared and new optional fields of a later ccdc appear when
-- the stream or table is created again. Avro enums (event_type, status_category, reason,
-- derivation) read as VARCHAR; timestamp-millis fields as TIMESTAMP. Inferred column names are
-- upper case (observed_at is OBSERVED_AT; unquoted names match in any case); SOURCE is a keyword,
-- so that column is written `SOURCE`.
-- Keys: plain UTF-8 strings (<source>/<interaction_id>, <source>/<agent_id>), which the registry
-- does not describe: KEY_FORMAT = 'KAFKA' and the key column declared as VARCHAR.
-- Time: ROWTIME is the record timestamp, which ccdc sets to the event's own time (observed_at for
-- both topics), so windows count events when they happened, also for a backlog published after
-- an outage.

SET 'auto.offset.reset' = 'earliest';

CREATE STREAM interactions (interaction_key VARCHAR KEY)
  WITH (KAFKA_TOPIC = 'ccdc.interactions', KEY_FORMAT = 'KAFKA', VALUE_FORMAT = 'AVRO');

-- The current state of every agent, every vendor: a TABLE keeps the last record per key. An
-- agent that logs out gets an OFFLINE record (listed = false), never a tombstone, so its row stays.
CREATE TABLE agent_state (agent_key VARCHAR PRIMARY KEY)
  WITH (KAFKA_TOPIC = 'ccdc.agent-state', KEY_FORMAT = 'KAFKA', VALUE_FORMAT = 'AVRO');

-- Agents BUSY per source, kept up to date as a table of its own (query it with
-- SELECT * FROM busy_agents_per_source WHERE `SOURCE` = 'ops-bogota';).
CREATE TABLE busy_agents_per_source AS
  SELECT `SOURCE`, COUNT(*) AS busy_agents
  FROM agent_state
  WHERE status_category = 'BUSY'
  GROUP BY `SOURCE`
  EMIT CHANGES;

-- Agents with their active interactions right now, and rows nobody refreshed for an hour (ccdc
-- no longer observes those agents: see "Agent state" in the README).
SELECT agent_key, status_name, active_interaction_count, observed_at
  FROM agent_state
  WHERE active_interaction_count > 0 OR UNIX_TIMESTAMP(observed_at) < UNIX_TIMESTAMP() - 3600000
  EMIT CHANGES;

-- Interactions started per source and quarter hour of event time.
SELECT `SOURCE`, WINDOWSTART AS window_start, COUNT(*) AS started
  FROM interactions
  WINDOW TUMBLING (SIZE 15 MINUTES, GRACE PERIOD 10 MINUTES)
  WHERE event_type = 'STARTED'
  GROUP BY `SOURCE`
  EMIT CHANGES;
