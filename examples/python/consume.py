#!/usr/bin/env python3
"""Read ccdc's topics with nothing but confluent-kafka.

* The stock AvroDeserializer fetches each record's writer schema from the Schema Registry by the id
  in the record (Confluent wire format): no schema files, no generated classes.
* The CloudEvents headers (ce_type, ce_subject, ce_time, ...) say what a record is without decoding
  it; the record timestamp is the event's own time (observed_at), not the moment it was sent.
* The agent-state topic is a table: keep the last record per key and you have the current state of
  every agent, every vendor.

    pip install -r requirements.txt
    python consume.py --bootstrap localhost:9092 --registry http://localhost:8081
    python consume.py ... --from-beginning --until-end   # everything so far, then the table, exit

Without --from-beginning the consumer joins the group --group and resumes from its committed
offsets, like any service would. With it, every partition is assigned from offset 0 and nothing is
committed: each run reads the whole history (that is how a table is built from a compacted topic).
--until-end stops once every partition is read up to the end it had at start.
"""
import argparse
import datetime
import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_NOT_AVAILABLE, Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def utc(t):
    """A record timestamp (epoch ms) or a decoded timestamp-millis field as RFC 3339 UTC."""
    if isinstance(t, int):
        t = EPOCH + datetime.timedelta(milliseconds=t)
    return t.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cloudevent(msg):
    """The record's CloudEvents attributes: binary mode, one `ce_<attribute>` header each."""
    return {k[3:]: v.decode() for k, v in (msg.headers() or []) if k.startswith("ce_")}


def show_event(msg, event):
    ce = cloudevent(msg)
    kind, ts = msg.timestamp()
    time_ = utc(ts) if kind != TIMESTAMP_NOT_AVAILABLE else "-"
    print(
        f"event p={msg.partition()} offset={msg.offset()} time={time_}"
        f" ce_type={ce.get('type')} ce_subject={ce.get('subject')} key={msg.key().decode()}"
        f" event_type={event['event_type']} agent={event['agent_id']}"
        f" interaction={event['interaction_id']}"
    )


def show_table(table):
    print(f"agent-state table: {len(table)} agents")
    for key, a in sorted(table.items()):
        print(
            f"agent key={key} category={a['status_category']}"
            f" active={a['active_interaction_count']} listed={str(a['listed']).lower()}"
            f" observed_at={utc(a['observed_at'])} status={json.dumps(a['status'])}"
        )


def start(consumer, topics, from_beginning):
    """Subscribe (group offsets) or assign every partition from offset 0. Returns, per partition,
    its (first, end) offsets: where reading starts and the end to read up to (from-beginning only)."""
    if not from_beginning:
        consumer.subscribe(topics)
        return {}
    parts = []
    for t in topics:
        meta = consumer.list_topics(t, timeout=10).topics[t]
        if meta.error is not None:
            raise SystemExit(f"topic {t}: {meta.error}")
        parts += [TopicPartition(t, p, OFFSET_BEGINNING) for p in sorted(meta.partitions)]
    consumer.assign(parts)
    return {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10) for tp in parts}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", default="localhost:9092")
    ap.add_argument("--registry", default="http://localhost:8081")
    ap.add_argument("--topic", default="ccdc.interactions", help="the interactions topic")
    ap.add_argument("--agent-state-topic", default="ccdc.agent-state")
    ap.add_argument("--group", default="ccdc-example")
    ap.add_argument("--from-beginning", action="store_true", help="assign from offset 0, commit nothing")
    ap.add_argument("--until-end", action="store_true", help="stop at the end (needs --from-beginning)")
    ap.add_argument("--idle-timeout", type=float, default=30.0, help="--until-end: give up after this many quiet seconds")
    a = ap.parse_args()
    if a.until_end and not a.from_beginning:
        ap.error("--until-end needs --from-beginning")

    deserialize = AvroDeserializer(SchemaRegistryClient({"url": a.registry}))
    consumer = Consumer({
        "bootstrap.servers": a.bootstrap,
        "group.id": a.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": not a.from_beginning,
    })
    offsets = start(consumer, [a.topic, a.agent_state_topic], a.from_beginning)
    read = {tp: first for tp, (first, _) in offsets.items()}  # the next offset to read
    ends = {tp: end for tp, (_, end) in offsets.items()}
    table = {}
    last = time.monotonic()
    try:
        while not (a.until_end and all(read[tp] >= end for tp, end in ends.items())):
            msg = consumer.poll(1.0)
            if msg is None:
                if a.until_end and time.monotonic() - last > a.idle_timeout:
                    print(f"nothing for {a.idle_timeout}s short of the end: {read} < {ends}", file=sys.stderr)
                    return 1
                continue
            if msg.error():
                print("consumer error:", msg.error(), file=sys.stderr)
                continue
            last = time.monotonic()
            read[(msg.topic(), msg.partition())] = msg.offset() + 1
            value = deserialize(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
            if msg.topic() == a.agent_state_topic:
                key = msg.key().decode()
                if value is None:  # a tombstone deletes the row (ccdc sends OFFLINE records instead)
                    table.pop(key, None)
                else:
                    table[key] = value
            else:
                show_event(msg, value)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    show_table(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
