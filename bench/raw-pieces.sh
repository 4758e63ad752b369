#!/usr/bin/env bash
# What the fast path's pieces do to the tail: the ladder's raw spike
# (proxy/examples/ladder.rs) alone, with the per-worker upstream pool,
# with the kept timers, with both, and the fast path itself, each against
# the same backend, the variants rotating round by round (each round starts
# at another one) so that the machine's drift falls on all. Prints, per
# round and variant, req/s, p50, p90 and p99 (wrk -t2 --latency,
# keep-alive), then each variant's medians.
#
#   bench/raw-pieces.sh [DURATION] [ROUNDS] [CONNECTIONS] [WORKERS]   defaults: 6s 5 64 2
#   STRANGLER_BIN=DIR bench/raw-pieces.sh    binaries built elsewhere (DIR/examples/ladder)
#   VARIANTS="raw raw+cpu2 fast" bench/raw-pieces.sh   other variants (raw+cpuN: N µs of busy loop a request)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-6s}
ROUNDS=${2:-5}
CONNS=${3:-64}
WORKERS=${4:-2}

source bench/lib.sh
bench_need wrk
bench_binaries
bench_workdir raw-pieces
bench_backend

read -r -a VARIANTS <<< "${VARIANTS:-raw raw+pool raw+timers raw+pool+timers fast}"
declare -A PORT
for v in "${VARIANTS[@]}"; do
    PORT[$v]=$(free_port)
    if [ "$v" = fast ]; then
        admin=$(free_port)
        bench_routes "127.0.0.1:${PORT[$v]}" "127.0.0.1:$admin" "sqlite://$WORK/fast.db" "http://$BACKEND" > "$WORK/fast.yaml"
        RUST_LOG=warn "$BIN/strangler" serve --config "$WORK/fast.yaml" --threads "$WORKERS" \
            --pid-file "$WORK/fast.pid" --upgrade-sock "$WORK/fast.sock" > "$WORK/fast.log" 2>&1 & PIDS+=($!)
    else
        RUST_LOG=warn "$BIN/examples/ladder" "$v" "127.0.0.1:${PORT[$v]}" "$BACKEND" "$WORKERS" \
            > "$WORK/$v.log" 2>&1 & PIDS+=($!)
    fi
done
for v in "${VARIANTS[@]}"; do wait_port "${PORT[$v]}"; done

HEADERS=(-H "X-Tenant-Id: umbrella-corp" -H "Accept: application/json")
echo "wrk -t2 -c$CONNS -d$DURATION, $WORKERS workers each, $(nproc) cores shared"
for ((round = 0; round < ROUNDS; round++)); do
    for ((i = 0; i < ${#VARIANTS[@]}; i++)); do
        v=${VARIANTS[$(((i + round) % ${#VARIANTS[@]}))]}
        wrk -t2 -c"$CONNS" -d"$DURATION" --latency "${HEADERS[@]}" \
            "http://127.0.0.1:${PORT[$v]}/api/orders/12345" > "$WORK/out"
        rps=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/out")
        line="$v $rps $(wrk_percentile_ms "$WORK/out" 50%) $(wrk_percentile_ms "$WORK/out" 90%) $(wrk_p99_ms "$WORK/out")"
        echo "$line" >> "$WORK/results"
        printf 'round %d  %-16s %8.0f req/s   p50 %5.2f   p90 %5.2f   p99 %5.2f ms\n' $((round + 1)) $line
    done
done
python3 - "$WORK/results" "$CONNS" <<'PY'
import statistics, sys
conns = int(sys.argv[2])
runs = {}
for line in open(sys.argv[1]):
    name, *figures = line.split()
    runs.setdefault(name, []).append([float(f) for f in figures])
# The mean latency of a closed loop is its connections over its rate
# (Little's law): connections / (req/s) seconds.
print("medians: req/s, p50, p90, p99 (ms), and p99 over the mean latency")
for name, rows in runs.items():
    rps, p50, p90, p99 = (statistics.median(col) for col in zip(*rows))
    mean_ms = conns / rps * 1000
    print(f"  {name:16} {rps:8.0f}  {p50:5.2f}  {p90:5.2f}  {p99:5.2f}  {p99 / mean_ms:4.1f}x")
PY
