#!/usr/bin/env bash
# Benchmark of the Lambda function's telemetry (issue 22): cold start (the first invocation,
# and the telemetry init the function logs) and warm invocations (p50/p99 round trip), with
# telemetry on and off in paired, alternating rounds, under the Runtime Interface Emulator with
# the rendered layer configuration (collector → Jaeger). Needs root (the emulator runs in a
# mount namespace of its own) and `cargo xtask setup`.
#
# Usage: bench/lambda.sh [rounds=6] [invokes=300]
set -euo pipefail
cd "$(dirname "$0")/.."
echo "building release binaries..." >&2
cargo build --release -q -p tracedapp-lambda --bin bootstrap --example bench
target/release/examples/bench target/release/bootstrap "${1:-6}" "${2:-300}"
