#!/usr/bin/env bash
# Measures `task undo-batch` on a 10,000-task history (release build): a resend batch of every
# ninth task, undone; prints the times of the dry run and the undo and the rounds of the pipeline.
set -euo pipefail
B=${CARGO_TARGET_DIR:-$HOME/.cache/visionlog/target}/release/visionlog
D=${1:-/tmp/visionlog-undo-measure}
rm -rf "$D"
export VISIONLOG_DATA_DIR="$D"
date +%T
/usr/bin/time -f "demo %e s" "$B" --fsync never demo --tasks 10000 --no-images --json | tail -1
ids=$(seq -f "task-%06g" 0 9 9999 | tr '\n' ' ')
"$B" task resend --correlation-id big-batch $ids | tail -1
# runs the pipeline in 20 s rounds until 1,000 tasks have result revision $1; $2 names them
run_until_results() {
  for i in $(seq 1 40); do
    timeout -s TERM 20 "$B" --fsync never run --operators 3 || true
    n=$("$B" report tasks --status result_generated --limit 0 --json |
      python3 -c "import sys,json; print(sum(1 for l in sys.stdin if json.loads(l)['results']==$1))")
    echo "round $i: $n $2"
    [ "$n" -ge 1000 ] && break
  done
}
run_until_results 2 "re-done"
/usr/bin/time -f "undo dry-run %e s" "$B" task undo-batch big-batch --reason bench --dry-run --json | tail -1
/usr/bin/time -f "undo %e s" "$B" task undo-batch big-batch --reason bench --json | tail -1
run_until_results 3 "reverted with a new result"
"$B" task list --json | wc -l
date +%T
