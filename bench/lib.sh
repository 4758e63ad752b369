# Shared by the bench/ scripts: `source "$(dirname "$0")/lib.sh"`.

# A loopback TCP port that was free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits (up to 10 s) until 127.0.0.1:PORT accepts a connection.
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; exit 1; }

# A work directory WORK and a list PIDS of processes to stop, both cleaned
# up on exit: `bench_workdir NAME`. A script with more to undo on exit (a
# uprobe it set) adds the command with `bench_on_exit COMMAND`; those run
# first.
bench_workdir() {
    WORK=$(mktemp -d "/tmp/strangler-$1.XXXXXX")
    PIDS=()
    ON_EXIT=()
    trap bench_cleanup EXIT
}
bench_on_exit() { ON_EXIT+=("$1"); }
bench_cleanup() {
    local c p
    for c in "${ON_EXIT[@]}"; do eval "$c" || true; done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}

# The benchmarks' realistic table: 20 routes of every kind; the benchmarked
# request (GET /api/orders/12345, X-Tenant-Id: umbrella-corp) matches a
# prefix route with a canary, a tenant pin list and sticky tenants.
#   bench_routes LISTEN ADMIN_LISTEN STORE BACKEND_URL > routes.yaml
bench_routes() {
    cat <<YAML
version: 1
listen: $1
admin: { listen: "$2" }
store: $3
backends:
  monolith: { url: "$4", connect_timeout: 2s, read_timeout: 30s }
  orders:   { url: "$4" }
  users:    { url: "$4" }
  catalog:  { url: "$4" }
  search:   { url: "$4" }
tenant:
  - header: X-Tenant-Id
  - host_label: 0
  - cookie: tenant
default: monolith
routes:
  - { name: users-read,      match: { path: /api/users, methods: [GET, HEAD] }, new: users, canary: 25 }
  - { name: users-write,     match: { path: /api/users, methods: [POST, PUT, PATCH, DELETE] }, new: users, canary: 0 }
  - { name: users-me,        match: { path_exact: /api/users/me }, new: users, canary: 50 }
  - { name: orders-write,    match: { path: /api/orders, methods: [POST, PUT, DELETE] }, new: orders, canary: 5 }
  - { name: orders-export,   match: { path_exact: /api/orders/export }, new: orders, canary: 100 }
  - { name: orders-history,  match: { path: /api/orders/history }, new: orders, canary: 10 }
  - { name: catalog-item,    match: { path_regex: "^/api/catalog-items/[0-9]+$" }, new: catalog, canary: 30 }
  - { name: catalog,         match: { path: /api/catalog }, new: catalog, canary: 20 }
  - { name: search,          match: { path: /api/search, methods: [GET] }, new: search, canary: 75 }
  - { name: search-beta,     match: { path: /api/search, headers: { X-Beta: "1" } }, new: search, canary: 100 }
  - { name: carts,           match: { path: /api/carts }, new: orders, canary: 15 }
  - { name: checkout,        match: { path: /api/checkout, methods: [POST] }, new: orders, canary: 1 }
  - { name: payments,        match: { path: /api/payments, host: pay.example.com }, new: orders, canary: 0 }
  - { name: invoices,        match: { path_regex: "^/api/invoices/[a-z0-9-]+/pdf$" }, new: orders, canary: 40 }
  - { name: reviews,         match: { path: /api/reviews }, new: catalog, canary: 60 }
  - { name: recommendations, match: { path: /api/recommendations }, new: search, canary: 90 }
  - { name: inventory,       match: { path: /api/inventory, methods: [GET] }, new: catalog, canary: 35 }
  - { name: shipping,        match: { path: /api/shipping }, new: orders, canary: 20 }
  - { name: tenants-admin,   match: { path: /api/admin/tenants, headers: { X-Internal: "yes" } }, new: users, canary: 0 }
  - name: orders-read
    match: { path: /api/orders, methods: [GET, HEAD] }
    new: orders
    canary: 50
    sticky: tenant
    tenants: { acme: new, initech: legacy, globex: new }
YAML
}

# A percentile of wrk's --latency output in FILE, in milliseconds:
#   wrk_percentile_ms FILE 90%      wrk_p99_ms FILE
wrk_percentile_ms() { awk -v p="$2" '$1==p {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' "$1"; }
wrk_p99_ms() { wrk_percentile_ms "$1" 99%; }

# User and system clock ticks of the processes PID... (all their threads),
# as "USER SYSTEM"; divide by `getconf CLK_TCK` for seconds.
cpu_ticks() { local u=0 s=0 pu ps p; for p in "$@"; do read -r pu ps < <(awk '{print $14, $15}' "/proc/$p/stat"); u=$((u + pu)); s=$((s + ps)); done; echo "$u $s"; }

# The Rust binaries a bench runs: STRANGLER_BIN=DIR runs ones built
# elsewhere (another profile, another commit; DIR holds strangler,
# strangler-bench-backend and examples/ladder), else a release build here.
# Sets BIN.
bench_binaries() {
    if [ -n "${STRANGLER_BIN:-}" ]; then
        BIN=$STRANGLER_BIN
    else
        cargo build --release -q --bin strangler --bin strangler-bench-backend --example ladder
        BIN=target/release
    fi
}

# Installs whichever of the named commands is missing, from the Debian
# package of its name or the one named after a colon:
#   bench_need wrk nginx haproxy nstat:iproute2 perf:linux-perf
bench_need() {
    for spec in "$@"; do
        command -v "${spec%%:*}" >/dev/null || apt-get install -y -qq "${spec#*:}" >/dev/null
    done
}

# Starts $BIN's strangler-bench-backend (one worker) on a free port and
# waits for it: sets BACKEND_PORT and BACKEND (host:port). Needs
# bench_binaries and bench_workdir first.
bench_backend() {
    BACKEND_PORT=$(free_port)
    "$BIN/strangler-bench-backend" "$BACKEND_PORT" 1 & PIDS+=($!)
    wait_port "$BACKEND_PORT"
    BACKEND=127.0.0.1:$BACKEND_PORT
}

# The peers, configured the same wherever they are compared: nginx as a
# reverse proxy with upstream keep-alive, HAProxy with keep-alive and
# connection reuse, each adding X-Forwarded-For as Strangler does. Every
# proxy keeps a connection, on either side, for as long as it is used:
# nginx's own default closes each after 1,000 requests (keepalive_requests,
# client and upstream side), which HAProxy and Strangler do not, so nginx
# is told not to (bench/sched.sh's nginx-1000 runs it with its default).
#   nginx_conf LISTEN_PORT BACKEND WORKERS > nginx.conf   (needs $WORK)
#   haproxy_cfg LISTEN_PORT BACKEND THREADS > haproxy.cfg
nginx_conf() {
    cat <<NGINX
worker_processes $3;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    upstream backend { server $2; keepalive 64; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$1 reuseport;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$remote_addr;
        }
    }
}
NGINX
}
haproxy_cfg() {
    cat <<HAPROXY
global
    nbthread $3
    log stderr format raw local0 err
defaults
    mode http
    option http-keep-alive
    option forwardfor
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend in
    bind 127.0.0.1:$1
    default_backend app
backend app
    server b1 $2
HAPROXY
}
