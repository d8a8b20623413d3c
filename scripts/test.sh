#!/usr/bin/env bash
# make test: go vet, then every test of the project with the race detector while the Firestore
# and Pub/Sub emulators run (scripts/emulators.sh starts them on free loopback ports, exports
# FIRESTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST, and stops them afterwards) and stripe-mock
# runs (scripts/with-stripe-mock.sh installs it pinned into bin/tools and exports STRIPE_MOCK_URL;
# the billing tests fail under CI=true without it), and with Debian's pytest for the oracle's
# pytest sample (scripts/install-pytest.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
go vet ./...
scripts/install-pytest.sh
exec scripts/with-stripe-mock.sh scripts/emulators.sh go test -race -count=1 ./...
