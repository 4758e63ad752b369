#!/usr/bin/env bash
# Soak: the release proxy under a steady open-loop load for a long time, with
# about 1% of requests injected as faults, while its resident memory and open
# file descriptors are sampled. Run by hand (it takes MINUTES); the figures go
# in the README.
#
#   bench/soak.sh [MINUTES=30] [RATE=500]
#
# Traffic: RATE req/s to a route shadowed at 100% (every answer compared and
# the differences stored in SQLite), canary 10%, sticky by tenant. Faults, at
# 1% of RATE, in rotation: a backend that refuses connections (502), one that
# accepts and never answers (504 at its 1 s read_timeout), an encoded slash
# (400), a header over 64 KiB (431), a body over the route's limit (413), a
# client that resets its connection mid-request, and a slowloris header (408
# at the 2 s header deadline). A SIGHUP reload every 30 s.
#
# Prints a sample per minute (RSS, fds, requests, errors) and at the end the
# first and last sample after the warm-up minute, their difference, and the
# load generator's and fault injector's own accounts.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-30}
RATE=${2:-500}

cargo build --release -q --bin strangler --bin strangler-bench-backend --bin strangler-load
BIN=target/release
source bench/lib.sh
bench_workdir soak

LEGACY=$(free_port); NEW=$(free_port); HOLE=$(free_port); DEAD=$(free_port)
PORT=$(free_port); ADMIN=$(free_port)
"$BIN/strangler-bench-backend" "$LEGACY" 1 & PIDS+=($!)
"$BIN/strangler-bench-backend" "$NEW" 1 & PIDS+=($!)
python3 - "$HOLE" <<'PY' & PIDS+=($!)
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4096)
held = []
while True:
    c, _ = s.accept(); held.append(c)   # accept, never answer
    held = held[-2000:]                 # closing old ones, as a real black hole's peer times out
PY
wait_port "$LEGACY"; wait_port "$NEW"; wait_port "$HOLE"

cat > "$WORK/routes.yaml" <<YAML
version: 1
listen: 127.0.0.1:$PORT
admin: { listen: "127.0.0.1:$ADMIN" }
store: sqlite://$WORK/diffs.db
backends:
  legacy: { url: "http://127.0.0.1:$LEGACY" }
  new: { url: "http://127.0.0.1:$NEW" }
  dead: { url: "http://127.0.0.1:$DEAD", connect_timeout: 1s }
  hole: { url: "http://127.0.0.1:$HOLE", read_timeout: 1s }
tenant: [ { header: X-Tenant-Id } ]
default: legacy
routes:
  - name: orders
    match: { path: /api/orders }
    new: new
    canary: 10
    max_request_body: 4KiB
    shadow: { percent: 100, noise_sample: 5, timeout: 2s }
  - name: refused
    match: { path: /fault/refused }
    legacy: dead
    new: new
  - name: blackhole
    match: { path: /fault/hole }
    legacy: hole
    new: new
YAML
RUST_LOG=error "$BIN/strangler" serve --config "$WORK/routes.yaml" --threads 2 --header-timeout 2s \
    --pid-file "$WORK/strangler.pid" --upgrade-sock "$WORK/strangler.sock" > "$WORK/strangler.log" 2>&1 &
PROXY=$!; PIDS+=($PROXY)
wait_port "$PORT"

SECONDS_TOTAL=$((MINUTES * 60))
"$BIN/strangler-load" "http://127.0.0.1:$PORT/api/orders/1" "$RATE" "$SECONDS_TOTAL" 32 "X-Tenant-Id: soak" \
    > "$WORK/load.out" &
LOAD=$!; PIDS+=($LOAD)

python3 - "$PORT" "$RATE" "$SECONDS_TOTAL" > "$WORK/faults.out" <<'PY' &
import socket, sys, threading, time
port, rate, total = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
interval = 1.0 / (rate * 0.01)
counts, lock = {}, threading.Lock()

