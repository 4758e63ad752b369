# Shared by the bench/ scripts: `source "$(dirname "$0")/lib.sh"`.

# A loopback TCP port that was free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits (up to 10 s) until 127.0.0.1:PORT accepts a connection.
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; exit 1; }

# A work directory WORK and a list PIDS of processes to stop, both cleaned
# up on exit: `bench_workdir NAME`.
bench_workdir() {
    WORK=$(mktemp -d "/tmp/strangler-$1.XXXXXX")
    PIDS=()
    trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
}
