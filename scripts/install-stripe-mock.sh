#!/usr/bin/env bash
# Installs stripe-mock (the Stripe API mock the billing tests run against) into ./bin/tools,
# pinned, through the Go module proxy. Idempotent: does nothing when the pinned version is there.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=v0.203.0
TOOLS="$PWD/bin/tools"
if [[ -x "$TOOLS/stripe-mock" && "$(cat "$TOOLS/.stripe-mock-version" 2>/dev/null)" == "$VERSION" ]]; then
	exit 0
fi
mkdir -p "$TOOLS"
GOBIN="$TOOLS" GOFLAGS=-mod=mod go install "github.com/stripe/stripe-mock@$VERSION"
echo "$VERSION" >"$TOOLS/.stripe-mock-version"
