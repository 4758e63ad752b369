#!/usr/bin/env bash
# Instructions per request, by proxy and by function: each proxy with one
# worker runs under valgrind's callgrind, gets a warm-up, then its counters
# are zeroed, wrk sends keep-alive requests for DURATION, and the count is
# dumped and divided by the requests wrk completed. Instructions are counted,
# not timed, so the figures repeat from run to run whatever else the machine
# is doing (bench/ladder.sh's times do not); they cover the proxy's own code
# (user space), not the kernel's work for its syscalls.
#
#   bench/instructions.sh [DURATION] [PROXIES...]   defaults: 20s, all of
#       nginx haproxy owned raw strangler fast (rungs as in bench/ladder.sh)
#   STRANGLER_BIN=DIR   binaries built elsewhere (strangler,
#                       strangler-bench-backend, examples/ladder)
#   TOP=N               also print each proxy's N costliest functions
#                       (inclusive instructions per request, so the
#                       runtime's frames that hold everything come first)
#   KEEP=DIR            keep each proxy's profile as DIR/PROXY.callgrind, for
#                       callgrind_annotate (--tree=caller: who allocates)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-20s}
shift || true
PROXIES=("$@")
[ "${#PROXIES[@]}" -gt 0 ] || PROXIES=(nginx haproxy owned raw strangler fast)

source bench/lib.sh
bench_need wrk valgrind nginx haproxy
bench_binaries
bench_workdir instructions
bench_backend
PATH_UNDER_TEST=/api/orders/12345
HEADERS=(-H "X-Tenant-Id: umbrella-corp" -H "Accept: application/json")
CALLGRIND=(valgrind --tool=callgrind --callgrind-out-file="$WORK/%q{RUNG}.out")

# Becomes proxy $1 on port $2 under callgrind (run it in the background:
# the background job's pid is the one to measure).
start() {
    local rung=$1 port=$2
    export RUNG=$rung
    case $rung in
        nginx)
            # One process: the master would hand the work to a child.
            { printf 'master_process off;\ndaemon off;\n'; nginx_conf "$port" "$BACKEND" 1; } > "$WORK/nginx.conf"
            exec "${CALLGRIND[@]}" nginx -c "$WORK/nginx.conf" -p "$WORK" ;;
        haproxy)
            haproxy_cfg "$port" "$BACKEND" 1 > "$WORK/haproxy.cfg"
            exec "${CALLGRIND[@]}" haproxy -f "$WORK/haproxy.cfg" -db ;;
        owned | raw)
            exec "${CALLGRIND[@]}" "$BIN/examples/ladder" "$rung" "127.0.0.1:$port" "$BACKEND" 1 ;;
        strangler | fast)
            local fast=false
            [ "$rung" = fast ] && fast=true
            bench_routes "127.0.0.1:$port" "127.0.0.1:$(free_port)" "sqlite://$WORK/$rung.db" "http://$BACKEND" \
                > "$WORK/$rung.yaml"
            RUST_LOG=warn exec "${CALLGRIND[@]}" "$BIN/strangler" serve --config "$WORK/$rung.yaml" --threads 1 \
                --fast-path="$fast" --pid-file "$WORK/$rung.pid" --upgrade-sock "$WORK/$rung.sock" ;;
        *) echo "unknown proxy $rung" >&2; exit 2 ;;
    esac
}

load() { wrk -t1 -c4 -d"$2" "${HEADERS[@]}" "http://127.0.0.1:$1$PATH_UNDER_TEST"; }

echo "instructions per request (callgrind, one worker, wrk -t1 -c4 -d$DURATION keep-alive)"
for rung in "${PROXIES[@]}"; do
    port=$(free_port)
    start "$rung" "$port" > "$WORK/$rung.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    # Under valgrind a proxy takes seconds to start.
    for _ in $(seq 300); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "${HEADERS[@]}" "http://127.0.0.1:$port$PATH_UNDER_TEST" || true)
        [ "$code" = 200 ] && break
        sleep 0.2
    done
    [ "$code" = 200 ] || { echo "$rung did not answer 200"; cat "$WORK/$rung.log"; exit 1; }
    load "$port" 3s > /dev/null
    callgrind_control -z "$pid" > /dev/null 2>&1
    load "$port" "$DURATION" > "$WORK/$rung.wrk"
    callgrind_control -d "$pid" > /dev/null 2>&1
    # The dump is written as the next part of the profile: OUT.1.
    for _ in $(seq 100); do [ -s "$WORK/$rung.out.1" ] && break; sleep 0.1; done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [ -z "${KEEP:-}" ] || { mkdir -p "$KEEP"; cp "$WORK/$rung.out.1" "$KEEP/$rung.callgrind"; }
    requests=$(awk '/requests in/ {print $1}' "$WORK/$rung.wrk")
    total=$(awk '/^(summary|totals):/ {print $2; exit}' "$WORK/$rung.out.1")
    awk -v r="$rung" -v t="$total" -v n="$requests" \
        'BEGIN {printf "%-10s %8.0f instructions per request (%d in %d requests)\n", r, t / n, t, n}'
    if [ -n "${TOP:-}" ]; then
        callgrind_annotate --inclusive=yes "$WORK/$rung.out.1" 2>/dev/null \
            | awk -v n="$requests" -v top="$TOP" '/^ *[0-9,]+ \(/ && c++ < top {
                x = $1; gsub(",", "", x); sub(/^ *[0-9,]+ \( *[0-9.]+%\) +/, "");
                printf "    %8.0f  %s\n", x / n, substr($0, 1, 150) }'
    fi
done
