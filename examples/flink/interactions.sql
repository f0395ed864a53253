-- Flink SQL over ccdc's topics: the interactions stream with event-time watermarks, and the
-- agent-state table (the current state of every agent). Flink 1.18+ with the Kafka SQL connector
-- (flink-sql-connector-kafka) and flink-sql-avro-confluent-registry; replace kafka:9092 and
-- http://schema-registry:8081 with your addresses. tests/examples.rs checks every column below
-- against schemas/*.avsc and the topic names against ccdc's defaults.
--
-- Avro enums, and the workaround used here. Flink's avro-confluent format derives its Avro reader
-- schema from the table's columns, and a DDL has no enum type: `event_type` and `derivation` (and
-- on agent-state `status_category` and `reason`) would become Avro strings, Avro cannot resolve the
-- enum ccdc writes into a string, and every record would fail to decode ("Found
-- io.ccdc.events.InteractionEventType, expecting string"). So each table passes ccdc's writer
-- schema itself in 'value.avro-confluent.schema' (the .avsc without its docs, which play no part
-- in decoding): the format reads with it, and the enums arrive as STRING. Flink accepts that
-- option only when the schema, converted to Flink types, equals the table's value columns exactly,
-- hence every field below, in the schema's order, with its exact type: TIMESTAMP(3) for
-- timestamp-millis, STRING for enums and uuids, ARRAY<STRING NOT NULL> for an array of strings,
-- and NOT NULL wherever the Avro field is not a union with null. If your Kafka connector can push
-- projections down into the value format, leave that off for these tables (the format would then
-- see fewer columns than the schema). A later ccdc that adds optional fields keeps this working:
-- Avro skips writer fields the reader schema lacks; add them here (and to the schema literal) to
-- read them.
-- The alternative, on any Flink version: leave the enum columns out of the DDL and drop the schema
-- option (a derived reader schema ignores the fields it lacks, so the records decode) and read the
-- event type from the record's CloudEvents header instead: `headers` MAP<STRING, BYTES> METADATA,
-- then headers['ce_type'] = io.ccdc.interaction.started.v1 / .ended.v1.

-- Interactions: one row per interaction-started / interaction-ended event.
CREATE TABLE interactions (
  -- The record key, <source>/<interaction_id> (plain UTF-8, hence the raw key format).
  `kafka_key` STRING,
  `event_id` STRING NOT NULL,
  `event_type` STRING NOT NULL,
  `source` STRING NOT NULL,
  `vendor` STRING NOT NULL,
  `agent_id` STRING NOT NULL,
  `interaction_id` STRING NOT NULL,
  `initial` BOOLEAN NOT NULL,
  `transfer` BOOLEAN NOT NULL,
  `transfer_agent_id` STRING,
  `observed_at` TIMESTAMP(3) NOT NULL,
  `previous_observed_at` TIMESTAMP(3),
  `vendor_timestamp` TIMESTAMP(3),
  `vendor_timestamp_raw` STRING,
  `subject` STRING,
  `from_name` STRING,
  `latest_only` BOOLEAN NOT NULL,
  `started_at` TIMESTAMP(3),
  `started_at_raw` STRING,
  `first_observed_at` TIMESTAMP(3),
  `ended_after` TIMESTAMP(3),
  `ended_before` TIMESTAMP(3),
  `duration_ms` BIGINT,
  `duration_min_ms` BIGINT,
  `duration_max_ms` BIGINT,
  `derivation` STRING NOT NULL,
  `source_time_zone` STRING,
  `ccdc_version` STRING,
  `account_id` STRING,
  -- Event time: the Kafka record timestamp, not the observed_at column. ccdc sets every record's
  -- timestamp to its event time (for interactions exactly observed_at, also for a backlog sent
  -- after a broker outage: tested against a broker), and this column is a TIMESTAMP_LTZ, an
  -- instant, where avro-confluent reads observed_at as TIMESTAMP(3), a UTC wall-clock time:
  -- windows over event_time follow the session time zone ('table.local-time-zone', e.g.
  -- America/Bogota), so a daily window is the contact center's day. The same declaration works on
  -- every ccdc topic (report rows: the row's own date).
  `event_time` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  -- Records of one partition arrive in publishing order; events of different sources and feeds
  -- sharing a partition can be a poll apart. A minute covers that at any poll interval up to a
  -- minute; raise it with longer intervals. A partition with no interactions (a night) holds the
  -- watermark back: SET 'table.exec.source.idle-timeout' = '5 min'.
  WATERMARK FOR `event_time` AS `event_time` - INTERVAL '1' MINUTE
) WITH (
  'connector' = 'kafka',
  'topic' = 'ccdc.interactions',
  'properties.bootstrap.servers' = 'kafka:9092',
  'properties.group.id' = 'flink-ccdc-interactions',
  'scan.startup.mode' = 'earliest-offset',
  'key.format' = 'raw',
  'key.fields' = 'kafka_key',
  'value.format' = 'avro-confluent',
  'value.avro-confluent.url' = 'http://schema-registry:8081',
  'value.fields-include' = 'EXCEPT_KEY',
  -- schemas/interaction-event.avsc without its docs (see the top of this file).
  'value.avro-confluent.schema' = '{"type": "record", "name": "InteractionEvent", "namespace": "io.ccdc.events", "fields": [
      {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
      {"name": "event_type", "type": {"type": "enum", "name": "InteractionEventType", "symbols": ["STARTED", "ENDED", "UNKNOWN"], "default": "UNKNOWN"}},
      {"name": "source", "type": "string"},
      {"name": "vendor", "type": "string"},
      {"name": "agent_id", "type": "string"},
      {"name": "interaction_id", "type": "string"},
      {"name": "initial", "type": "boolean", "default": false},
      {"name": "transfer", "type": "boolean", "default": false},
      {"name": "transfer_agent_id", "type": ["null", "string"], "default": null},
      {"name": "observed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
      {"name": "previous_observed_at", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null},
      {"name": "vendor_timestamp", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null},
      {"name": "vendor_timestamp_raw", "type": ["null", "string"], "default": null},
      {"name": "subject", "type": ["null", "string"], "default": null},
      {"name": "from_name", "type": ["null", "string"], "default": null},
      {"name": "latest_only", "type": "boolean", "default": false},
      {"name": "started_at", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null},
      {"name": "started_at_raw", "type": ["null", "string"], "default": null},
      {"name": "first_observed_at", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null},
      {"name": "ended_after", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null},
      {"name": "ended_before", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null},
      {"name": "duration_ms", "type": ["null", "long"], "default": null},
      {"name": "duration_min_ms", "type": ["null", "long"], "default": null},
      {"name": "duration_max_ms", "type": ["null", "long"], "default": null},
      {"name": "derivation", "type": {"type": "enum", "name": "Derivation", "symbols": ["INITIAL_SNAPSHOT", "SNAPSHOT_DIFF", "VENDOR_ENDED_FLAG", "REPLACED_BY_NEXT", "CONFIRMED_ABSENT", "REPORT", "UNKNOWN"], "default": "UNKNOWN"}, "default": "UNKNOWN"},
      {"name": "source_time_zone", "type": ["null", "string"], "default": null},
      {"name": "ccdc_version", "type": ["null", "string"], "default": null},
      {"name": "account_id", "type": ["null", "string"], "default": null}
    ]}'
);

-- Interactions started per source, in 15-minute windows of event time.
SELECT window_start, window_end, `source`, COUNT(*) AS started
FROM TABLE(TUMBLE(TABLE interactions, DESCRIPTOR(`event_time`), INTERVAL '15' MINUTES))
WHERE `event_type` = 'STARTED'
GROUP BY window_start, window_end, `source`;

-- Agent state: the current state of every agent, every vendor. The topic is compacted and keyed
-- <source>/<agent_id>; upsert-kafka keeps the last record per key (an agent that logs out gets an
-- OFFLINE record with listed = false, never a tombstone, so its row stays and says since when).
CREATE TABLE agent_state (
  -- The record key, <source>/<agent_id>.
  `agent_key` STRING,
  `event_id` STRING NOT NULL,
  `source` STRING NOT NULL,
  `vendor` STRING NOT NULL,
  `agent_id` STRING NOT NULL,
  `agent_name` STRING,
  `status` STRING,
  `status_name` STRING,
  `status_category` STRING NOT NULL,
  `listed` BOOLEAN NOT NULL,
  `status_since` TIMESTAMP(3),
  `status_since_after` TIMESTAMP(3),
  `status_since_before` TIMESTAMP(3),
  `active_interaction_ids` ARRAY<STRING NOT NULL>,
  `active_interaction_count` BIGINT,
  `interactions_observed_at` TIMESTAMP(3),
  `observed_at` TIMESTAMP(3) NOT NULL,
  `reason` STRING NOT NULL,
  `derivation` STRING NOT NULL,
  `wolkvox` ROW<
    `calls` BIGINT, `inbound` BIGINT, `outbound` BIGINT, `internal` BIGINT,
    `time_state_now_s` BIGINT, `ready_time_s` BIGINT, `inbound_time_s` BIGINT,
    `outbound_time_s` BIGINT, `acw_time_s` BIGINT, `ring_time_s` BIGINT, `login_time_s` BIGINT,
    `aht_time_s` BIGINT, `aux_time_s` BIGINT, `ocupation` STRING, `raw` STRING NOT NULL>,
  `comm100` ROW<
    `display_name` STRING, `ongoing_chats` BIGINT, `max_concurrent_chats` BIGINT,
    `intraday_chats` BIGINT, `intraday_linear_chat_time_ms` BIGINT,
    `intraday_linear_chat_time_raw` STRING>,
  `vonage` ROW<
    `latest_interaction_id` STRING, `latest_interaction_started_at` TIMESTAMP(3),
    `latest_interaction_started_at_raw` STRING, `latest_interaction_has_ended` BOOLEAN>,
  `source_time_zone` STRING,
  `ccdc_version` STRING,
  `account_id` STRING,
  PRIMARY KEY (`agent_key`) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = 'ccdc.agent-state',
  'properties.bootstrap.servers' = 'kafka:9092',
  'key.format' = 'raw',
  'value.format' = 'avro-confluent',
  'value.avro-confluent.url' = 'http://schema-registry:8081',
  'value.fields-include' = 'EXCEPT_KEY',
  -- schemas/agent-state.avsc without its docs.
  'value.avro-confluent.schema' = '{"type": "record", "name": "AgentState", "namespace": "io.ccdc.agentstate", "fields": [
      {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
      {"name": "source", "type": "string"},
      {"name": "vendor", "type": "string"},
      {"name": "agent_id", "type": "string"},
      {"name": "agent_name", "type": ["null", "string"], "default": null},
      {"name": "status", "type": ["null", "string"], "default": null},
      {"name": "status_name", "type": ["null", "string"], "default": null},
      {"name": "status_category", "type": {"type": "enum", "name": "StatusCategory", "symbols": ["AVAILABLE", "BUSY", "AWAY", "OFFLINE", "UNKNOWN"], "default": "UNKNOWN"}, "default": "UNKNOWN"},
      {"name": "listed", "type": "boolean", "default": true},
      {"name": "status_since", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null},
      {"name": "status_since_after", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null},
      {"name": "status_since_before", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null},
      {"name": "active_interaction_ids", "type": ["null", {"type": "array", "items": "string"}], "default": null},
      {"name": "active_interaction_count", "type": ["null", "long"], "default": null},
      {"name": "interactions_observed_at", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null},
      {"name": "observed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
      {"name": "reason", "type": {"type": "enum", "name": "AgentStateReason", "symbols": ["INITIAL", "CHANGED", "REFRESH", "UNKNOWN"], "default": "UNKNOWN"}, "default": "UNKNOWN"},
      {"name": "derivation", "type": {"type": "enum", "name": "Derivation", "symbols": ["INITIAL_SNAPSHOT", "SNAPSHOT_DIFF", "VENDOR_ENDED_FLAG", "REPLACED_BY_NEXT", "CONFIRMED_ABSENT", "REPORT", "UNKNOWN"], "default": "UNKNOWN"}, "default": "UNKNOWN"},
      {"name": "wolkvox", "type": ["null", {"type": "record", "name": "WolkvoxAgentDetails", "fields": [
        {"name": "calls", "type": ["null", "long"], "default": null},
        {"name": "inbound", "type": ["null", "long"], "default": null},
        {"name": "outbound", "type": ["null", "long"], "default": null},
        {"name": "internal", "type": ["null", "long"], "default": null},
        {"name": "time_state_now_s", "type": ["null", "long"], "default": null},
        {"name": "ready_time_s", "type": ["null", "long"], "default": null},
        {"name": "inbound_time_s", "type": ["null", "long"], "default": null},
        {"name": "outbound_time_s", "type": ["null", "long"], "default": null},
        {"name": "acw_time_s", "type": ["null", "long"], "default": null},
        {"name": "ring_time_s", "type": ["null", "long"], "default": null},
        {"name": "login_time_s", "type": ["null", "long"], "default": null},
        {"name": "aht_time_s", "type": ["null", "long"], "default": null},
        {"name": "aux_time_s", "type": ["null", "long"], "default": null},
        {"name": "ocupation", "type": ["null", "string"], "default": null},
        {"name": "raw", "type": "string"}
      ]}], "default": null},
      {"name": "comm100", "type": ["null", {"type": "record", "name": "Comm100AgentDetails", "fields": [
        {"name": "display_name", "type": ["null", "string"], "default": null},
        {"name": "ongoing_chats", "type": ["null", "long"], "default": null},
        {"name": "max_concurrent_chats", "type": ["null", "long"], "default": null},
        {"name": "intraday_chats", "type": ["null", "long"], "default": null},
        {"name": "intraday_linear_chat_time_ms", "type": ["null", "long"], "default": null},
        {"name": "intraday_linear_chat_time_raw", "type": ["null", "string"], "default": null}
      ]}], "default": null},
      {"name": "vonage", "type": ["null", {"type": "record", "name": "VonageAgentDetails", "fields": [
        {"name": "latest_interaction_id", "type": ["null", "string"], "default": null},
        {"name": "latest_interaction_started_at", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null},
        {"name": "latest_interaction_started_at_raw", "type": ["null", "string"], "default": null},
        {"name": "latest_interaction_has_ended", "type": ["null", "boolean"], "default": null}
      ]}], "default": null},
      {"name": "source_time_zone", "type": ["null", "string"], "default": null},
      {"name": "ccdc_version", "type": ["null", "string"], "default": null},
      {"name": "account_id", "type": ["null", "string"], "default": null}
    ]}'
);

-- The wallboard: agents per source and status category, live.
SELECT `source`, `status_category`, COUNT(*) AS agents
FROM agent_state
WHERE `listed`
GROUP BY `source`, `status_category`;
