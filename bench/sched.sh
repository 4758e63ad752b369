#!/usr/bin/env bash
# How each proxy's threads meet the scheduler, in one run on this machine:
# per thread (grouped by name), per request, its CPU, the time it was
# runnable but waiting for a core, how often it slept (and so had to be
# woken) and how often it was preempted; the backend's threads too, since
# every process shares the two cores. From /proc/PID/task/TID/schedstat and
# status before and after each wrk run (bench/threads.py sched). Also how
# evenly the proxy served its client connections: half a second before wrk
# ends, the requests each connection has sent so far (`ss -ti`'s
# data_segs_in on the proxy's side: one segment a request here), as the
# spread between the least and the most served connection. A proxy whose
# workers each take their own connections (SO_REUSEPORT, the kernel
# hashing the connection) can serve one worker's share slower than the
# other's. The same for the proxy's connections to the backend (data_segs_out
# on the proxy's side): how many it holds, and how evenly it uses them. The
# variants rotate round by round, as in ladder.sh.
#
#   bench/sched.sh [DURATION] [ROUNDS] [CONNECTIONS] [WORKERS]    defaults: 6s 3 64 2
#   VARIANTS="fast haproxy" bench/sched.sh     a subset of: fast, engine, haproxy, nginx, raw,
#                                             and two ways the peers can take connections:
#                                             haproxy-shards (one SO_REUSEPORT socket a thread,
#                                             as Strangler and the nginx variant have),
#                                             nginx-shared (one socket for all workers), and
#                                             nginx-1000 (nginx's default keepalive_requests:
#                                             each connection closed after 1,000 requests)
#   STRANGLER_BIN=DIR bench/sched.sh           binaries built elsewhere
#   WAKEUPS=1 bench/sched.sh                   also count, machine-wide, the wake-ups a request
#                                             by the thread woken (perf on sched:sched_wakeup
#                                             from the run's first second to its last; the
#                                             tracing slows every proxy, so that run's other
#                                             figures are not comparable with a plain run's)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-6s}
case $DURATION in *[0-9]s) ;; *) echo "DURATION is in seconds, as 6s" >&2; exit 2 ;; esac
ROUNDS=${2:-3}
CONNS=${3:-64}
WORKERS=${4:-2}

source bench/lib.sh
bench_need wrk nginx haproxy
WINDOW=$(awk -v d="${DURATION%s}" 'BEGIN {print d - 2}')
if [ "${WAKEUPS:-0}" = 1 ]; then
    bench_need perf:linux-perf
    awk -v w="$WINDOW" 'BEGIN {exit !(w >= 1)}' || { echo "WAKEUPS=1 needs a DURATION of 3s or more" >&2; exit 2; }
fi
bench_binaries
bench_workdir sched
bench_backend
BACKEND_PID=${PIDS[-1]}

read -r -a VARIANTS <<< "${VARIANTS:-fast engine haproxy nginx raw}"
declare -A PORT PID
for v in "${VARIANTS[@]}"; do
    PORT[$v]=$(free_port)
    case $v in
        fast | engine)
            admin=$(free_port)
            bench_routes "127.0.0.1:${PORT[$v]}" "127.0.0.1:$admin" "sqlite://$WORK/$v.db" "http://$BACKEND" > "$WORK/$v.yaml"
            fast=true; [ "$v" = engine ] && fast=false
            RUST_LOG=warn "$BIN/strangler" serve --config "$WORK/$v.yaml" --threads "$WORKERS" --fast-path=$fast \
                --pid-file "$WORK/$v.pid" --upgrade-sock "$WORK/$v.sock" > "$WORK/$v.log" 2>&1 & PIDS+=($!)
            PID[$v]=$! ;;
        haproxy | haproxy-shards)
            # By default HAProxy's threads share one socket and the one that
            # accepts hands the connection to the least loaded thread.
            shards=""; [ "$v" = haproxy-shards ] && shards=" shards by-thread"
            haproxy_cfg "${PORT[$v]}" "$BACKEND" "$WORKERS" | sed "s/^    bind .*/&$shards/" > "$WORK/$v.cfg"
            haproxy -f "$WORK/$v.cfg" -db & PIDS+=($!)
            PID[$v]=$! ;;
        nginx | nginx-shared | nginx-1000)
            mkdir -p "$WORK/$v"
            reuseport=" reuseport"; [ "$v" = nginx-shared ] && reuseport=""
            # nginx-1000: nginx's default, a connection closed after 1,000 requests.
            limit=1000000; [ "$v" = nginx-1000 ] && limit=1000
            nginx_conf "${PORT[$v]}" "$BACKEND" "$WORKERS" | sed -e "s/ reuseport;/$reuseport;/" \
                -e "s/keepalive_requests 1000000;/keepalive_requests $limit;/g" \
                -e "s|^pid .*|pid $WORK/$v/nginx.pid;|" > "$WORK/$v/nginx.conf"
            nginx -c "$WORK/$v/nginx.conf" -p "$WORK/$v" -g 'daemon off;' & PIDS+=($!)
            PID[$v]=$! ;;
        raw)
            RUST_LOG=warn "$BIN/examples/ladder" raw "127.0.0.1:${PORT[$v]}" "$BACKEND" "$WORKERS" \
                > "$WORK/raw.log" 2>&1 & PIDS+=($!)
            PID[$v]=$! ;;
        *) echo "unknown variant $v" >&2; exit 2 ;;
    esac
