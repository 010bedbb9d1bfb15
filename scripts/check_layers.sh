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

# module loops inside each crate (top-level modules: src/NAME.rs or src/NAME/)
"$VISIONLOG_PYTHON" - <<'PY'
import glob, os, re, sys
loops = []
for src in sorted(glob.glob("crates/*/src") + glob.glob("services/*/src")):
    mods = {os.path.basename(p)[:-3] for p in glob.glob(f"{src}/*.rs")} | {os.path.basename(os.path.dirname(p)) for p in glob.glob(f"{src}/*/mod.rs")}
    mods -= {"lib", "main"}
    edges = {m: set() for m in mods}
    for m in mods:
        files = glob.glob(f"{src}/{m}.rs") + glob.glob(f"{src}/{m}/**/*.rs", recursive=True)
        for f in files:
            # imports, not the links of doc comments
            text = "\n".join(l for l in open(f) if not l.lstrip().startswith("//"))
            edges[m] |= {t for t in re.findall(r"crate::([a-z_][a-z0-9_]*)", text) if t in mods and t != m}
    # a loop: a module reachable from itself
    def reach(start):
        seen, todo = set(), list(edges[start])
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(edges[n])
        return seen
    for m in sorted(mods):
        if m in reach(m):
            loops.append(f"{src}: {m} imports round a loop back to itself")
if loops:
    print("check_layers: module loops:", *loops, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print("check_layers: no module imports loop back")
PY
