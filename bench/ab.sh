#!/usr/bin/env bash
# Two builds of strangler against each other on the ladder's fast-path rung
# (the 20-route table of bench/lib.sh, GET /api/orders/12345 with a tenant,
# wrk -t2 -c64 after a 2 s warm-up, 2 workers), the builds alternating
# round by round so that the machine's drift falls on both, and each round
# starting at the next build (with a fixed order the build run first in
# each round came out ahead whichever it was: 17.5 against 19.5 µs a
# request with A first, 17.5 against 18.1 with B first, the same two
# builds). Prints, per round and build, req/s, p99 and CPU per request
# (user + system ticks of the proxy process, all its threads, over the
# measured run's requests), then each build's medians.
# Used for the PGO figures in docs/performance.md:
#   bench/ab.sh 10s 5 target/release/strangler target/pgo/use/release/strangler
#   BACKEND_BIN=path  the strangler-bench-backend to answer (default: next to the first build)
#   BACKEND_URL=http://host:port  answer from a backend already running instead
#                     (e.g. nginx serving a large file, for large bodies)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:?duration}; ROUNDS=${2:?rounds}; shift 2
[ $# -ge 2 ] || { echo "usage: bench/ab.sh DURATION ROUNDS BIN_A BIN_B..." >&2; exit 2; }
BACKEND_BIN=${BACKEND_BIN:-$(dirname "$1")/strangler-bench-backend}
source bench/lib.sh
bench_need wrk
bench_workdir ab
if [ -z "${BACKEND_URL:-}" ]; then
    BACKEND_PORT=$(free_port)
    "$BACKEND_BIN" "$BACKEND_PORT" 1 > /dev/null 2>&1 & PIDS+=($!)
    wait_port "$BACKEND_PORT"
    BACKEND_URL="http://127.0.0.1:$BACKEND_PORT"
fi
HEADERS=(-H "X-Tenant-Id: umbrella-corp" -H "Accept: application/json")
# User + system ticks of one process (bench/lib.sh's cpu_ticks, summed).
ticks() { local u s; read -r u s < <(cpu_ticks "$1"); echo $((u + s)); }
HZ=$(getconf CLK_TCK)
BINS=("$@")
for round in $(seq "$ROUNDS"); do
    for ((i = 0; i < ${#BINS[@]}; i++)); do
        bin=${BINS[$(((i + round - 1) % ${#BINS[@]}))]}
        port=$(free_port); admin=$(free_port)
        rm -f "$WORK"/s.db*
        bench_routes "127.0.0.1:$port" "127.0.0.1:$admin" "sqlite://$WORK/s.db" "$BACKEND_URL" > "$WORK/r.yaml"
        RUST_LOG=warn "$bin" serve --config "$WORK/r.yaml" --threads 2 \
            --pid-file "$WORK/p.pid" --upgrade-sock "$WORK/u.sock" > "$WORK/s.log" 2>&1 &
        server=$!
        wait_port "$port"; sleep 1
        wrk -t2 -c64 -d2s "${HEADERS[@]}" "http://127.0.0.1:$port/api/orders/12345" > /dev/null
        before=$(ticks "$server")
        wrk -t2 -c64 -d"$DURATION" --latency "${HEADERS[@]}" "http://127.0.0.1:$port/api/orders/12345" > "$WORK/w.out"
        after=$(ticks "$server")
        requests=$(awk '/requests in/ {print $1}' "$WORK/w.out")
        rps=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/w.out")
        p99=$(wrk_p99_ms "$WORK/w.out")
        python3 -c 'import sys; r, b, rps, p99, t, req, hz = sys.argv[1:]; print(f"round {r}  {b:48s} {float(rps):9.0f} req/s  p99 {float(p99):5.2f} ms  CPU {int(t) / int(hz) / int(req) * 1e6:5.1f} us/req")' \
            "$round" "$bin" "$rps" "$p99" "$((after - before))" "$requests" "$HZ" | tee -a "$WORK/results"
        kill "$server"; wait "$server" 2>/dev/null || true
    done
done
python3 - "$WORK/results" "$@" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"round \d+\s+(\S+)\s+(\d+) req/s\s+p99\s+([\d.]+) ms\s+CPU\s+([\d.]+)", line)
    if m:
        rows.setdefault(m[1], []).append([float(x) for x in m.groups()[1:]])
for b in sys.argv[2:]:
    r = rows.get(b, [])
    if r:
        rps, p99, cpu = (statistics.median(c) for c in zip(*r))
        print(f"median  {b:48s} {rps:9.0f} req/s  p99 {p99:5.2f} ms  CPU {cpu:5.1f} us/req  ({len(r)} rounds)")
PY