done
for v in "${VARIANTS[@]}"; do wait_port "${PORT[$v]}"; done
# nginx's workers are the master's children.
for v in nginx nginx-shared nginx-1000; do
    [ -n "${PID[$v]:-}" ] && PID[$v]="${PID[$v]} $(pgrep -d' ' -P "${PID[$v]}")"
done

HEADERS=(-H "X-Tenant-Id: umbrella-corp" -H "Accept: application/json")
echo "wrk -t2 -c$CONNS -d$DURATION, $WORKERS workers each, $(nproc) cores shared"
for ((round = 0; round < ROUNDS; round++)); do
    for ((i = 0; i < ${#VARIANTS[@]}; i++)); do
        v=${VARIANTS[$(((i + round) % ${#VARIANTS[@]}))]}
        # shellcheck disable=SC2086 # PID[nginx] is several pids
        python3 bench/threads.py sched ${PID[$v]} > "$WORK/proxy-before"
        python3 bench/threads.py sched "$BACKEND_PID" > "$WORK/backend-before"
        wrk -t2 -c"$CONNS" -d"$DURATION" --latency "${HEADERS[@]}" \
            "http://127.0.0.1:${PORT[$v]}/api/orders/12345" > "$WORK/out" &
        wrk_pid=$!
        if [ "${WAKEUPS:-0}" = 1 ]; then
            sleep 1
            perf record -q -a -e sched:sched_wakeup -o "$WORK/wakeups.data" -- sleep "$WINDOW" 2>/dev/null
            sleep 0.5
        else
            sleep "$(awk -v d="${DURATION%s}" 'BEGIN {print d - 0.5}')"
        fi
        ss -Htni state established "( sport = :${PORT[$v]} )" > "$WORK/connections"
        ss -Htnip state established "( dport = :${BACKEND##*:} )" > "$WORK/upstream"
        wait "$wrk_pid"
        # shellcheck disable=SC2086
        python3 bench/threads.py sched ${PID[$v]} > "$WORK/proxy-after"
        python3 bench/threads.py sched "$BACKEND_PID" > "$WORK/backend-after"
        requests=$(awk '/requests in/ {print $1}' "$WORK/out")
        rps=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/out")
        printf 'round %d  %-8s %8.0f req/s   p50 %5.2f   p99 %5.2f ms\n' $((round + 1)) "$v" "$rps" \
            "$(wrk_percentile_ms "$WORK/out" 50%)" "$(wrk_p99_ms "$WORK/out")"
        # shellcheck disable=SC2086 # PID[nginx] is several pids
        python3 - "$WORK/connections" "$WORK/upstream" ${PID[$v]} <<'PY'
import re, statistics, sys
def spread(what, served):
    if served:
        print(f"  {what}: least {served[0]}, median {statistics.median(served):.0f}, "
              f"most {served[-1]} ({served[-1] / max(served[0], 1):.2f}x the least), {len(served)} connections")
spread("requests a client connection",
       sorted(int(n) for n in re.findall(r"data_segs_in:(\d+)", open(sys.argv[1]).read())))
# The proxy's connections to the backend (ss -p names the owner on the
# socket's line, -i its counters on the next): one segment out a request.
pids = set(sys.argv[3:])
text = open(sys.argv[2]).read()
upstream = []
for owner, info in re.findall(r"users:\(\((.*?)\)\)\s*\n(.*)", text):
    if set(re.findall(r"pid=(\d+)", owner)) & pids:
        found = re.search(r"data_segs_out:(\d+)", info)
        upstream.append(int(found.group(1)) if found else 0)
spread("requests an upstream connection", sorted(upstream))
PY
        if [ "${WAKEUPS:-0}" = 1 ]; then
            # Per request: the wake-ups in the window over the requests wrk
            # completed in it at the run's rate.
            perf script -i "$WORK/wakeups.data" -F trace 2>/dev/null |
                sed -E -e 's/^comm=(.*) pid=.*/\1/' -e 's/[0-9]+$//' | sort | uniq -c | sort -rn | head -6 |
                awk -v n="$(awk -v r="$rps" -v w="$WINDOW" 'BEGIN {print r * w}')" \
                    'BEGIN {printf "  wake-ups a request, by the thread woken:"} {c = $1; $1 = ""; printf "%s %.3f;", $0, c / n} END {print ""}'
        fi
        echo "  proxy:"
        python3 bench/threads.py sched-diff "$WORK/proxy-before" "$WORK/proxy-after" "$requests"
        echo "  backend:"
        python3 bench/threads.py sched-diff "$WORK/backend-before" "$WORK/backend-after" "$requests"
    done
done
