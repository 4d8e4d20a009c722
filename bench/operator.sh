#!/usr/bin/env bash
# Benchmark of the operator on a real kube-apiserver: N TracedApps created at once, time to
# converge, passes, writes and API requests per pass, peak RSS, then writes during a steady
# state (target 0). See operator/examples/bench_operator.rs.
#
# Usage: bench/operator.sh [apps=200] [steady seconds=60]
# Needs the test tools (`cargo xtask setup`). Prints a summary; paste it into BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
APPS=${1:-200}
STEADY=${2:-60}
cargo xtask setup >/dev/null
echo "building the release operator..." >&2
cargo build --release -q -p tracedapp-operator --bin tracedapp-operator --example bench_operator
exec target/release/examples/bench_operator target/release/tracedapp-operator "$APPS" "$STEADY"
