#!/usr/bin/env bash
# Where each microsecond of a proxied request goes, in one run on this
# machine: direct to the backend, nginx, HAProxy, and the rungs from a bare
# Pingora proxy up to the full Strangler (proxy/examples/ladder.rs):
#
#   bare     Pingora's HttpProxy with a ProxyHttp that only names the upstream
#   guarded  the same behind Strangler's connection loop (dataplane/connection.rs)
#   owned    a spike of an owned HTTP/1 forward loop on pingora-core's sessions
#   raw      a spike of the owned codec: the same loop without pingora-core's
#            HTTP sessions, each head parsed in place from a reused buffer
#   strangler  `strangler serve --fast-path=false` (Pingora's proxy engine),
#            20 routes, the request on a canary route
#   fast     the same with the fast path, serve's default (dataplane/fast_path.rs)
#
# For each: requests/s and p99 (wrk -t2, keep-alive), CPU per request (the
# proxy's user + system time from /proc over the run, divided by the
# requests wrk completed; also split into user and system time, the
# proxy's own code against the kernel's work for its syscalls), and with
# ALLOCS=1 heap allocations per request, counted in a separate shorter run
# with uprobes on the allocator's entry points (mimalloc's for the Rust
# proxies; glibc's malloc, calloc, realloc and posix_memalign, which
# nginx's pools use, for nginx and HAProxy; a uprobe costs microseconds, so
# that run's speed means nothing).
# Everything shares the machine's cores: only ratios from one run mean much.
#
#   bench/ladder.sh [DURATION] [CONNECTIONS] [WORKERS]      defaults: 10s 64 2
#   ROUNDS=3 bench/ladder.sh                                  every rung 3 times, interleaved
#                                                             (each round starts at another
#                                                             rung), medians reported
#   ALLOCS=1 bench/ladder.sh                                  also count allocations (root)
#   STRANGLER_BIN=target/lto/release bench/ladder.sh          binaries built elsewhere
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-10s}
CONNS=${2:-64}
WORKERS=${3:-2}
ROUNDS=${ROUNDS:-1}

source bench/lib.sh
bench_need wrk nginx haproxy
bench_binaries
bench_workdir ladder
BACKEND_PORT=$(free_port)
declare -A PORT
for name in nginx haproxy bare guarded owned raw strangler fast; do PORT[$name]=$(free_port); done
ADMIN_PORT=$(free_port)
FAST_ADMIN_PORT=$(free_port)

"$BIN/strangler-bench-backend" "$BACKEND_PORT" 1 & PIDS+=($!)
BACKEND=127.0.0.1:$BACKEND_PORT

nginx_conf "${PORT[nginx]}" "$BACKEND" "$WORKERS" > "$WORK/nginx.conf"
nginx -c "$WORK/nginx.conf" -p "$WORK" -g 'daemon off;' & PIDS+=($!)
NGINX_MASTER=$!

haproxy_cfg "${PORT[haproxy]}" "$BACKEND" "$WORKERS" > "$WORK/haproxy.cfg"
haproxy -f "$WORK/haproxy.cfg" -db & PIDS+=($!)
HAPROXY_PID=$!

# Strangler's table: the 20 routes of bench/proxy-vs-nginx.sh.
B="http://$BACKEND"
bench_routes "127.0.0.1:${PORT[strangler]}" "127.0.0.1:$ADMIN_PORT" "sqlite://$WORK/strangler.db" "$B" > "$WORK/routes.yaml"
RUST_LOG=warn "$BIN/strangler" serve --config "$WORK/routes.yaml" --threads "$WORKERS" --fast-path=false \
    --pid-file "$WORK/strangler.pid" --upgrade-sock "$WORK/strangler.sock" >"$WORK/strangler.log" 2>&1 & PIDS+=($!)
declare -A PID
PID[strangler]=$!
bench_routes "127.0.0.1:${PORT[fast]}" "127.0.0.1:$FAST_ADMIN_PORT" "sqlite://$WORK/fast.db" "$B" > "$WORK/fast.yaml"
RUST_LOG=warn "$BIN/strangler" serve --config "$WORK/fast.yaml" --threads "$WORKERS" --fast-path \
    --pid-file "$WORK/fast.pid" --upgrade-sock "$WORK/fast.sock" >"$WORK/fast.log" 2>&1 & PIDS+=($!)
