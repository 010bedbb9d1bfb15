#!/usr/bin/env bash
# Installs what is missing, builds visionlog and runs its demo. Arguments go to `visionlog demo`,
# e.g. ./scripts/demo.sh --tasks 200 --json
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
./scripts/install.sh --demo >&2
cargo build --release --locked -p visionlog >&2
export VISIONLOG_DATA_DIR="${VISIONLOG_DATA_DIR:-.visionlog/demo}"
exec "$CARGO_TARGET_DIR/release/visionlog" demo "$@"
