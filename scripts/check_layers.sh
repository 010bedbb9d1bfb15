#!/usr/bin/env bash
# The layering rule, from `cargo metadata`: a library crate (crates/) never depends on a service
# (services/), a service never depends on another service; only the binary (services/visionlog)
# and the integration tests wire services together. Dev-dependencies count too: a crate's tests
# that need a service belong to the integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo metadata --locked --format-version 1 --no-deps | "$VISIONLOG_PYTHON" -c '
import json, os, sys
meta = json.load(sys.stdin)
root = meta["workspace_root"]
kind = {}
for p in meta["packages"]:
    rel = os.path.relpath(os.path.dirname(p["manifest_path"]), root)
    kind[p["name"]] = "crate" if rel.startswith("crates/") else "service" if rel.startswith("services/") else "other"
wiring = {"visionlog"}
faults = []
for p in meta["packages"]:
    me = p["name"]
    for d in p["dependencies"]:
        dep = d["name"]
        if kind.get(dep) != "service" or me in wiring or kind[me] == "other":
            continue
        what = "a library crate" if kind[me] == "crate" else "a service"
        dep_kind = d["kind"] or "normal"
        faults.append(f"{me} ({what}) depends on the service {dep} ({dep_kind})")
if faults:
    print("check_layers: the layering rule is broken:", *faults, sep="\n  ", file=sys.stderr)
    sys.exit(1)
crates = sum(1 for k in kind.values() if k == "crate")
services = sum(1 for k in kind.values() if k == "service")
print(f"check_layers: {crates} crates and {services} services keep the layering rule")
'
