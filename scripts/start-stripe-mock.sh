#!/usr/bin/env bash
# Starts stripe-mock on a free loopback port and prints "STRIPE_MOCK_URL=http://127.0.0.1:PORT
# STRIPE_MOCK_PID=PID". Meant to be eval'ed by scripts/test.sh, which stops it on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-stripe-mock.sh >&2
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
./bin/tools/stripe-mock -http-addr "127.0.0.1:$port" >"${TMPDIR:-/tmp}/stripe-mock-$port.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
	if curl -fsS -o /dev/null -u sk_test_123: "http://127.0.0.1:$port/v1/customers" 2>/dev/null; then
		echo "STRIPE_MOCK_URL=http://127.0.0.1:$port STRIPE_MOCK_PID=$pid"
		exit 0
	fi
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "stripe-mock exited; see ${TMPDIR:-/tmp}/stripe-mock-$port.log" >&2
		exit 1
	fi
	sleep 0.1
done
echo "stripe-mock did not answer on port $port" >&2
kill "$pid"
exit 1
