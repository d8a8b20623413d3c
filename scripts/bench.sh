#!/usr/bin/env bash
# make bench: the speed figures of docs/PERFORMANCE.md.
#   1. SQLite event store: durable single-event appends (concurrent appenders, distinct streams)
#      and batches of 100 (Go benchmarks in events/sqlite);
#   2. process start to the first 200 from /api/v1/health (scripts/benchhttp start);
#   3. /api/v1/health throughput over loopback with 64 connections (scripts/benchhttp load, and
#      wrk too when it is installed);
#   4. what a verification adds to its verifier's run time, oracle sandbox included (Go benchmark
#      in functions/verification_bench_test.go).
# The machine has to be otherwise idle for the figures to mean anything: the load average is
# printed with them.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "machine: $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(awk '/MemTotal/ {printf "%.0f GB RAM", $2/1048576}' /proc/meminfo), go $(go env GOVERSION)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

echo "== event store (SQLite, synchronous=FULL, temp dir on $(df --output=source "${TMPDIR:-/tmp}" | tail -1))"
go test ./events/sqlite -run '^$' -bench . -benchtime "${BENCHTIME:-3s}" -count "${BENCHCOUNT:-1}" | grep -E '^Benchmark|^ok'
echo

mkdir -p bin
go build -o bin/codeset ./cmd/codeset
go build -o bin/benchhttp ./scripts/benchhttp

echo "== process start to first 200 from /api/v1/health"
bin/benchhttp start -bin bin/codeset -runs "${STARTRUNS:-10}"
echo

echo "== /api/v1/health throughput (the access log on, to a file)"
bin/benchhttp load -bin bin/codeset -conns 64 -duration "${LOADTIME:-10s}"
if command -v wrk >/dev/null; then
	tmp=$(mktemp -d)
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	bin/codeset serve --addr "127.0.0.1:$port" --data "$tmp/data" --no-demo >/dev/null 2>"$tmp/server.log" &
	pid=$!
	trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
	for _ in $(seq 200); do curl -fsS "http://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1 && break; sleep 0.05; done
	echo "wrk -t2 -c64 -d${LOADTIME:-10s}:"
	wrk -t2 -c64 -d"${LOADTIME:-10s}" "http://127.0.0.1:$port/api/v1/health" | grep -E 'Requests/sec|Latency|requests in|Non-2xx'
	echo "access log lines written: $(grep -c '"message":"request"' "$tmp/server.log")"
fi
echo

echo "== verification overhead beyond the verifier (embedded default, real local sandboxes)"
go test ./functions/ -run '^$' -bench VerificationOverhead -benchtime "${VERIFYRUNS:-40}x" | grep -E '^Benchmark|^ok'
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
