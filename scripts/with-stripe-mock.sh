#!/usr/bin/env bash
# with-stripe-mock.sh CMD...: installs stripe-mock if needed (scripts/install-stripe-mock.sh),
# starts it on a free loopback port, runs CMD with STRIPE_MOCK_URL exported, and stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-stripe-mock.sh
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
log="${TMPDIR:-/tmp}/stripe-mock-$port.log"
./bin/tools/stripe-mock -http-addr "127.0.0.1:$port" -https-addr 127.0.0.1: >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for i in $(seq 1 100); do
	if curl -fsS -o /dev/null -u sk_test_123: "http://127.0.0.1:$port/v1/customers" 2>/dev/null; then
		break
	fi
	if ! kill -0 "$pid" 2>/dev/null || [[ $i == 100 ]]; then
		echo "stripe-mock did not start; see $log" >&2
		exit 1
	fi
	sleep 0.1
done
export STRIPE_MOCK_URL="http://127.0.0.1:$port"
"$@"
