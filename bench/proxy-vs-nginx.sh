#!/usr/bin/env bash
# Throughput and p99 latency, in one run on this machine: direct to a backend,
# through nginx (reverse proxy, upstream keep-alive, same worker count) and
# through Strangler with a realistic 20-route table, with its access log off
# and on (JSON lines to a file). Prints requests/s and p99 for each, and the
# Strangler/nginx and access-log on/off ratios. Everything (load generator, proxy,
# backend) shares this machine's cores, so only ratios from one run mean much.
#
#   bench/proxy-vs-nginx.sh [DURATION] [CONNECTIONS] [WORKERS] [ROUNDS]
#   defaults: 10s 64 2 2
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-10s}
CONNS=${2:-64}
WORKERS=${3:-2}
ROUNDS=${4:-2}

cargo build --release -q --bin strangler --bin strangler-bench-backend
BIN=target/release

WORK=$(mktemp -d /tmp/strangler-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

source bench/lib.sh
bench_need wrk nginx
BACKEND_PORT=$(free_port); NGINX_PORT=$(free_port); PROXY_PORT=$(free_port); ADMIN_PORT=$(free_port)
LOG_PROXY_PORT=$(free_port); LOG_ADMIN_PORT=$(free_port)

"$BIN/strangler-bench-backend" "$BACKEND_PORT" 1 & PIDS+=($!)

cat > "$WORK/nginx.conf" <<NGINX
worker_processes $WORKERS;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    # As bench/lib.sh's: connections kept as long as they are used.
    keepalive_requests 1000000;
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
NGINX
nginx -c "$WORK/nginx.conf" -p "$WORK" -g 'daemon off;' & PIDS+=($!)

B="http://127.0.0.1:$BACKEND_PORT"
bench_routes "127.0.0.1:$PROXY_PORT" "127.0.0.1:$ADMIN_PORT" "sqlite://$WORK/strangler.db" "$B" > "$WORK/routes.yaml"
# The same table with the access log on, on ports of its own.
sed -e "s/^listen: .*/listen: 127.0.0.1:$LOG_PROXY_PORT/" \
    -e "s/^admin: .*/admin: { listen: \"127.0.0.1:$LOG_ADMIN_PORT\" }/" \
    -e "s#^store: .*#store: sqlite://$WORK/strangler-log.db\naccess_log: { path: $WORK/access.log, format: json }#" \
    "$WORK/routes.yaml" > "$WORK/routes-log.yaml"
"$BIN/strangler" check "$WORK/routes.yaml" "$WORK/routes-log.yaml" >/dev/null
RUST_LOG=warn "$BIN/strangler" serve --config "$WORK/routes.yaml" --threads "$WORKERS" \
    --pid-file "$WORK/strangler.pid" --upgrade-sock "$WORK/strangler.sock" >"$WORK/strangler.log" 2>&1 & PIDS+=($!)
RUST_LOG=warn "$BIN/strangler" serve --config "$WORK/routes-log.yaml" --threads "$WORKERS" \
    --pid-file "$WORK/strangler-log.pid" --upgrade-sock "$WORK/strangler-log.sock" >"$WORK/strangler-log.log" 2>&1 & PIDS+=($!)

wait_port "$BACKEND_PORT"; wait_port "$NGINX_PORT"; wait_port "$PROXY_PORT"; wait_port "$LOG_PROXY_PORT"

PATH_UNDER_TEST=/api/orders/12345
HEADERS=(-H "X-Tenant-Id: umbrella-corp" -H "Accept: application/json")
for port in "$BACKEND_PORT" "$NGINX_PORT" "$PROXY_PORT" "$LOG_PROXY_PORT"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$PATH_UNDER_TEST" "${HEADERS[@]}")
    [ "$code" = 200 ] || { echo "port $port answered $code"; cat "$WORK/strangler.log"; exit 1; }
done

# wrk prints latency percentiles with --latency; p99 is normalized to ms.
run() {
    local name=$1 port=$2
    wrk -t2 -c"$CONNS" -d"$DURATION" --latency "${HEADERS[@]}" "http://127.0.0.1:$port$PATH_UNDER_TEST" > "$WORK/$name.out"
    local rps p99
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/$name.out")
    p99=$(wrk_p99_ms "$WORK/$name.out")
    local errors
    errors=$(awk '/Non-2xx|Socket errors/ {print}' "$WORK/$name.out" | tr '\n' ' ')
    printf '%-10s %10.0f req/s   p99 %7.2f ms  %s\n' "$name" "$rps" "$p99" "$errors"
    echo "$name $rps $p99" >> "$WORK/results"
}

echo "wrk -t2 -c$CONNS -d$DURATION, $WORKERS worker(s) per proxy, $(nproc) cores shared, $ROUNDS rounds"
run direct "$BACKEND_PORT"
for round in $(seq "$ROUNDS"); do
    run nginx "$NGINX_PORT"
    run strangler "$PROXY_PORT"
    run strangler+log "$LOG_PROXY_PORT"
done
lines=$(wc -l < "$WORK/access.log")
dropped=$(curl -s "http://127.0.0.1:$LOG_ADMIN_PORT/metrics" | awk '$1=="strangler_access_log_dropped_total" {print $2}')
echo "access log: $lines lines written, ${dropped:-0} dropped"

python3 - "$WORK/results" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
def agg(name, col):
    return statistics.median(float(r[col]) for r in rows if r[0] == name)
n_rps, s_rps = agg("nginx", 1), agg("strangler", 1)
n_p99, s_p99 = agg("nginx", 2), agg("strangler", 2)
l_rps, l_p99 = agg("strangler+log", 1), agg("strangler+log", 2)
d_rps = agg("direct", 1)
print(f"median: direct {d_rps:.0f} req/s; nginx {n_rps:.0f} req/s p99 {n_p99:.2f} ms; strangler {s_rps:.0f} req/s p99 {s_p99:.2f} ms; strangler+log {l_rps:.0f} req/s p99 {l_p99:.2f} ms")
print(f"ratio strangler/nginx: throughput {s_rps/n_rps:.2f}x, p99 {s_p99/n_p99:.2f}x")
print(f"ratio access log on/off: throughput {l_rps/s_rps:.2f}x, p99 {l_p99/s_p99:.2f}x")
PY
