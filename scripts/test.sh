#!/usr/bin/env bash
# make test: every test of the project, with the race detector, while the Firestore and Pub/Sub
# emulators run (scripts/emulators.sh starts them on free loopback ports, exports
# FIRESTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST, and stops them afterwards) and stripe-mock
# runs (scripts/with-stripe-mock.sh: STRIPE_MOCK_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/with-stripe-mock.sh scripts/emulators.sh bash -euo pipefail -c '
go vet ./...
go test -race -count=1 ./...
'
