"""Third-party consumer check: confluent-kafka's own Consumer + AvroDeserializer + SchemaRegistryClient
decode every record ccdc produced, with no custom code, and match what the Rust test decoded; the
CloudEvents SDK's Kafka binding (binary mode) reads each record's headers as a valid CloudEvent whose
attributes are the ones the payload implies, its `time` the record's own timestamp (CreateTime).

Reads by assigning every partition from offset 0 (tansu's consumer groups are unreliable)."""
import argparse
import json
import sys
import time
import datetime

from urllib.parse import urlparse

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import SerializationContext, MessageField


def millis(v):
    if v is None or isinstance(v, int):
        return v
    # fastavro turns timestamp-millis into aware datetimes (exact integer arithmetic: a float
    # product can land a millisecond low).
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (v - epoch) // datetime.timedelta(milliseconds=1)


def check_cloudevent(m, event_id, want):
    """The record's headers as a CloudEvent (the SDK validates the required attributes): the
    attributes the payload implies, and `time` = the record's timestamp = the event's time."""
    msg = KafkaMessage(headers={k: v for k, v in (m.headers() or [])}, key=m.key(), value=m.value())
    ce = from_binary(msg, JSONFormat())
    attrs = ce.get_attributes()
    have = {
        "specversion": attrs.get("specversion"),
        "id": attrs.get("id"),
        "source": attrs.get("source"),
        "type": attrs.get("type"),
        "subject": attrs.get("subject"),
        "time": millis(attrs.get("time")),
        "datacontenttype": attrs.get("datacontenttype"),
    }
    if have != want:
        return f"record {event_id}: CloudEvent {have!r}, expected {want!r}"
    if have["id"] != event_id:
        return f"record {event_id}: ce_id {have['id']!r}"
    if not urlparse(have["source"]).scheme:
        return f"record {event_id}: ce_source {have['source']!r} is not an absolute URI"
    kind, ts = m.timestamp()
    if kind != TIMESTAMP_CREATE_TIME or ts != want["time"]:
        return f"record {event_id}: timestamp {(kind, ts)!r}, expected CreateTime {want['time']}"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--expected", required=True)
    a = ap.parse_args()
    spec = json.load(open(a.expected))
    expected, cloudevents = spec["events"], spec["cloudevents"]

    deser = AvroDeserializer(SchemaRegistryClient({"url": a.registry}))
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "ccdc-interop", "enable.auto.commit": False})
    md = c.list_topics(a.topic, timeout=10)
    parts = md.topics[a.topic].partitions
    c.assign([TopicPartition(a.topic, p, OFFSET_BEGINNING) for p in parts])

    got = []
    deadline = time.time() + 60
    while len(got) < len(expected) and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            print("consumer error:", m.error(), file=sys.stderr)
            continue
        rec = deser(m.value(), SerializationContext(a.topic, MessageField.VALUE))
        got.append((m, rec))
    c.close()

    if len(got) != len(expected):
        print(f"expected {len(expected)} records, decoded {len(got)}", file=sys.stderr)
        return 1
    by_id = {e["event_id"]: e for e in expected}
    for m, rec in got:
        want = by_id.get(str(rec["event_id"]))
        if want is None:
            print("unexpected event", rec, file=sys.stderr)
            return 1
        for k, v in want.items():
            have = rec[k]
            if isinstance(have, datetime.datetime):
                have = millis(have)  # every timestamp-millis field
            if k == "event_id":
                have = str(have)
            if have != v:
                print(f"field {k}: python decoded {have!r}, rust decoded {v!r}", file=sys.stderr)
                return 1
    print(f"interop ok: {len(got)} records")
    for m, rec in got:
        event_id = str(rec["event_id"])
        problem = check_cloudevent(m, event_id, cloudevents[event_id])
        if problem:
            print(problem, file=sys.stderr)
            return 1
    print(f"cloudevents ok: {len(got)} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
