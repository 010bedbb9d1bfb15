# Sourced by the other scripts: where builds go and how tools are found.
# Cargo's target dir lives outside the clone so that CI and later runs reuse the builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/visionlog/target}"
export PATH="$HOME/.cargo/bin:$PATH"
# Tools the scripts install (see install.sh).
export VISIONLOG_TOOLS="${VISIONLOG_TOOLS:-$HOME/.cache/visionlog/bin}"
export TANSU_BIN="${TANSU_BIN:-$VISIONLOG_TOOLS/tansu}"
export WEED_BIN="${WEED_BIN:-$VISIONLOG_TOOLS/weed}"
# A Python with a plain Kafka client, for the test of a retailer's own producer (install.sh).
export VISIONLOG_PYTHON="${VISIONLOG_PYTHON:-$HOME/.cache/visionlog/py/bin/python}"
# libtorch 2.13.0 for tch 0.26 (install.sh): the PyPI torch wheel's libraries and headers, with the
# two small CUDA runtime wheels that libtorch_cpu.so names. No other download.
export VISIONLOG_LIBTORCH_DIR="${VISIONLOG_LIBTORCH_DIR:-$HOME/.cache/visionlog/libtorch-2.13.0}"
export LIBTORCH="${LIBTORCH:-$VISIONLOG_LIBTORCH_DIR/torch}"
# The inference bench's baseline: Python with the full torch (install.sh, VISIONLOG_BENCH_DEPS=1).
export VISIONLOG_BENCH_PYTHON="${VISIONLOG_BENCH_PYTHON:-$HOME/.cache/visionlog/torch-py/bin/python}"
