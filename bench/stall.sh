#!/usr/bin/env bash
# A stall of the sink under load: traced-service (100 % sampled, default queue) on /chain,
# exporting to the real collector with TracedApp's default config; halfway through, the
# collector is stopped for each stall length. Prints spans/s, the drops the service counted,
# and what reached the receiver. See service/examples/bench_stall.rs.
#
# Usage: bench/stall.sh [seconds=20] [stalls in ms=0,100,250,500,1000,2000]
# Needs wrk (Debian package) and the test tools (`cargo xtask setup`).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo xtask setup >/dev/null 2>&1 || cargo xtask setup
echo "building..." >&2
cargo build --release -q -p traced-service --bin traced-service --example bench_stall
exec target/release/examples/bench_stall "${1:-20}" "${2:-0,100,250,500,1000,2000}"
