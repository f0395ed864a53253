#!/usr/bin/env python3
"""The P5 baseline of ccdc's benchmarks (BENCHMARKS.md): the P1 snapshot cycle done the
straightforward way in Python.

Every cycle: GET the Wolkvox real-time interactions (requests), `json` (via `Response.json()`),
the snapshot as a dict keyed by (conn_id, agent_id), a dict diff against the previous cycle's,
one `interaction-event` per started or ended interaction with the same fields ccdc publishes
(a UUIDv5 event id, the vendor date read in the source's time zone, first sighting and the
duration bounds of an ended interaction), serialized by confluent-kafka's stock `AvroSerializer`
(the schema registered in a schema registry), sent by an idempotent producer with ccdc's
producer settings (acks=all, lz4, linger.ms=5, murmur2_random), and `flush()` until every record
is acknowledged. No durable state: a crash loses the previous snapshot (and with it the events of
what changed meanwhile), which ccdc's sled outbox never does.

Prints one JSON line at the end, the same measures as ccdc's P1 child: per cycle the wall time,
the process CPU time (user + sys of every thread, librdkafka's included) and the fetch + parse +
diff time, and the peak RSS.

    poller.py --base-url URL --token T --bootstrap HOST:PORT --registry URL \
        --schema schemas/interaction-event.avsc --topic T --cycles N
"""

import argparse
import json
import resource
import sys
import time
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import requests
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

# ccdc's event id namespace (src/event/id.rs): the same ids for the same transitions.
NAMESPACE = uuid.UUID(int=0x6A1F3C2E9B7D4E58A1C05D2F8E4B7C91)


def local_ms(text, tz):
    """A Wolkvox local date ("2026-11-21 10:15:00") in the source's zone, as UTC epoch ms."""
    if not text:
        return None
    try:
        return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=tz).timestamp() * 1000)
    except ValueError:
        return None


def fetch(session, url, token):
    """One observation: {(conn_id, agent_id): {subject, from_name, date}}."""
    body = session.get(url, headers={"wolkvox-token": token}, timeout=60).json()
    if str(body.get("code")).strip() not in ("200", "201", "202"):
        raise RuntimeError(f"vendor error {body.get('code')}: {body.get('error')}")
    snapshot = {}
    for agent in body["data"]:
        agent_id = str(agent["agent_id"]).strip()
        for it in agent["active_interactions"]:
            key = (str(it["conn_id"]).strip(), agent_id)
            if key not in snapshot:
                snapshot[key] = {
                    "subject": it.get("subject") or None,
                    "from_name": it.get("fromname") or None,
                    "date": it.get("date") or None,
                }
    return snapshot


