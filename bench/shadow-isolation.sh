#!/usr/bin/env bash
# Shadow isolation: the primary path's latency and the proxy's memory with
# the shadow target healthy, dead (connection refused), black-holed (accepts,
# never answers) or 10 s slow, and with the diff store unreachable, against
# shadowing off; and recording (a route's record: block) of 5% and of 100%
# of requests, which goes the same way off the request path. Open-loop load
# at a fixed rate (latency measured from when each request was due), one run
# on this machine.
#
# To split what shadowing costs the primary, each mode also prints the
# proxy's CPU per request by thread (bench/threads.py), and the mode
# `target-load` runs shadowing off while a second load sends the shadow
# target the same requests straight: on a 2-core machine the shadow target's
# own work competes with the proxy, which it would not on its own host.
#
#   bench/shadow-isolation.sh [RATE=2000] [SECONDS=20]
#   MODES="off healthy" bench/shadow-isolation.sh    only these modes ("off" always runs)
#   STRANGLER_BIN=DIR bench/shadow-isolation.sh      binaries built elsewhere
#   ROUNDS=5 bench/shadow-isolation.sh               every mode 5 times, interleaved;
#                                                    the ratios from each mode's median
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-2000}
SECONDS_PER_MODE=${2:-20}

# STRANGLER_BIN=DIR runs binaries built elsewhere (e.g. an earlier build kept
# for a before/after comparison).
if [ -n "${STRANGLER_BIN:-}" ]; then
    BIN=$STRANGLER_BIN
else
    cargo build --release -q --bin strangler --bin strangler-bench-backend --bin strangler-load
    BIN=target/release
fi
source bench/lib.sh
bench_workdir isolation

LEGACY=$(free_port); NEW=$(free_port); SLOW=$(free_port); HOLE=$(free_port); DEAD=$(free_port)
"$BIN/strangler-bench-backend" "$LEGACY" 1 & PIDS+=($!)
"$BIN/strangler-bench-backend" "$NEW" 1 & PIDS+=($!)
"$BIN/strangler-bench-backend" "$SLOW" 1 10000 & PIDS+=($!)
python3 - "$HOLE" <<'PY' & PIDS+=($!)
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4096)
held = []
while True:
    c, _ = s.accept(); held.append(c)   # accept, never read, never answer
PY
wait_port "$LEGACY"; wait_port "$NEW"; wait_port "$SLOW"; wait_port "$HOLE"

# The value after LABEL in strangler-load's output ("requests N errors N p50
# X p99 Y p999 Z max W"): by label, not by column.
field() { echo "$2" | awk -v label="$1" '{for (i = 1; i < NF; i++) if ($i == label) print $(i + 1)}'; }

