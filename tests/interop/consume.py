"""Third-party consumer check: confluent-kafka's own Consumer + AvroDeserializer + SchemaRegistryClient
decode every record ccdc produced, with no custom code, and match what the Rust test decoded.

Reads by assigning every partition from offset 0 (tansu's consumer groups are unreliable)."""
import argparse
import json
import sys
import time
import datetime

from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import SerializationContext, MessageField


def millis(v):
    if v is None or isinstance(v, int):
        return v
    return int(v.timestamp() * 1000)  # fastavro turns timestamp-millis into aware datetimes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--expected", required=True)
    a = ap.parse_args()
    expected = json.load(open(a.expected))

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
        got.append(rec)
    c.close()

    if len(got) != len(expected):
        print(f"expected {len(expected)} records, decoded {len(got)}", file=sys.stderr)
        return 1
    by_id = {e["event_id"]: e for e in expected}
    for rec in got:
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
