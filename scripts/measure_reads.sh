#!/usr/bin/env bash
# Measures the gateway's reads of one task (release build) on a 10,000-task history: each read
# folds the task's events from its partition of the journal (no per-task index yet), so the
# time grows with the partition. Prints median and max of 10 requests per endpoint, and the
# static endpoint of the same server for scale.
set -euo pipefail
B=${CARGO_TARGET_DIR:-$HOME/.cache/visionlog/target}/release/visionlog
D=${1:-/tmp/visionlog-reads-measure}
rm -rf "$D"
export VISIONLOG_DATA_DIR="$D"
"$B" --fsync never demo --tasks 10000 --no-images --json | tail -1
echo '{"tenants": [{"id": "acme", "tokens": ["acme-token"]}]}' > "$D/tenants.json"
addr=127.0.0.1:$((20000 + RANDOM % 20000))
"$B" --tenants "$D/tenants.json" --fsync never run --gateway-addr "$addr" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
until curl -sf "http://$addr/v1/ping" >/dev/null; do sleep 0.2; done
for path in /v1/ping /v1/tasks/task-000123 /v1/tasks/task-000123/events /v1/tasks/task-000123/state?version=3 /v1/tasks/task-009999/result; do
    for i in $(seq 1 10); do
        curl -s -o /dev/null -w '%{time_total}\n' -H 'authorization: Bearer acme-token' "http://$addr$path"
    done | sort -n | awk -v p="$path" '{ t[NR] = $1 } END { printf "%-42s median %.1f ms, max %.1f ms\n", p, t[int((NR + 1) / 2)] * 1000, t[NR] * 1000 }'
done