def event(source, kind, key, seen, now, previous_at, counterpart, tz):
    conn_id, agent_id = key
    window = "initial" if previous_at is None else str(previous_at)
    name = "interaction-started" if kind == "STARTED" else "interaction-ended"
    event_id = uuid.uuid5(NAMESPACE, "\x1f".join([source, name, agent_id, conn_id, window]))
    started = local_ms(seen["date"], tz)
    e = {
        "event_id": str(event_id),
        "event_type": kind,
        "source": source,
        "vendor": "wolkvox",
        "agent_id": agent_id,
        "interaction_id": conn_id,
        "initial": previous_at is None,
        "transfer": counterpart is not None,
        "transfer_agent_id": counterpart,
        "observed_at": now,
        "previous_observed_at": previous_at,
        "vendor_timestamp": started,
        "vendor_timestamp_raw": seen["date"],
        "subject": seen["subject"],
        "from_name": seen["from_name"],
        "latest_only": False,
        "started_at": started,
        "started_at_raw": seen["date"],
        "first_observed_at": now if kind == "STARTED" else seen.get("first_seen"),
        "ended_after": None,
        "ended_before": None,
        "duration_ms": None,
        "duration_min_ms": None,
        "duration_max_ms": None,
        "derivation": "INITIAL_SNAPSHOT" if previous_at is None else "SNAPSHOT_DIFF",
        "source_time_zone": str(tz),
        "ccdc_version": None,
        "account_id": None,
    }
    if kind == "ENDED":
        # Started at the vendor's time, else between the poll before the first sighting and it;
        # ended after the previous poll, by this one.
        latest_start = started if started is not None else seen.get("first_seen")
        earliest_start = started if started is not None else seen.get("seen_after")
        e["ended_after"], e["ended_before"] = previous_at, now
        if latest_start is not None:
            e["duration_min_ms"] = max(0, previous_at - latest_start)
        if earliest_start is not None:
            e["duration_max_ms"] = max(0, now - earliest_start)
        lo, hi = e["duration_min_ms"], e["duration_max_ms"]
        e["duration_ms"] = lo if hi is None else (hi if lo is None else (lo + hi) // 2)
    return e


def diff(source, previous, current, previous_at, now, tz):
    ended = [k for k in previous if k not in current]
    started = [k for k in current if k not in previous]
    started_by_conn = {}
    for k in started:
        started_by_conn.setdefault(k[0], []).append(k[1])
    ended_by_conn = {}
    for k in ended:
        ended_by_conn.setdefault(k[0], []).append(k[1])
    events = []
    for k in ended:
        other = min(started_by_conn.get(k[0], []), default=None)
        events.append(event(source, "ENDED", k, previous[k], now, previous_at, other, tz))
    for k in started:
        other = min(ended_by_conn.get(k[0], []), default=None)
        events.append(event(source, "STARTED", k, current[k], now, previous_at, other, tz))
    events.sort(key=lambda e: (e["interaction_id"], e["event_type"] == "STARTED", e["agent_id"]))
    return events


def main():
    p = argparse.ArgumentParser()
    for a in ("--base-url", "--token", "--bootstrap", "--registry", "--schema", "--topic"):
        p.add_argument(a, required=True)
    p.add_argument("--cycles", type=int, default=10)
    p.add_argument("--source", default="bench")
    p.add_argument("--time-zone", default="America/Bogota")
    args = p.parse_args()
    tz = ZoneInfo(args.time_zone)
    url = f"{args.base_url}/real_time.php?api=interactions"
    with open(args.schema) as f:
        schema = f.read()
    serializer = AvroSerializer(SchemaRegistryClient({"url": args.registry}), schema)
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": True,
        "compression.type": "lz4",
        "acks": "all",
        "linger.ms": 5,
        "partitioner": "murmur2_random",
    })
    acked = [0]

    def delivered(err, _msg):
        if err is not None:
            raise RuntimeError(f"delivery failed: {err}")
        acked[0] += 1

    # Warm up as ccdc's pipeline does: connections and the producer id in place before the clock.
    producer.produce(args.topic, key=b"warm-up", value=b"\0", on_delivery=delivered)
    producer.flush()
    session = requests.Session()
    previous, previous_at = {}, None
    out = {"wall_ms": [], "cpu_ms": [], "poll_ms": [], "peak_rss_kb": 0, "setup_rss_kb": 0,
           "first_peak_rss_kb": 0, "steady_events": 0}
    out["setup_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ctx = SerializationContext(args.topic, MessageField.VALUE)
    for cycle in range(args.cycles + 1):
        t, cpu = time.perf_counter(), time.process_time()
        now = int(time.time() * 1000)
        current = fetch(session, url, args.token)
        # What earlier polls learnt: the first sighting and the poll before it.
        for k, v in current.items():
            was = previous.get(k)
            v["first_seen"] = was["first_seen"] if was else now
            v["seen_after"] = was["seen_after"] if was else previous_at
        events = diff(args.source, previous, current, previous_at, now, tz)
        polled = time.perf_counter() - t
        for e in events:
            producer.produce(
                args.topic,
                key=f"{e['source']}/{e['interaction_id']}".encode(),
                value=serializer(e, ctx),
                on_delivery=delivered,
            )
            producer.poll(0)
        producer.flush()
        out["cpu_ms"].append((time.process_time() - cpu) * 1000)
        out["wall_ms"].append((time.perf_counter() - t) * 1000)
        out["poll_ms"].append(polled * 1000)
        if cycle > 0:
            out["steady_events"] += len(events)
        else:
            out["first_peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        previous, previous_at = current, now
    out["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
