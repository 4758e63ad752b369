#!/usr/bin/env bash
# How Strangler scales with its route table, in one run on this machine: the
# same proxy with 20 routes and with ROUTES routes (one path prefix each,
# every fifth with a method list, every tenth with a tenant pin), measured
# for `strangler check` time (median of 3), start-up RSS, `POST /reload`
# time (median of 5, each of an edited file: a new version installed and
# recorded) and RSS right after the reloads and 3 s later, and throughput and p99 under
# wrk (-t2 -c64, keep-alive, 2 workers) against one route in the middle of
# the table. Prints each figure
# and the ROUTES/20 ratios.
#
#   bench/route-table-scale.sh [ROUTES=10000] [DURATION=10s] [ROUNDS=2]
#   STRANGLER_BIN=dir  measure the binaries in dir instead of building
set -euo pipefail
cd "$(dirname "$0")/.."
ROUTES=${1:-10000}
DURATION=${2:-10s}
ROUNDS=${3:-2}

if [ -z "${STRANGLER_BIN:-}" ]; then
    cargo build --release -q --bin strangler --bin strangler-bench-backend
fi
BIN=${STRANGLER_BIN:-target/release}
source bench/lib.sh
bench_need wrk
bench_workdir route-scale

BACKEND=$(free_port)
"$BIN/strangler-bench-backend" "$BACKEND" 1 & PIDS+=($!)
wait_port "$BACKEND"
export BENCH_ADMIN_TOKEN=bench-token

# write_table FILE N PORT ADMIN: N routes, the measured one (orders-read) in
# the middle of the file.
write_table() {
    python3 - "$@" "$BACKEND" "$WORK" <<'PY'
import sys
path, n, port, admin, backend, work = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
b = f"http://127.0.0.1:{backend}"
out = [f"""version: 1
listen: 127.0.0.1:{port}
admin: {{ listen: "127.0.0.1:{admin}", token_env: BENCH_ADMIN_TOKEN }}
store: sqlite://{path}.db
backends:
  monolith: {{ url: "{b}" }}
  orders: {{ url: "{b}" }}
  users: {{ url: "{b}" }}
tenant: [ {{ header: X-Tenant-Id }} ]
default: monolith
routes:"""]
measured = """  - name: orders-read
    match: { path: /api/orders, methods: [GET, HEAD] }
    new: orders
    canary: 50
    sticky: tenant
    tenants: { acme: new, initech: legacy, globex: new }"""
for i in range(n - 1):
    if i == (n - 1) // 2:
        out.append(measured)
    extra = ", methods: [GET, HEAD]" if i % 5 == 0 else ""
    pin = ", tenants: { acme: new }" if i % 10 == 0 else ""
    out.append(f"  - {{ name: svc-{i}, match: {{ path: /api/svc-{i}{extra} }}, new: {'users' if i % 2 else 'orders'}, canary: {i % 100}{pin} }}")
if n == 1:
    out.append(measured)
open(path, "w").write("\n".join(out) + "\n")
PY
}

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
rss_mb() { awk '/VmRSS/ {printf "%d", $2 / 1024}' "/proc/$1/status"; }

declare -A PORT ADMIN PID
for n in 20 "$ROUTES"; do
    PORT[$n]=$(free_port); ADMIN[$n]=$(free_port)
    write_table "$WORK/routes-$n.yaml" "$n" "${PORT[$n]}" "${ADMIN[$n]}"
    checks=()
    for _ in 1 2 3; do
        t0=$(date +%s%N); "$BIN/strangler" check "$WORK/routes-$n.yaml" > /dev/null; checks+=("$(ms_since "$t0")")
    done
    check_ms=$(printf '%s\n' "${checks[@]}" | sort -n | sed -n 2p)
    # The file watcher off (an hour between checks): each edit below is
    # then read once, by the POST that is timed, not again by the watcher.
    RUST_LOG=warn "$BIN/strangler" serve --config "$WORK/routes-$n.yaml" --threads 2 --watch-interval 1h \
        --pid-file "$WORK/$n.pid" --upgrade-sock "$WORK/$n.sock" > "$WORK/$n.log" 2>&1 &
    PID[$n]=$!; PIDS+=($!)
    wait_port "${PORT[$n]}"
    # mimalloc purges what a thread freed a second after (its purge delay):
    # read the resident size once the start-up's parse has been given back.
    sleep 3
    start_rss=$(rss_mb "${PID[$n]}")
    reloads=()
    for i in 1 2 3 4 5; do
        # A new version each time (a same text is recognised and not
        # installed again): what an operator's edit costs.
        echo "# edit $i" >> "$WORK/routes-$n.yaml"
        t0=$(date +%s%N)
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $BENCH_ADMIN_TOKEN" "127.0.0.1:${ADMIN[$n]}/reload")
        reloads+=("$(ms_since "$t0")")
        [ "$code" = 200 ] || { echo "reload answered $code"; cat "$WORK/$n.log"; exit 1; }
    done
    reload_ms=$(printf '%s\n' "${reloads[@]}" | sort -n | sed -n 3p)
    reloading_rss=$(rss_mb "${PID[$n]}")
    sleep 3
    echo "$n routes: check median of 3 ${check_ms} ms; RSS at start ${start_rss} MB, right after 5 reloads ${reloading_rss} MB, 3 s later $(rss_mb "${PID[$n]}") MB; POST /reload median of 5 ${reload_ms} ms"
    echo "check $n $check_ms" >> "$WORK/results"; echo "reload $n $reload_ms" >> "$WORK/results"
    echo "rss $n $start_rss" >> "$WORK/results"
done

HEADERS=(-H "X-Tenant-Id: umbrella-corp" -H "Accept: application/json")
run() {
    local n=$1
    wrk -t2 -c64 -d"$DURATION" --latency "${HEADERS[@]}" "http://127.0.0.1:${PORT[$n]}/api/orders/12345" > "$WORK/wrk.out"
    local rps p99
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk.out")
    p99=$(wrk_p99_ms "$WORK/wrk.out")
    printf '%6s routes %10.0f req/s   p99 %7.2f ms  %s\n' "$n" "$rps" "$p99" "$(grep -E 'Non-2xx|Socket errors' "$WORK/wrk.out" | tr '\n' ' ')"
    echo "rps $n $rps" >> "$WORK/results"; echo "p99 $n $p99" >> "$WORK/results"
}
echo "wrk -t2 -c64 -d$DURATION, 2 workers, $(nproc) cores shared, $ROUNDS rounds"
for _ in $(seq "$ROUNDS"); do run 20; run "$ROUTES"; done

python3 - "$WORK/results" "$ROUTES" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
big = sys.argv[2]
def med(kind, n):
    return statistics.median(float(r[2]) for r in rows if r[0] == kind and r[1] == n)
print(f"median of rounds: 20 routes {med('rps', '20'):.0f} req/s p99 {med('p99', '20'):.2f} ms; "
      f"{big} routes {med('rps', big):.0f} req/s p99 {med('p99', big):.2f} ms")
print(f"ratio {big}/20 routes: throughput {med('rps', big) / med('rps', '20'):.2f}x, "
      f"p99 {med('p99', big) / med('p99', '20'):.2f}x, RSS {med('rss', big) / med('rss', '20'):.2f}x, "
      f"reload {med('reload', big):.0f} ms against {med('reload', '20'):.0f} ms")
PY
