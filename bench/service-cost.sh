#!/usr/bin/env bash
# What telemetry costs the service per request, in CPU: the service's own CPU time (user +
# system, from /proc/<pid>/stat) during `wrk -t2 -c16` on `/`, divided by the requests served.
# Three settings: telemetry off (OTEL_SDK_DISABLED=true), 10 % sampled (traceidratio 0.1) and
# 100 % sampled, exported over OTLP/gRPC to the loopback sink. The cost of telemetry is each
# setting minus "off" in the same round. With two binaries (before / after a change) the rounds
# alternate between them, so the machine's drift falls on both alike.
#
# RATE=5000: instead of wrk's closed loop, an open loop at that many requests per second
# (examples/fixed_rate.rs), so that the service's CPU per request is not shaped by how fast it
# answers (under a closed loop, a slower answer changes how the kernel batches the next ones).
#
# Usage: [RATE=5000] bench/service-cost.sh [rounds=6] [seconds=8] [binary A] [binary B]
#   (default: the release traced-service alone). Prints medians and ranges.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-6}
SECS=${2:-8}
RATE=${RATE:-}
[ -n "$RATE" ] || command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -q -p traced-service --bin traced-service --example otlp_sink --example fixed_rate
FIXED=target/release/examples/fixed_rate
A=${3:-target/release/traced-service}
B=${4:-}
SINK=target/release/examples/otlp_sink
SVC_PORT=${SVC_PORT:-3310}; SINK_PORT=${SINK_PORT:-4337}; STATS_PORT=${STATS_PORT:-4398}
OUT=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; exit 1; }

"$SINK" "$SINK_PORT" "$STATS_PORT" 2>"$OUT/sink.log" & pids+=($!)
wait_port "$SINK_PORT"

one() { # $1 binary label, $2 binary, $3 setting
  local env=(LOG_FORMAT=json ACCESS_LOG=false OTEL_SERVICE_NAME=bench
             OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK_PORT")
  case $3 in
    off) env+=(OTEL_SDK_DISABLED=true) ;;
    r10) env+=(OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0.1) ;;
    on) env+=(OTEL_TRACES_SAMPLER=always_on) ;;
  esac
  env "${env[@]}" "$2" --port "$SVC_PORT" --bind 127.0.0.1 2>>"$OUT/service.log" &
  local pid=$!; pids+=("$pid")
  wait_port "$SVC_PORT"
  local n rps before after
  if [ -n "$RATE" ]; then
    "$FIXED" "http://127.0.0.1:$SVC_PORT/" "$RATE" 1 >/dev/null
    before=$(ticks "$pid")
    read -r n rps < <("$FIXED" "http://127.0.0.1:$SVC_PORT/" "$RATE" "$SECS")
    after=$(ticks "$pid")
  else
    wrk -t1 -c1 -d1s "http://127.0.0.1:$SVC_PORT/" >/dev/null
    before=$(ticks "$pid")
    wrk -t2 -c16 -d"${SECS}s" "http://127.0.0.1:$SVC_PORT/" >"$OUT/wrk"
    after=$(ticks "$pid")
    n=$(awk '/requests in/ {print $1}' "$OUT/wrk")
    rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk")
  fi
  kill -TERM "$pid"; wait "$pid" || true
  echo "$1 $3 $(awk -v a="$before" -v b="$after" -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.3f", (b - a) / hz * 1e6 / n}') $rps" | tee -a "$OUT/rows" >&2
}

for r in $(seq "$ROUNDS"); do
  for s in off r10 on; do
    if [ -n "$B" ] && [ $((r % 2)) -eq 0 ]; then one B "$B" "$s"; one A "$A" "$s";
    else one A "$A" "$s"; [ -z "$B" ] || one B "$B" "$s"; fi
  done
done
python3 - "$OUT/rows" "$ROUNDS" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
rounds = int(sys.argv[2])
by = {}
for i, (b, s, us, rps) in enumerate(rows):
    by.setdefault((b, s), []).append((float(us), float(rps)))
def fmt(xs): return f"{st.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"
print(f"{rounds} rounds; CPU per request in µs, median (range); req/s median")
for b in sorted({k[0] for k in by}):
    for s in ["off", "r10", "on"]:
        us = [u for u, _ in by[(b, s)]]
        rps = [r for _, r in by[(b, s)]]
        line = f"  {b} {s:>3}: {fmt(us)} µs, {st.median(rps):,.0f} req/s"
        if s != "off":
            cost = [u - o for (u, _), (o, _) in zip(by[(b, s)], by[(b, "off")])]
            line += f"; telemetry costs {fmt(cost)} µs"
        print(line)
if ("B", "on") in by:
    for s in ["off", "r10", "on"]:
        ratio = [bu / au for (au, _), (bu, _) in zip(by[("A", s)], by[("B", s)])]
        print(f"  B/A {s:>3}: {fmt(ratio)}, B lower in {sum(r < 1 for r in ratio)} of {len(ratio)}")
PY
