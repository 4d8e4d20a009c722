#!/usr/bin/env bash
# Time to the first trace for a newcomer: a fresh clone of HEAD, every cache empty (Go build and
# module caches, cargo's registry and target directory, pip, the tools cache), then
# `cargo xtask demo` until it prints the /chain trace drawn from Jaeger (and when it drew the first
# trace, from X-Ray, while Jaeger was still building). Stops the demo (Ctrl-C,
# to its process group) and removes what it made.
#
# The late-Jaeger path is exercised on purpose: Jaeger starts JAEGER_DELAY_SECS (default 150)
# after it is built, longer than the collector's gRPC reconnect back-off grows (120 s), as on a
# machine where Jaeger's build takes that much longer; the demo must still draw Jaeger's trace.
#
# Usage: bench/demo-cold.sh            (about 13 minutes on 2 cores; needs network to the
#                                      registries, like a first run does)
#        WARM=1 bench/demo-cold.sh     (the same on this machine's caches: the late-Jaeger path
#                                      alone, in about 4 minutes)
# Prints the phases as the demo reports them and the total; paste it into BENCHMARKS.md.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/tracedapp-cold.XXXXXX)
demo_pid=
cleanup() {
  if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
    kill -INT -- "-$demo_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$demo_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$demo_pid" 2>/dev/null || true
  fi
  chmod -R u+w "$WORK" 2>/dev/null || true   # Go's module cache is read-only
  rm -rf "$WORK"
}
trap cleanup EXIT

DELAY=${JAEGER_DELAY_SECS:-150}
git clone -q "$REPO" "$WORK/repo"
if [ -z "${WARM:-}" ]; then
  mkdir -p "$WORK/cargo-home"
  export CARGO_HOME=$WORK/cargo-home GOCACHE=$WORK/go-build GOMODCACHE=$WORK/go-mod \
    TRACEDAPP_CACHE=$WORK/tools PIP_NO_CACHE_DIR=1 CARGO_TARGET_DIR=$WORK/repo/target
  mode=cold
else
  export CARGO_TARGET_DIR=$REPO/target
  mode=warm
fi
cd "$WORK/repo"
started=$(date +%s)
echo "$mode demo from $(git rev-parse --short HEAD) in $WORK, Jaeger ${DELAY} s late (started $(date -u +%H:%M:%S))"
setsid cargo xtask demo --app-port 3100 --jaeger-port 16786 --prometheus-port 8989 \
  --delay-jaeger-secs "$DELAY" >"$WORK/demo.out" 2>"$WORK/demo.err" </dev/null &
demo_pid=$!
first=
until grep -q "The /chain trace, from Jaeger" "$WORK/demo.out" 2>/dev/null; do
  if [ -z "$first" ] && grep -q "^Your first trace" "$WORK/demo.out" 2>/dev/null; then
    first=$(( $(date +%s) - started ))
  fi
  if ! kill -0 "$demo_pid" 2>/dev/null; then
    echo "the demo stopped before a trace:" >&2
    tail -40 "$WORK/demo.err" >&2
    exit 1
  fi
  sleep 1
done
total=$(( $(date +%s) - started ))
first=${first:-$total}
grep -E "^setup: .*(ready|all tools)|^demo:" "$WORK/demo.err" || true
echo "first trace drawn after ${first} s ($((first / 60)) min $((first % 60)) s), $mode"
echo "the trace from Jaeger drawn after ${total} s ($((total / 60)) min $((total % 60)) s), $mode (Jaeger started ${DELAY} s late)"
