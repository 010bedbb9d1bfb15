#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/fuzz_targets: Confluent/Avro records, envelope headers, PNG
# uploads, operator sessions, JSON task commands) for FUZZ_SECONDS (default 30) from the committed corpus
# (fuzz/corpus/<target>), with libFuzzer and AddressSanitizer on the nightly toolchain.
# A crash, a leak, a timeout or an out-of-memory fails the run; its input is left under
# $FUZZ_WORK/<target>/artifacts. Longer runs: FUZZ_SECONDS=600 ./scripts/fuzz.sh [target...]
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${VISIONLOG_CACHE:-$HOME/.cache/visionlog}"
SECONDS_EACH="${FUZZ_SECONDS:-30}"
WORK="${FUZZ_WORK:-$CACHE/fuzz-work}"
export CARGO_TARGET_DIR="$CACHE/fuzz-target"
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
    exit 1
fi
if [ ! -x "$CACHE/cargo-fuzz/bin/cargo-fuzz" ]; then
    echo "fuzz: installing cargo-fuzz from crates.io" >&2
    cargo install --locked cargo-fuzz --version 0.13.2 --root "$CACHE/cargo-fuzz" >&2 ||
        cargo install --locked cargo-fuzz --root "$CACHE/cargo-fuzz" >&2
fi
export PATH="$CACHE/cargo-fuzz/bin:$PATH"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(codec headers png summarizer commands)
cd fuzz
for t in "${targets[@]}"; do
    # what the run finds goes to a work folder; the committed corpus is only read
    mkdir -p "$WORK/$t/corpus" "$WORK/$t/artifacts"
    echo "fuzz: $t for ${SECONDS_EACH}s" >&2
    cargo +nightly fuzz run "$t" "$WORK/$t/corpus" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$WORK/$t/artifacts/" -print_final_stats=1 2>"$WORK/$t/log" ||
        { tail -40 "$WORK/$t/log" >&2; echo "fuzz: $t FAILED (input under $WORK/$t/artifacts)" >&2; exit 1; }
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$WORK/$t/log" | sed "s/^/fuzz: $t /" >&2
done
