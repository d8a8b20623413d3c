#!/usr/bin/env bash
# make run-emulated: the GCP backend on this machine, run as Cloud Functions run it: no background
# loop in the server. Starts the Firestore, Pub/Sub and Cloud Storage emulators
# (scripts/emulators.sh), then `codeset serve --backend gcp --scheduler external`, which creates
# the events topic, its dead-letter topic and one push subscription per consumer pointing at its
# own /_consumers/<name> endpoint, serves the API on Firestore, Pub/Sub and the bucket
# CODESET_BLOB_BUCKET (large values) with local sandboxes, and ticks no scheduled job. This script
# stands in for Cloud Scheduler: it reads the schedule from GET /_jobs and calls each job with
# POST /_jobs/<name> at its period (Cloud Scheduler's shortest is a minute; here the jobs' local
# periods, a second for the reapers). Set the listen address with CODESET_ADDR (the push
# endpoints follow it); other arguments go to `codeset serve`. Ctrl-C stops the server, the
# scheduler and the emulators.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/codeset}

if [ "${1:-}" != --under-emulators ]; then
	[ -x "$BIN" ] || go build -o "$BIN" ./cmd/codeset
	addr=${CODESET_ADDR:-127.0.0.1:8080}
	export CODESET_ADDR=$addr
	export CODESET_BACKEND=gcp
	export CODESET_SCHEDULER=external
	export CODESET_CONSUMER_BASE_URL=${CODESET_CONSUMER_BASE_URL:-http://$addr}
	export GOOGLE_CLOUD_PROJECT=${GOOGLE_CLOUD_PROJECT:-codeset-local}
	export CODESET_DATA_DIR=${CODESET_DATA_DIR:-./.codeset-emulated} # sandboxes live here
	export CODESET_BLOB_BUCKET=${CODESET_BLOB_BUCKET:-codeset-local-blobs} # emulators.sh creates it
	# Where Stripe sends a payer back after a deposit: the gcp backend has no page of its own.
	export CODESET_DEPOSIT_RETURN_URL=${CODESET_DEPOSIT_RETURN_URL:-http://$addr/docs}

	# The GCP backend reads its secrets from the environment (Secret Manager on GCP). The
	# emulators start empty every time, so fresh secrets per run lose nothing.
	secret() { head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }
	export CODESET_JWT_KEYS=${CODESET_JWT_KEYS:-local:HS256:$(secret)}
	export CODESET_GITHUB_TOKEN_KEY=${CODESET_GITHUB_TOKEN_KEY:-$(secret)}

	# Without the emulators the clients would look for real Google Cloud credentials: refuse.
	export EMULATORS_REQUIRED=1
	exec scripts/emulators.sh "$0" --under-emulators "$@"
fi
shift

base=http://$CODESET_ADDR
"$BIN" serve "$@" &
server=$!
scheduler=""
stop() {
	[ -n "$scheduler" ] && kill "$scheduler" 2>/dev/null
	kill -TERM "$server" 2>/dev/null # the server flushes what it buffers on SIGTERM
	wait "$server" 2>/dev/null
}
trap 'stop; exit 143' TERM
trap 'stop; exit 130' INT

# The schedule, once the server answers.
schedule=""
for _ in $(seq 1 600); do
	kill -0 "$server" 2>/dev/null || { wait "$server"; exit $?; }
	if schedule=$(curl -fsS -m 2 "$base/_jobs" 2>/dev/null) && [ -n "$schedule" ]; then break; fi
	sleep 0.1
done
[ -n "$schedule" ] || { echo "run-emulated: no schedule from $base/_jobs" >&2; stop; exit 1; }
echo "run-emulated: calling the scheduled jobs as Cloud Scheduler would:" $schedule >&2

# One loop per job, each calling its job at its period; a failed call is reported and the next
# period tries again, as Cloud Scheduler does.
(
	trap 'kill $(jobs -p) 2>/dev/null; exit 0' TERM
	while read -r name every; do
		(
			while sleep "$every"; do
				out=$(curl -sS -m 600 -X POST -w ' %{http_code}' "$base/_jobs/$name" 2>&1) || true
				case "$out" in *' 200') ;; *) echo "run-emulated: job $name: $out" >&2 ;; esac
			done
		) &
	done <<<"$schedule"
	wait
) &
scheduler=$!

wait "$server"
code=$?
kill "$scheduler" 2>/dev/null
exit $code
