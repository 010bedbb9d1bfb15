#!/usr/bin/env bash
# Installs what visionlog needs to build and test, where it is missing. Idempotent.
# Today that is a Rust toolchain with rustfmt and clippy, and a C compiler for -sys crates;
# the Kafka broker, S3 server and libtorch steps join here with their issues.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

need() { command -v "$1" >/dev/null 2>&1; }

if ! need cargo; then
    echo "install: cargo is missing; this machine's Rust toolchain (rustup) is required" >&2
    exit 1
fi
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        echo "install: adding the $component component"
        rustup component add "$component"
    fi
done
if ! need cc; then
    echo "install: installing a C compiler"
    apt-get update -q && apt-get install -y -q build-essential
fi
mkdir -p "$CARGO_TARGET_DIR"
echo "install: $(cargo --version), target dir $CARGO_TARGET_DIR"
