"""A retailer's integration with visionlog over Kafka, written with nothing of visionlog's code.

It creates a task by producing a CreateTask command to the `commands` topic, keyed by task id with
librdkafka's Java-compatible murmur2 partitioner and framed as Confluent Avro (magic byte 0,
4-byte schema id, Avro body), with the envelope in headers; then reads the task's outcome and its
events back the same way. Schemas come from `visionlog schema list --json` (a file) here; with a
Confluent-compatible registry a client would fetch them by id over HTTP instead.

    python retailer.py --bootstrap HOST:PORT --prefix PREFIX --schemas schemas.json --task-id ID

Prints one JSON object per line: `produced` (partition, offset), `outcome`, then each `event`.
Exits 0 once the task's TaskCreated and the outcome of its command are read, 1 on timeout.
"""

import argparse
import io
import json
import struct
import sys
import time
import uuid

import fastavro
from confluent_kafka import Consumer, Producer, TopicPartition


def frame(schema_id, parsed, value):
    out = io.BytesIO()
    out.write(struct.pack(">bI", 0, schema_id))
    fastavro.schemaless_writer(out, parsed, value)
    return out.getvalue()


def unframe(by_id, payload):
    magic, schema_id = struct.unpack(">bI", payload[:5])
    if magic != 0 or schema_id not in by_id:
        raise ValueError(f"not Confluent Avro of a known schema (magic {magic}, id {schema_id})")
    name, parsed = by_id[schema_id]
    return name, fastavro.schemaless_reader(io.BytesIO(payload[5:]), parsed, parsed)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--schemas", required=True)
    ap.add_argument("--task-id", required=True)
    ap.add_argument("--timeout-s", type=float, default=60)
    args = ap.parse_args()
    topic = lambda name: f"{args.prefix}.{name}" if args.prefix else name

    rows = json.load(open(args.schemas))
    by_id = {r["id"]: (r["name"], fastavro.parse_schema(json.loads(r["schema"]))) for r in rows}
    current = {r["name"]: r["id"] for r in rows if r["current"]}

    command_id = str(uuid.uuid4())
    create = {
        "customer": "acme",
        "task_type": "PRODUCT_DETECTION",
        "recipe": "DETECTION",
        "class_group": {"key": "shelf", "classes": [{"id": 1, "name": "cola 0.5l"}, {"id": 2, "name": "water 1l"}]},
        "images": [{"uri": "https://images.acme.example/store-7/shelf-3.jpg", "width": 1920, "height": 1080}],
        "callback_url": None,
    }
    schema_id = current["visionlog.commands.CreateTask"]
    headers = [
        ("vl.command_id", command_id),
        ("vl.task_id", args.task_id),
        ("vl.type", "CreateTask"),
        ("vl.expected_version", "0"),
        ("vl.actor", "customer:acme"),
        ("vl.tenant", "acme"),
        ("vl.correlation_id", command_id),
        ("vl.occurred_at", str(int(time.time() * 1000))),
    ]
    producer = Producer({"bootstrap.servers": args.bootstrap, "partitioner": "murmur2_random", "enable.idempotence": True})
    delivered = {}
    producer.produce(
        topic("commands"),
        key=args.task_id.encode(),
        value=frame(schema_id, by_id[schema_id][1], create),
        headers=headers,
        on_delivery=lambda err, msg: delivered.update(err=err, partition=msg.partition(), offset=msg.offset()),
    )
    producer.flush(30)
    if delivered.get("err") is not None or "partition" not in delivered:
        print(json.dumps({"error": str(delivered.get("err"))}))
        return 1
    print(json.dumps({"produced": {"partition": delivered["partition"], "offset": delivered["offset"]}}), flush=True)

    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"retailer-{command_id}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    # the task's events live on the partition of its key, the outcome on the partition of the
    # command id: read every partition of both from the start, as a plain client would
    assignment = []
    for name in ("events", "outcomes"):
        metadata = consumer.list_topics(topic(name), timeout=10).topics[topic(name)]
        assignment += [TopicPartition(topic(name), p, 0) for p in metadata.partitions]
    consumer.assign(assignment)
    outcome, created = None, False
    deadline = time.time() + args.timeout_s
    while time.time() < deadline and not (outcome and created):
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        hdrs = {k: v.decode() for k, v in (msg.headers() or [])}
        if msg.topic() == topic("outcomes") and msg.key() == command_id.encode():
            _, outcome = unframe(by_id, msg.value())
            print(json.dumps({"outcome": outcome}), flush=True)
        elif msg.topic() == topic("events") and msg.key() == args.task_id.encode() and hdrs.get("vl.kind") == "event":
            name, event = unframe(by_id, msg.value())
            print(json.dumps({"event": {"partition": msg.partition(), "offset": msg.offset(), "name": name,
                                        "version": int(hdrs["vl.version"]), "body": event}}), flush=True)
            created = created or name == "visionlog.events.TaskCreated"
    consumer.close()
    return 0 if outcome and created else 1


if __name__ == "__main__":
    sys.exit(main())
