#!/usr/bin/env bash
# How long CI takes on a new machine: a fresh clone of HEAD and `.ci/run` with every cache of
# ours empty, as bench/demo-cold.sh empties them (cargo's registry and target directory, Go's
# build and module caches, pip, the tools cache). Debian packages the machine already has stay
# installed (apt is not emptied). Prints each CI step's start and the total; removes what it
# made.
#
# Usage: bench/ci-cold.sh   (root, like CI; needs network to the registries)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/tracedapp-ci-cold.XXXXXX)
cleanup() { chmod -R u+w "$WORK" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
git clone -q "$REPO" "$WORK/repo"
mkdir -p "$WORK/cargo-home"
export CARGO_HOME=$WORK/cargo-home GOCACHE=$WORK/go-build GOMODCACHE=$WORK/go-mod \
  TRACEDAPP_CACHE=$WORK/tools PIP_NO_CACHE_DIR=1 CARGO_TARGET_DIR=$WORK/repo/target
cd "$WORK/repo"
started=$(date +%s)
echo "cold CI from $(git rev-parse --short HEAD) in $WORK (started $(date -u +%H:%M:%S))"
rc=0
.ci/run >"$WORK/ci.log" 2>&1 || rc=$?
total=$(( $(date +%s) - started ))
grep -E '^== ' "$WORK/ci.log" || true
grep -E '^test result: FAILED|^error' "$WORK/ci.log" | head -5 || true
echo "cold .ci/run: exit $rc after ${total} s ($((total / 60)) min $((total % 60)) s)"
