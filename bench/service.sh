#!/usr/bin/env bash
# Benchmark of traced-service on `/`: throughput and latency of a plain axum app answering the
# same JSON (the baseline), the service with telemetry disabled, and enabled (100% sampled,
# exported over OTLP/gRPC to a loopback sink in another process); then spans received vs
# requests served after a clean SIGTERM; last, the common Rust setup (axum-tracing-opentelemetry
# + tracing-opentelemetry, exporting the same way) for comparison.
#
# Usage: bench/service.sh [seconds=20] [connections=16]
# Needs wrk (Debian package `wrk`). Prints a summary; paste it into BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-20}
CONNS=${2:-16}
SVC_PORT=${SVC_PORT:-3300}
SINK_PORT=${SINK_PORT:-4327}
STATS_PORT=${STATS_PORT:-4399}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }

echo "building release binaries..." >&2
cargo build --release -q -p traced-service --bin traced-service --example otlp_sink --example plain_axum --example common_axum_otel
BIN=target/release/traced-service
SINK=target/release/examples/otlp_sink
PLAIN=target/release/examples/plain_axum
COMMON=target/release/examples/common_axum_otel
OUT=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# CPU seconds (user + system) a process has used so far.
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

run() { # $1 label, rest: env assignments (label `plain`: the plain axum app)
  local label=$1; shift
  if [ "$label" = plain ]; then
    "$PLAIN" "$SVC_PORT" 2>"$OUT/$label.log" &
  elif [ "$label" = common ]; then
    env "$@" "$COMMON" "$SVC_PORT" 2>"$OUT/$label.log" &
  else
    env "$@" LOG_FORMAT=json ACCESS_LOG=false "$BIN" --port "$SVC_PORT" --bind 127.0.0.1 2>"$OUT/$label.log" &
  fi
  local pid=$!; pids+=("$pid")
  wait_port "$SVC_PORT"
  wrk -t1 -c1 -d2s "http://127.0.0.1:$SVC_PORT/" >/dev/null   # warm-up
  echo "running $label: wrk -t2 -c$CONNS -d${DURATION}s --latency /" >&2
  local cpu_before; cpu_before=$(cpu_secs "$pid")
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$SVC_PORT/" >"$OUT/$label.wrk"
  # The service's CPU per request during the run: steadier than req/s on a shared machine.
  local us_per_req; us_per_req=$(awk -v a="$cpu_before" -v b="$(cpu_secs "$pid")" \
    '/requests in/ {printf "%.1f", (b - a) * 1e6 / $1}' "$OUT/$label.wrk")
  local rss_kb; rss_kb=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  local cpu_svc; cpu_svc=$(cpu_secs "$pid"); local cpu_sink; cpu_sink=$(cpu_secs "$SINK_PID")
  kill -TERM "$pid"
  local rc=0; wait "$pid" || rc=$?
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/$label.wrk")
  p50=$(awk '$1=="50%" {print $2}' "$OUT/$label.wrk")
  p99=$(awk '$1=="99%" {print $2}' "$OUT/$label.wrk")
  printf '%-9s %12s req/s   p50 %-9s p99 %-9s peak RSS %s MiB   exit %s   CPU s: service %s, sink %s   service CPU per request %s µs\n' \
    "$label" "$rps" "$p50" "$p99" "$((rss_kb / 1024))" "$rc" "$cpu_svc" "$(awk "BEGIN {print $cpu_sink - ${SINK_CPU_BEFORE:-0}}")" "$us_per_req"
  SINK_CPU_BEFORE=$cpu_sink
  echo "$rps" >"$OUT/$label.rps"
  echo "$us_per_req" >"$OUT/$label.us"
}

"$SINK" "$SINK_PORT" "$STATS_PORT" 2>"$OUT/sink.log" &
SINK_PID=$!
pids+=("$SINK_PID")
wait_port "$SINK_PORT"; wait_port "$STATS_PORT"

echo "machine: $(nproc) cores, $(uname -m); wrk and the sink share them with the service"
run plain
run disabled OTEL_SDK_DISABLED=true
run enabled OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK_PORT" OTEL_TRACES_SAMPLER=always_on OTEL_SERVICE_NAME=bench
sleep 1
stats=$(curl -s "http://127.0.0.1:$STATS_PORT/stats")
served=$(echo "$stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["app_requests"])')
spans=$(echo "$stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["server_spans"])')
ratio_of() { python3 -c "print(f'{float(open(\"$OUT/$1.rps\").read())/float(open(\"$OUT/$2.rps\").read()):.3f}')"; }
echo "enabled/disabled throughput: $(ratio_of enabled disabled) (target >= 0.90)"
echo "disabled/plain throughput: $(ratio_of disabled plain) (target >= 0.95)"
echo "enabled/plain throughput: $(ratio_of enabled plain)"
echo "enabled run: requests served (app.requests, incl. warm-up) $served, server spans received $spans, lost $((served - spans))"
grep -h '"spans are being dropped' "$OUT/enabled.log" | head -3 || true
# After the counts above: its spans reach the same sink.
run common OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK_PORT" OTEL_TRACES_SAMPLER=always_on
sleep 1
common_spans=$(( $(curl -s "http://127.0.0.1:$STATS_PORT/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["server_spans"])') - spans ))
common_requests=$(awk '/requests in/ {print $1}' "$OUT/common.wrk")
echo "enabled/common throughput: $(ratio_of enabled common) (target >= 2)"
echo "common run: $common_requests requests (without its warm-up), $common_spans server spans received"
grep -h -i 'drop\|queue' "$OUT/common.log" | head -2 || true
echo "service CPU per request (µs): plain $(cat "$OUT/plain.us"), disabled $(cat "$OUT/disabled.us"), enabled $(cat "$OUT/enabled.us"), common $(cat "$OUT/common.us")"
echo "raw wrk output and logs: $OUT"
