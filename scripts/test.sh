#!/usr/bin/env bash
# Installs what is missing, builds everything and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
./scripts/install.sh
# the Helm chart and the Kubernetes manifests (helm lint, kubernetes-validate, yamllint)
./scripts/check_deploy.sh
# the end-to-end tests run the visionlog binary: build it (and every test) first
cargo build --locked --workspace --all-targets
cargo test --locked --workspace --no-fail-fast