def exchange(data, reset=False, slow=False):
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(10)
    try:
        if slow:
            s.sendall(b"GET /api/orders/1 HTTP/1.1\r\nHost: soak\r\n")
            for _ in range(6):
                time.sleep(1); s.sendall(b"X-Slow: 1\r\n")
        else:
            s.sendall(data)
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return "reset"
        out = b""
        while not out.endswith(b"\r\n\r\n") and b"\r\n\r\n" not in out:
            d = s.recv(4096)
            if not d: break
            out += d
        return out.split(b" ", 2)[1].decode() if out.startswith(b"HTTP/") else "closed"
    except OSError as e:
        return "closed" if slow else type(e).__name__
    finally:
        s.close()

faults = [
    ("refused", lambda: exchange(b"GET /fault/refused HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")),
    ("hole", lambda: exchange(b"GET /fault/hole HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")),
    ("bad_path", lambda: exchange(b"GET /api%2Forders HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")),
    ("big_header", lambda: exchange(b"GET /api/orders/1 HTTP/1.1\r\nHost: soak\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")),
    ("big_body", lambda: exchange(b"POST /api/orders/1 HTTP/1.1\r\nHost: soak\r\nConnection: close\r\nContent-Length: 9000\r\n\r\n" + b"x" * 9000)),
    ("client_reset", lambda: exchange(b"POST /api/orders/1 HTTP/1.1\r\nHost: soak\r\nContent-Length: 1000\r\n\r\nxx", reset=True)),
    ("slowloris", lambda: exchange(b"", slow=True)),
]

def run(name, f):
    r = f()
    with lock:
        counts[(name, r)] = counts.get((name, r), 0) + 1

start, k, threads = time.time(), 0, []
while time.time() - start < total:
    name, f = faults[k % len(faults)]
    t = threading.Thread(target=run, args=(name, f)); t.start(); threads.append(t)
    threads = [t for t in threads if t.is_alive()]
    k += 1
    time.sleep(max(0.0, start + k * interval - time.time()))
for t in threads: t.join()
print("faults injected:", k)
for (name, r), n in sorted(counts.items()):
    print(f"  {name:13s} -> {r:8s} {n}")
PY
FAULTS=$!; PIDS+=($FAULTS)

sample() {
    local rss fds m req err
    rss=$(awk '/VmRSS/ {print $2}' /proc/$PROXY/status)
    fds=$(ls /proc/$PROXY/fd | wc -l)
    m=$(curl -s "127.0.0.1:$ADMIN/metrics")
    req=$(echo "$m" | grep '^strangler_requests_total' | awk '{s+=$2} END {printf "%d", s}')
    err=$(echo "$m" | grep '^strangler_upstream_errors_total' | awk '{s+=$2} END {printf "%d", s}')
    echo "$1 $rss $fds $req $err"
}
printf '%6s %10s %5s %10s %8s\n' minute rss_kib fds requests upstream_errors
: > "$WORK/samples"
for minute in $(seq 0 "$MINUTES"); do
    s=$(sample "$minute"); echo "$s" >> "$WORK/samples"
    printf '%6s %10s %5s %10s %8s\n' $s
    [ "$minute" -eq "$MINUTES" ] && break
    for _ in 1 2; do sleep 30; kill -HUP "$PROXY"; done
done
wait "$LOAD" "$FAULTS"
kill -0 "$PROXY" || { echo "the proxy died"; tail -50 "$WORK/strangler.log"; exit 1; }

echo
echo "load:   $(cat "$WORK/load.out")"
cat "$WORK/faults.out"
awk 'NR==2 {r0=$2; f0=$3} {r=$2; f=$3; if ($2>rmax) rmax=$2; if ($3>fmax) fmax=$3}
     END {printf "after the warm-up minute: RSS %d -> %d KiB (%+d KiB, max %d), fds %d -> %d (max %d)\n", r0, r, r-r0, rmax, f0, f, fmax}' "$WORK/samples"
curl -s "127.0.0.1:$ADMIN/metrics" | grep -E '^strangler_(rejected_requests_total|shadow_dropped_total|config_reloads_total)' | grep -v ' 0$' || true
