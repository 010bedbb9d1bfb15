#!/usr/bin/env bash
# Installs what is missing, builds everything and runs every test, against the real engines:
# Apache Kafka and Apache Cassandra (scripts/engines.sh), started once for the run and stopped at
# the end, even when a test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
./scripts/install.sh
# the Helm chart and the Kubernetes manifests (helm lint, kubernetes-validate, yamllint)
./scripts/check_deploy.sh
# crates never depend on services, services never on each other (only the binary wires them)
./scripts/check_layers.sh
# the end-to-end tests run the visionlog binary: build it (and every test) first
cargo build --locked --workspace --all-targets
trap './scripts/engines.sh down' EXIT
./scripts/engines.sh down
engines=$(./scripts/engines.sh up)
echo "$engines"
while IFS= read -r line; do
    export "${line?}"
done <<<"$engines"
cargo test --locked --workspace --no-fail-fast
# fuzz targets (Avro records, envelope headers, PNG, operator sessions) for 30 s each from the committed corpus
FUZZ_SECONDS="${FUZZ_SECONDS:-30}" ./scripts/fuzz.sh