run_mode() {
    local mode=$1 target=$2 shadow=$3 store=$4 beside=${5:-}
    [ "$mode" = off ] || [ -z "${MODES:-}" ] || [[ " $MODES " == *" $mode "* ]] || return 0
    local port admin
    port=$(free_port); admin=$(free_port)
    cat > "$WORK/$mode.yaml" <<YAML
version: 1
listen: 127.0.0.1:$port
admin: { listen: "127.0.0.1:$admin" }
store: $store
backends:
  legacy: { url: "http://127.0.0.1:$LEGACY" }
  new: { url: "http://127.0.0.1:$target", connect_timeout: 1s }
tenant: [ { header: X-Tenant-Id } ]
default: legacy
routes:
  - name: orders
    match: { path: /api/orders }
    new: new
    canary: 0
$shadow
YAML
    RUST_LOG=error "$BIN/strangler" serve --config "$WORK/$mode.yaml" --threads 2 \
        --pid-file "$WORK/$mode.pid" --upgrade-sock "$WORK/$mode.sock" > "$WORK/$mode.log" 2>&1 &
    local pid=$!
    wait_port "$port"
    "$BIN/strangler-load" "http://127.0.0.1:$port/api/orders/1" "$RATE" 2 16 > /dev/null   # warm-up
    local out requests beside_pid=
    python3 bench/threads.py snapshot "$pid" > "$WORK/$mode.threads-before"
    if [ -n "$beside" ]; then
        "$BIN/strangler-load" "$beside" "$RATE" "$SECONDS_PER_MODE" 32 > /dev/null & beside_pid=$!
    fi
    out=$("$BIN/strangler-load" "http://127.0.0.1:$port/api/orders/1" "$RATE" "$SECONDS_PER_MODE" 32)
    python3 bench/threads.py snapshot "$pid" > "$WORK/$mode.threads-after"
    [ -z "$beside_pid" ] || wait "$beside_pid"
    requests=$(field requests "$out")
    local rss hwm
    rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status); hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
    local m
    m=$(curl -s "127.0.0.1:$admin/metrics")
    sum() { echo "$m" | grep "^$1" | grep -E "$2" | awk '{s+=$2} END {printf "%d", s}'; }
    printf '%-11s %s  rss %5d MB (peak %4d MB)  shadow sent %6s error %6s timeout %5s | dropped queue_full %6s store %6s | recorded %6s\n' \
        "$mode" "$out" $((rss/1024)) $((hwm/1024)) \
        "$(sum strangler_shadow_requests_total 'outcome="sent"')" "$(sum strangler_shadow_requests_total 'outcome="error"')" \
        "$(sum strangler_shadow_requests_total 'outcome="timeout"')" \
        "$(sum strangler_shadow_dropped_total 'reason="queue_full"')" "$(sum strangler_shadow_dropped_total 'reason="store"')" \
        "$(sum strangler_record_total 'outcome="stored"')"
    echo "            proxy CPU $(python3 bench/threads.py diff "$WORK/$mode.threads-before" "$WORK/$mode.threads-after" "$requests")"
    echo "$mode $(field p99 "$out") $(field p999 "$out")" >> "$WORK/p99"
    kill -INT "$pid"; wait "$pid" 2>/dev/null || true
}

SHADOW="    shadow: { percent: 100, noise_sample: 10, timeout: 5s }"
SQLITE="sqlite://$WORK/diffs.db"
echo "open-loop $RATE req/s for ${SECONDS_PER_MODE}s per mode, 32 connections; latencies in ms"
for round in $(seq "${ROUNDS:-1}"); do
    [ "${ROUNDS:-1}" = 1 ] || echo "round $round"
    run_mode off        "$NEW"  ""        "$SQLITE"
    run_mode target-load "$NEW" ""        "$SQLITE" "http://127.0.0.1:$NEW/api/orders/1"
    run_mode healthy    "$NEW"  "$SHADOW" "$SQLITE"
    run_mode dead       "$DEAD" "$SHADOW" "$SQLITE"
    run_mode blackhole  "$HOLE" "$SHADOW" "$SQLITE"
    run_mode slow-10s   "$SLOW" "$SHADOW" "$SQLITE"
    run_mode store-down "$NEW"  "$SHADOW" "postgres://postgres@127.0.0.1:9/unreachable"
    # One client address: sampled per request (sticky: none), not per address.
    run_mode record-5   "$NEW"  "$(printf '    sticky: none\n    record: { percent: 5 }')" "$SQLITE"
    run_mode record-100 "$NEW"  "$(printf '    sticky: none\n    record: { percent: 100 }')" "$SQLITE"
done
python3 - "$WORK/p99" <<'PY'
import sys
from statistics import median
runs = {}
for mode, p99, p999 in (l.split() for l in open(sys.argv[1])):
    runs.setdefault(mode, []).append((float(p99), float(p999)))
# One round: its figures; several: each mode's median p99 and median p999.
rows = {mode: (median(r[0] for r in rs), median(r[1] for r in rs)) for mode, rs in runs.items()}
if len(runs["off"]) > 1:
    print(f"medians of {len(runs['off'])} rounds")
p99_off, p999_off = rows["off"]
print("p99 relative to shadowing off: " + ", ".join(f"{k} {v[0]:.2f} ms = {v[0] / p99_off:.2f}x" for k, v in rows.items() if k != "off"))
print("p999 relative to shadowing off: " + ", ".join(f"{k} {v[1]:.2f} ms = {v[1] / p999_off:.2f}x" for k, v in rows.items() if k != "off"))
PY
