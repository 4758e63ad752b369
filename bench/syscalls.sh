#!/usr/bin/env bash
# System calls per request, by proxy: each proxy with one worker gets a
# warm-up, then `strace -c -f` is attached for a wrk run of DURATION, and
# each syscall's count (strace's `calls` column) is divided by the requests
# wrk completed. A traced proxy runs slower, so its speed means nothing;
# the counts per request are what this measures. Over the same run it also
# counts, per request, the TCP segments on the machine's loopback (nstat's
# TcpInSegs: each one counted once, where it arrives; wrk's request, the
# proxy's request upstream, the backend's answer and the proxy's answer are
# 4) and the proxy's calls to libc's clock_gettime, which the vDSO answers
# without a syscall, so strace does not see them (a uprobe, counted by perf).
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
bench_need wrk strace haproxy nginx nstat:iproute2 perf:linux-perf

bench_binaries
bench_workdir syscalls
bench_backend
LIBC=$(ldd "$(command -v nginx)" | awk '/libc.so/ {print $3}')
perf probe -q -d 'libc_clock:*' 2>/dev/null || true
perf probe -q -x "$LIBC" -a 'libc_clock:clock_gettime=clock_gettime'
bench_on_exit 'perf probe -q -d "libc_clock:*" 2>/dev/null'
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
    nstat -n
    perf stat -x, -e libc_clock:clock_gettime -p "$pid" -o "$WORK/$rung.clock" -- \
        wrk -t1 -c4 -d"$DURATION" "${HEADERS[@]}" "http://127.0.0.1:$port$URL_PATH" > "$WORK/$rung.wrk"
    nstat > "$WORK/$rung.nstat"
    kill -INT "$tracer"
    wait "$tracer" 2>/dev/null || true
    requests=$(awk '/requests in/ {print $1}' "$WORK/$rung.wrk")
    echo "$rung: $requests requests; calls per request (syscalls made at least once per 100 requests)"
    # strace -c's rows: % time, seconds, usecs/call, calls, [errors,] syscall;
    # the calls are the 4th column whether or not errors is filled in.
    awk -v n="$requests" '$NF != "syscall" && $1 ~ /^[0-9.]+$/ && NF >= 5 && $4 / n >= 0.01 {
        printf "    %-16s %6.2f\n", $NF, $4 / n }' "$WORK/$rung.strace"
    awk -v n="$requests" '$1 == "TcpInSegs" {printf "    %-16s %6.2f   (TCP segments on loopback)\n", "segments", $2 / n}' "$WORK/$rung.nstat"
    awk -F, -v n="$requests" '$1 ~ /^[0-9]+$/ {printf "    %-16s %6.2f   (calls to clock_gettime in libc, answered in the vDSO or by the syscall above)\n", "clock reads", $1 / n}' "$WORK/$rung.clock"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
done
