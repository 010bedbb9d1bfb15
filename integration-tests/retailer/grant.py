"""What ops does for each retailer on Kafka, with Kafka's own admin API (nothing of visionlog's):
a SCRAM user named after the tenant and ACLs that let it write its command topic, read its output
topic (with consumer groups named `<tenant>-...`), and nothing else. docs/operations.md gives the
same with `kafka-acls.sh` and `kafka-configs.sh`.

    python grant.py --bootstrap HOST:PORT --prefix PREFIX --tenant acme --password SECRET

The bootstrap is an admin's listener (a super user). Prints {"granted": TENANT} and exits 0.
"""

import argparse
import json
import sys

from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                   ResourcePatternType, ResourceType, ScramCredentialInfo,
                                   ScramMechanism, UserScramCredentialUpsertion)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--tenant", required=True)
    ap.add_argument("--password", required=True)
    args = ap.parse_args()
    topic = lambda name: f"{args.prefix}.tenant.{args.tenant}.{name}" if args.prefix else f"tenant.{args.tenant}.{name}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})

    upsert = UserScramCredentialUpsertion(args.tenant, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                          args.password.encode())
    for f in admin.alter_user_scram_credentials([upsert]).values():
        f.result(timeout=30)

    principal = f"User:{args.tenant}"
    allow = lambda rtype, name, op, pattern=ResourcePatternType.LITERAL: AclBinding(
        rtype, name, pattern, principal, "*", op, AclPermissionType.ALLOW)
    bindings = [
        allow(ResourceType.TOPIC, topic("commands"), AclOperation.WRITE),
        allow(ResourceType.TOPIC, topic("commands"), AclOperation.DESCRIBE),
        allow(ResourceType.TOPIC, topic("events"), AclOperation.READ),
        allow(ResourceType.TOPIC, topic("events"), AclOperation.DESCRIBE),
        allow(ResourceType.GROUP, f"{args.tenant}-", AclOperation.READ, ResourcePatternType.PREFIXED),
        # the idempotent producer of a retailer (enable.idempotence) needs nothing more on Kafka 3+
    ]
    for f in admin.create_acls(bindings).values():
        f.result(timeout=30)
    print(json.dumps({"granted": args.tenant}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
