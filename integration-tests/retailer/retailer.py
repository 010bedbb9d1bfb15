"""A retailer's integration with visionlog over Kafka, written with nothing of visionlog's code.

The retailer is a Kafka user named after its tenant (SASL SCRAM over TLS) whose ACLs allow two
topics (see grant.py): it creates a task by producing a CreateTask command to its own command
topic `<prefix>.tenant.<tenant>.commands`, keyed by task id with librdkafka's Java-compatible
murmur2 partitioner and framed as Confluent Avro (magic byte 0, 4-byte schema id, Avro body),
with the envelope in headers (no tenant or actor: the topic is the tenant). It then reads its
task's whole life from its output topic `<prefix>.tenant.<tenant>.events` with
`isolation.level=read_committed`, until the result; and tries what it must not be able to do:
read another tenant's output topic, write the internal `commands` topic. Schemas come from
`visionlog schema list --json` (a file) here; with a Confluent-compatible registry a client
would fetch them by id over HTTP instead.

    python retailer.py --bootstrap HOST:PORT --ca CA.pem --tenant acme --password SECRET \
        --prefix PREFIX --schemas schemas.json --task-id ID [--other-tenant globex]

Prints one JSON object per line: `produced` (partition, offset), each `event` or `rejection` of
the task, then `refused` (what the broker answered to the two forbidden calls). Exits 0 once the
task's TaskResultGenerated is read, 1 on timeout.
"""

import argparse
import io
import json
import struct
import sys
import time
import uuid

import fastavro
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition


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


def refusal(client_error):
    return client_error.name() if client_error is not None else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--tenant", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--schemas", required=True)
    ap.add_argument("--task-id", required=True)
    ap.add_argument("--other-tenant", default=None)
    ap.add_argument("--timeout-s", type=float, default=60)
    ap.add_argument("--task-json", default=None,
                    help="the class group and images of the task, as JSON (default: two drinks, one photo)")
    args = ap.parse_args()
    topic = lambda name: f"{args.prefix}.{name}" if args.prefix else name
    mine = lambda name: topic(f"tenant.{args.tenant}.{name}")
    security = {"bootstrap.servers": args.bootstrap, "security.protocol": "SASL_SSL",
                "ssl.ca.location": args.ca, "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": args.tenant, "sasl.password": args.password}

    rows = json.load(open(args.schemas))
    by_id = {r["id"]: (r["name"], fastavro.parse_schema(json.loads(r["schema"]))) for r in rows}
    current = {r["name"]: r["id"] for r in rows if r["current"]}

    command_id = str(uuid.uuid4())
    create = {
        "customer": args.tenant,
        "task_type": "PRODUCT_DETECTION",
        "recipe": "DETECTION",
        "class_group": {"key": "shelf", "classes": [{"id": 1, "name": "cola 0.5l"}, {"id": 2, "name": "water 1l"}]},
        "images": [{"uri": "https://images.acme.example/store-7/shelf-3.jpg", "width": 1920, "height": 1080}],
        "callback_url": None,
    }
    if args.task_json:
        create.update({k: v for k, v in json.loads(args.task_json).items() if k in ("class_group", "images")})
    schema_id = current["visionlog.commands.CreateTask"]
    headers = [
        ("vl.command_id", command_id),
        ("vl.task_id", args.task_id),
        ("vl.type", "CreateTask"),
        ("vl.expected_version", "0"),
        ("vl.correlation_id", command_id),
        ("vl.occurred_at", str(int(time.time() * 1000))),
    ]
    producer = Producer({**security, "partitioner": "murmur2_random", "enable.idempotence": True})
    delivered = {}
    producer.produce(
        mine("commands"),
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

    consumer = Consumer({**security, "group.id": f"{args.tenant}-{command_id}", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    # the task's events live on the partition of its key; read them all from the start
    metadata = consumer.list_topics(mine("events"), timeout=10).topics[mine("events")]
    consumer.assign([TopicPartition(mine("events"), p, 0) for p in metadata.partitions])
    done = False
    deadline = time.time() + args.timeout_s
    while time.time() < deadline and not done:
        msg = consumer.poll(0.5)
        if msg is None or msg.error() or msg.key() != args.task_id.encode():
            continue
        hdrs = {k: v.decode() for k, v in (msg.headers() or [])}
        name, body = unframe(by_id, msg.value())
        if hdrs.get("vl.kind") == "event":
            print(json.dumps({"event": {"partition": msg.partition(), "offset": msg.offset(), "name": name,
                                        "version": int(hdrs["vl.version"]), "tenant": hdrs.get("vl.tenant"),
                                        "body": body}}), flush=True)
            done = name == "visionlog.events.TaskResultGenerated"
        else:
            print(json.dumps({"rejection": {"command_id": hdrs.get("vl.command_id"), "body": body}}), flush=True)
    consumer.close()

    refused = {}
    if args.other_tenant:
        # another tenant's output topic: the broker refuses the fetch
        other = topic(f"tenant.{args.other_tenant}.events")
        spy = Consumer({**security, "group.id": f"{args.tenant}-spy-{command_id}", "enable.auto.commit": False,
                        "auto.offset.reset": "earliest"})
        spy.subscribe([other])
        end = time.time() + 30
        while time.time() < end and "read_other_tenant" not in refused:
            msg = spy.poll(0.5)
            if msg is not None and msg.error():
                refused["read_other_tenant"] = refusal(msg.error())
            elif msg is not None:
                refused["read_other_tenant"] = "READ A RECORD"
        spy.close()
    # the internal command topic (service commands come only there): the broker refuses the write
    result = {}
    producer.produce(topic("commands"), key=args.task_id.encode(), value=b"x",
                     on_delivery=lambda err, msg: result.update(err=err))
    producer.flush(30)
    refused["write_commands"] = refusal(result.get("err")) if "err" in result else "NO ANSWER"
    print(json.dumps({"refused": refused}), flush=True)
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
