#!/usr/bin/env bash
# Report generation on a store of 100,000 stored diffs (plus twice as many
# matching comparisons counted), on SQLite and on PostgreSQL: the time of
# `strangler report` in each format and of the admin server's pages.
#
#   bench/report-100k.sh [ROWS=100000]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-100000}
cargo build --release -q --bin strangler --bin strangler-fill-store
BIN=target/release
WORK=$(mktemp -d /tmp/strangler-report.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

SCHEMA="bench_report_$$"
psql -q -h 127.0.0.1 -U postgres -d test -c "CREATE SCHEMA $SCHEMA" >/dev/null
trap 'psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA $SCHEMA CASCADE" >/dev/null 2>&1; rm -rf "$WORK"' EXIT

for store in "sqlite://$WORK/diffs.db" "postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3D$SCHEMA"; do
    kind=${store%%:*}
    start=$(date +%s.%N)
    "$BIN/strangler-fill-store" "$store" "$ROWS" 5 >/dev/null
    fill=$(echo "$(date +%s.%N) - $start" | bc)
    printf '%-8s filled %d diff rows in %.1f s\n' "$kind" "$ROWS" "$fill"
    for format in json md html; do
        start=$(date +%s.%N)
        RUST_LOG=warn "$BIN/strangler" report --config /nonexistent --store "$store" --since 48h --format "$format" > "$WORK/report.$format"
        t=$(echo "$(date +%s.%N) - $start" | bc)
        printf '%-8s report --format %-4s %6.2f s  (%d KB)\n' "$kind" "$format" "$t" $(( $(stat -c %s "$WORK/report.$format") / 1024 ))
    done
    start=$(date +%s.%N)
    RUST_LOG=warn "$BIN/strangler" report --config /nonexistent --store "$store" --since 48h --route route-3 --tenant tenant-13 --format json > /dev/null
    t=$(echo "$(date +%s.%N) - $start" | bc)
    printf '%-8s report --route --tenant  %6.2f s\n' "$kind" "$t"
done
