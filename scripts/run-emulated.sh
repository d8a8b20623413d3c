#!/usr/bin/env bash
# make run-emulated: the GCP backend on this machine. Starts the Firestore, Pub/Sub and Cloud
# Storage emulators (scripts/emulators.sh), then `codeset serve --backend gcp`, which creates the
# events topic, its dead-letter topic and one push subscription per consumer pointing at its own
# /_consumers/<name> endpoint, and serves the API on Firestore, Pub/Sub and the bucket
# CODESET_BLOB_BUCKET (large values) with local sandboxes. Set the listen address with
# CODESET_ADDR (the push endpoints follow it); other arguments go to `codeset serve`. Ctrl-C stops
# the server and the emulators.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/codeset}
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/codeset

addr=${CODESET_ADDR:-127.0.0.1:8080}
export CODESET_ADDR=$addr
export CODESET_BACKEND=gcp
export CODESET_CONSUMER_BASE_URL=${CODESET_CONSUMER_BASE_URL:-http://$addr}
export GOOGLE_CLOUD_PROJECT=${GOOGLE_CLOUD_PROJECT:-codeset-local}
export CODESET_DATA_DIR=${CODESET_DATA_DIR:-./.codeset-emulated} # sandboxes live here
export CODESET_BLOB_BUCKET=${CODESET_BLOB_BUCKET:-codeset-local-blobs} # emulators.sh creates it

# The GCP backend reads its secrets from the environment (Secret Manager on GCP). The emulators
# start empty every time, so fresh secrets per run lose nothing.
secret() { head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }
export CODESET_JWT_KEYS=${CODESET_JWT_KEYS:-local:HS256:$(secret)}
export CODESET_GITHUB_TOKEN_KEY=${CODESET_GITHUB_TOKEN_KEY:-$(secret)}

# Without the emulators the clients would look for real Google Cloud credentials: refuse.
export EMULATORS_REQUIRED=1
exec scripts/emulators.sh "$BIN" serve "$@"
