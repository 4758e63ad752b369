#!/usr/bin/env bash
# System calls per request, by proxy: each proxy with one worker gets a
# warm-up, then `strace -c -f` is attached for a wrk run of DURATION, and
# each syscall's count (strace's `calls` column) is divided by the requests
# wrk completed. A traced proxy runs slower, so its speed means nothing;
# the counts per request are what this measures.
#
#   bench/syscalls.sh [DURATION] [PROXIES...]   defaults: 4s, fast raw haproxy
#   STRANGLER_BIN=DIR   binaries built elsewhere (as bench/ladder.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-4s}
shift || true
PROXIES=("$@")
[ "${#PROXIES[@]}" -gt 0 ] || PROXIES=(fast raw haproxy)

source bench/lib.sh
bench_need wrk strace haproxy nginx
bench_binaries
bench_workdir syscalls
bench_backend
URL_PATH=/api/orders/12345
HEADERS=(-H "X-Tenant-Id: umbrella-corp" -H "Accept: application/json")

for rung in "${PROXIES[@]}"; do
    port=$(free_port)
    case $rung in
        fast | strangler)
            fast=false
            [ "$rung" = fast ] && fast=true
            bench_routes "127.0.0.1:$port" "127.0.0.1:$(free_port)" "sqlite://$WORK/$rung.db" "http://$BACKEND" \
                > "$WORK/$rung.yaml"
            RUST_LOG=warn "$BIN/strangler" serve --config "$WORK/$rung.yaml" --threads 1 --fast-path="$fast" \
                --pid-file "$WORK/$rung.pid" --upgrade-sock "$WORK/$rung.sock" > "$WORK/$rung.log" 2>&1 &
            pid=$! ;;
        owned | raw)
            "$BIN/examples/ladder" "$rung" "127.0.0.1:$port" "$BACKEND" 1 > "$WORK/$rung.log" 2>&1 &
            pid=$! ;;
        haproxy)
            haproxy_cfg "$port" "$BACKEND" 1 > "$WORK/haproxy.cfg"
            haproxy -f "$WORK/haproxy.cfg" -db > "$WORK/haproxy.log" 2>&1 &
            pid=$! ;;
        nginx)
            { printf 'master_process off;\ndaemon off;\n'; nginx_conf "$port" "$BACKEND" 1; } > "$WORK/nginx.conf"
            nginx -c "$WORK/nginx.conf" -p "$WORK" > "$WORK/nginx.log" 2>&1 &
            pid=$! ;;
        *) echo "unknown proxy $rung" >&2; exit 2 ;;
    esac
    PIDS+=("$pid")
    wait_port "$port"
    wrk -t1 -c4 -d2s "${HEADERS[@]}" "http://127.0.0.1:$port$URL_PATH" > /dev/null
    strace -c -f -p "$pid" -o "$WORK/$rung.strace" 2> /dev/null &
    tracer=$!
    sleep 0.5
    wrk -t1 -c4 -d"$DURATION" "${HEADERS[@]}" "http://127.0.0.1:$port$URL_PATH" > "$WORK/$rung.wrk"
    kill -INT "$tracer"
    wait "$tracer" 2>/dev/null || true
    requests=$(awk '/requests in/ {print $1}' "$WORK/$rung.wrk")
    echo "$rung: $requests requests; calls per request (syscalls made at least once per 100 requests)"
    # strace -c's rows: % time, seconds, usecs/call, calls, [errors,] syscall;
    # the calls are the 4th column whether or not errors is filled in.
    awk -v n="$requests" '$NF != "syscall" && $1 ~ /^[0-9.]+$/ && NF >= 5 && $4 / n >= 0.01 {
        printf "    %-16s %6.2f\n", $NF, $4 / n }' "$WORK/$rung.strace"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
done
