#!/usr/bin/env bash
# Sizing the collector sidecar: the real collector with TracedApp's default rendered config
# (memory_limiter, batch, traces to a real Jaeger), fed OTLP/gRPC spans at fixed rates, then a
# burst with Jaeger down. See service/examples/bench_collector.rs.
#
# Usage: bench/collector.sh [seconds per rate=20] [rates=1000,5000,20000]
# Needs the test tools (`cargo xtask setup`). Prints a table; paste it into BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo xtask setup >/dev/null 2>&1 || cargo xtask setup
echo "building..." >&2
cargo build --release -q -p traced-service --example bench_collector
exec target/release/examples/bench_collector "${1:-20}" "${2:-1000,5000,20000}"