PID[fast]=$!
for rung in bare guarded owned raw; do
    RUST_LOG=warn "$BIN/examples/ladder" "$rung" "127.0.0.1:${PORT[$rung]}" "$BACKEND" "$WORKERS" "$WORK/routes.yaml" \
        >"$WORK/$rung.log" 2>&1 & PIDS+=($!)
    PID[$rung]=$!
done
PID[haproxy]=$HAPROXY_PID

wait_port "$BACKEND_PORT"
for name in "${!PORT[@]}"; do wait_port "${PORT[$name]}"; done
PID[nginx]="$NGINX_MASTER $(pgrep -d' ' -P "$NGINX_MASTER")"

PATH_UNDER_TEST=/api/orders/12345
HEADERS=(-H "X-Tenant-Id: umbrella-corp" -H "Accept: application/json")
for name in direct "${!PORT[@]}"; do
    port=${PORT[$name]:-$BACKEND_PORT}
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$PATH_UNDER_TEST" "${HEADERS[@]}")
    [ "$code" = 200 ] || { echo "$name answered $code"; cat "$WORK"/*.log; exit 1; }
done

HZ=$(getconf CLK_TCK)

run() {
    local name=$1 port=$2 pids=${3:-}
    local before="0 0" after="0 0"
    [ -n "$pids" ] && before=$(cpu_ticks $pids)
    wrk -t2 -c"$CONNS" -d"$DURATION" --latency "${HEADERS[@]}" "http://127.0.0.1:$port$PATH_UNDER_TEST" > "$WORK/$name.out"
    [ -n "$pids" ] && after=$(cpu_ticks $pids)
    local requests rps p99 cpu
    requests=$(awk '/requests in/ {print $1}' "$WORK/$name.out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/$name.out")
    p99=$(wrk_p99_ms "$WORK/$name.out")
    # CPU seconds * 1e6 / requests = microseconds of proxy CPU per request.
    local user system user_us=- system_us=- split=""
    read -r user system < <(awk -v b="$before" -v a="$after" 'BEGIN {split(b, x, " "); split(a, y, " "); print y[1] - x[1], y[2] - x[2]}')
    cpu=$(awk -v t=$((user + system)) -v hz="$HZ" -v n="$requests" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    [ -n "$pids" ] || cpu=-
    if [ -n "$pids" ]; then
        read -r user_us system_us < <(awk -v u="$user" -v s="$system" -v hz="$HZ" -v n="$requests" \
            'BEGIN {printf "%.1f %.1f\n", u / hz * 1e6 / n, s / hz * 1e6 / n}')
        split="(user $user_us, system $system_us)"
    fi
    local errors
    errors=$(awk '/Non-2xx|Socket errors/ {print}' "$WORK/$name.out" | tr '\n' ' ')
    printf '%-10s %9.0f req/s   p99 %6.2f ms   CPU %6s us/req %-28s %s\n' "$name" "$rps" "$p99" "$cpu" "$split" "$errors"
    echo "$name $rps $p99 $cpu $user_us $system_us" >> "$WORK/results"
}

echo "wrk -t2 -c$CONNS -d$DURATION, $WORKERS worker(s)/thread(s) per proxy, $(nproc) cores shared"
RUNGS=(direct nginx haproxy bare guarded owned raw strangler fast)
for ((round = 0; round < ROUNDS; round++)); do
    [ "$ROUNDS" -gt 1 ] && echo "round $((round + 1)) of $ROUNDS"
    # Each round starts further down the list, so that no rung always runs
    # first or last while the machine's speed drifts.
    for ((i = 0; i < ${#RUNGS[@]}; i++)); do
        name=${RUNGS[$(((i + round * ${#RUNGS[@]} / ROUNDS) % ${#RUNGS[@]}))]}
        if [ "$name" = direct ]; then
            run direct "$BACKEND_PORT"
        else
            run "$name" "${PORT[$name]}" "${PID[$name]}"
        fi
    done
done
# The fast rung must have been the fast path's, not the engine's.
served=$(curl -s "http://127.0.0.1:$FAST_ADMIN_PORT/metrics" | awk '/^strangler_fast_path_requests_total / {print $2}')
echo "fast path served $served requests"

python3 - "$WORK/results" "$ROUNDS" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, *figures = line.split()
    runs.setdefault(name, []).append(figures)
rounds = int(sys.argv[2])
# Each figure's median over the rounds, taken apart (with one round, the
# figures themselves; user and system need not add up to the CPU median).
rows = {}
for name, figures in runs.items():
    rows[name] = [statistics.median(float(f[i]) for f in figures) if figures[0][i] != "-" else None
                  for i in range(5)]
if rounds > 1:
    print(f"medians of {rounds} rounds: req/s, p99 ms, CPU us/req (user, system)")
    for name in ("direct", "nginx", "haproxy", "bare", "guarded", "owned", "raw", "strangler", "fast"):
        rps, p99, cpu, user, system = rows[name]
        split = "-" if cpu is None else f"{cpu:5.1f}  ({user:.1f}, {system:.1f})"
        print(f"  {name:10} {rps:9.0f}  {p99:6.2f}  {split}")
best = max(("nginx", "haproxy"), key=lambda n: rows[n][0])
b_rps, b_p99, b_cpu = rows[best][:3]
print(f"relative to the better peer ({best}): throughput, p99, CPU per request")
for name in ("bare", "guarded", "owned", "raw", "strangler", "fast"):
    rps, p99, cpu = rows[name][:3]
    print(f"  {name:10} {rps/b_rps:5.2f}x  {p99/b_p99:5.2f}x  {cpu/b_cpu:5.2f}x")
print(f"  fast path against nginx: throughput {rows['fast'][0]/rows['nginx'][0]:.2f}x, p99 {rows['fast'][1]/rows['nginx'][1]:.2f}x")
PY

[ "${ALLOCS:-0}" = 1 ] || exit 0
# Allocations per request: uprobes on the allocators' entry points, counted
# by perf over a short run of each proxy.
mount | grep -q tracefs || mount -t tracefs nodev /sys/kernel/tracing
LIBC=$(ldd "$(command -v nginx)" | awk '/libc.so/ {print $3}')
# Each binary's probes in a group of its own, named apart (perf refuses an
# event name twice, even in another group).
unprobe() { perf probe -q -d 'libc:*' -d 'strangler:*' -d 'ladder:*' 2>/dev/null || true; }
unprobe
for f in malloc calloc realloc posix_memalign; do perf probe -q -x "$LIBC" -a "libc:libc_$f=$f"; done
for group in strangler ladder; do
    bin=$BIN/strangler; [ "$group" = ladder ] && bin=$BIN/examples/ladder
    perf probe -q -x "$bin" -a "$group:${group}_malloc=mi_malloc_aligned" \
        -a "$group:${group}_calloc=mi_zalloc_aligned" -a "$group:${group}_realloc=mi_realloc_aligned"
done
bench_on_exit unprobe
count_allocs() {
    local name=$1 port=$2 events=$3 pids=$4
    local pid_list=${pids// /,}
    perf stat -x, -e "$events" -p "$pid_list" -o "$WORK/$name.perf" -- \
        wrk -t2 -c"$CONNS" -d3s "${HEADERS[@]}" "http://127.0.0.1:$port$PATH_UNDER_TEST" > "$WORK/$name.allocs.out"
    local requests calls
    requests=$(awk '/requests in/ {print $1}' "$WORK/$name.allocs.out")
    calls=$(awk -F, '$1 ~ /^[0-9]+$/ {s += $1} END {print s}' "$WORK/$name.perf")
    awk -v name="$name" -v c="$calls" -v n="$requests" \
        'BEGIN {printf "%-10s %8.1f allocations per request (%d in %d requests)\n", name, c / n, c, n}'
}
echo "allocations (calls to malloc, calloc, realloc and posix_memalign, or mimalloc's aligned ones; uprobes):"
count_allocs nginx "${PORT[nginx]}" libc:libc_malloc,libc:libc_calloc,libc:libc_realloc,libc:libc_posix_memalign "${PID[nginx]}"
count_allocs haproxy "${PORT[haproxy]}" libc:libc_malloc,libc:libc_calloc,libc:libc_realloc,libc:libc_posix_memalign "${PID[haproxy]}"
for rung in bare guarded owned raw; do
    count_allocs "$rung" "${PORT[$rung]}" ladder:ladder_malloc,ladder:ladder_calloc,ladder:ladder_realloc "${PID[$rung]}"
done
count_allocs strangler "${PORT[strangler]}" strangler:strangler_malloc,strangler:strangler_calloc,strangler:strangler_realloc "${PID[strangler]}"
count_allocs fast "${PORT[fast]}" strangler:strangler_malloc,strangler:strangler_calloc,strangler:strangler_realloc "${PID[fast]}"
