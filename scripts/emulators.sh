#!/usr/bin/env bash
# Usage: scripts/emulators.sh COMMAND [ARG...]
#
# Starts the Firestore emulator and the Pub/Sub emulator (from the Google Cloud CLI, Java 17) and
# a Cloud Storage emulator (scripts/fakegcs, built here, with the bucket $CODESET_BLOB_BUCKET or
# codeset-local-blobs) on free loopback ports, runs COMMAND with FIRESTORE_EMULATOR_HOST,
# PUBSUB_EMULATOR_HOST and STORAGE_EMULATOR_HOST exported, and stops them all when COMMAND ends
# or the script is interrupted. Each emulator runs in its own process group and the whole group
# is stopped: gcloud leaves Java children behind otherwise.
#
# Without gcloud (or when an emulator does not come up) COMMAND still runs, without the variables,
# so the emulator tests skip and say why; with CI=true that is an error instead.
set -euo pipefail

if [ $# -eq 0 ]; then
	echo "usage: $0 COMMAND [ARG...]" >&2
	exit 2
fi

GCLOUD=${GCLOUD:-gcloud}
START_TIMEOUT=${EMULATOR_START_TIMEOUT:-90} # seconds; both start in about 4 s on an idle machine

# With CI=true (or EMULATORS_REQUIRED=1, for make run-emulated) emulators that do not start are
# an error rather than a reason to skip.
in_ci() {
	[ "${EMULATORS_REQUIRED:-}" = 1 ] && return 0
	case "${CI:-}" in true | TRUE | True | 1) return 0 ;; esac
	return 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/codeset-emulators.XXXXXX")
pgids=()

stop_all() {
	local pg
	for pg in "${pgids[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
	for _ in $(seq 1 50); do
		local alive=0
		for pg in "${pgids[@]}"; do kill -0 -- "-$pg" 2>/dev/null && alive=1; done
		[ $alive -eq 0 ] && break
		sleep 0.1
	done
	for pg in "${pgids[@]}"; do kill -KILL -- "-$pg" 2>/dev/null || true; done
	rm -rf "$work"
}
trap stop_all EXIT
child=""
# On a signal, stop COMMAND (it runs in the background so that bash handles the signal at once)
# with SIGTERM, since a background job of a script ignores SIGINT, then exit: the EXIT trap stops
# the emulators.
on_signal() {
	[ -n "$child" ] && kill -TERM "$child" 2>/dev/null && wait "$child" 2>/dev/null
	exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# free_port prints a loopback port nothing listens on. Another process may take it before the
# emulator binds it; start() then notices the emulator died and tries another port.
free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

answers() { # host:port [path]: answers HTTP 2xx on path (both gcloud emulators reply "Ok" on /)
	if command -v curl >/dev/null; then
		curl -fsS -m 2 -o /dev/null "http://$1${2:-/}" 2>/dev/null
	else
		(exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null
	fi
}

# launch NAME GCLOUD-ARGS...: starts an emulator on a free port in its own process group (setsid:
# stop_all stops the group as a whole) and records its pid and host:port.
declare -A pid_of host_of args_of
launch() {
	local name=$1 port
	shift
	args_of[$name]="$*"
	port=$(free_port) || return 1
	host_of[$name]=127.0.0.1:$port
	setsid "$GCLOUD" "$@" --host-port="${host_of[$name]}" >"$work/$name.log" 2>&1 </dev/null &
	pid_of[$name]=$!
	pgids+=("$!")
}

# wait_up NAME...: waits until every named emulator answers; one that dies (its port was taken
# meanwhile) is launched again on another port, up to three times.
wait_up() {
	local deadline=$((SECONDS + START_TIMEOUT)) name pending tries
	declare -A tries_of
	while :; do
		pending=0
		for name in "$@"; do
			answers "${host_of[$name]}" && continue
			pending=1
			if ! kill -0 "${pid_of[$name]}" 2>/dev/null; then
				tries=${tries_of[$name]:-1}
				echo "emulators.sh: the $name emulator exited (attempt $tries); its log:" >&2
				tail -n 20 "$work/$name.log" >&2 || true
				[ "$tries" -ge 3 ] && return 1
				tries_of[$name]=$((tries + 1))
				kill -KILL -- "-${pid_of[$name]}" 2>/dev/null || true
				# shellcheck disable=SC2086 # args_of holds plain words
				launch "$name" ${args_of[$name]} || return 1
			fi
		done
		[ $pending -eq 0 ] && return 0
		if [ $SECONDS -ge $deadline ]; then
			echo "emulators.sh: the emulators did not answer within ${START_TIMEOUT}s" >&2
			return 1
		fi
		sleep 0.2
	done
}

# The Cloud Storage emulator needs only Go. Its port is checked free just before it binds; one
# taken meanwhile makes it exit, and another port is tried.
start_storage() {
	local root bucket=${CODESET_BLOB_BUCKET:-codeset-local-blobs} port deadline
	root=$(cd "$(dirname "$0")/.." && pwd)
	(cd "$root" && "${GO:-go}" build -o "$work/fakegcs" ./scripts/fakegcs) || return 1
	for _ in 1 2 3; do
		port=$(free_port) || return 1
		setsid "$work/fakegcs" -addr "127.0.0.1:$port" -bucket "$bucket" >"$work/storage.log" 2>&1 </dev/null &
		pgids+=("$!")
		deadline=$((SECONDS + START_TIMEOUT))
		while kill -0 "$!" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
			if answers "127.0.0.1:$port" "/storage/v1/b/$bucket"; then
				export STORAGE_EMULATOR_HOST=127.0.0.1:$port
				echo "emulators.sh: Cloud Storage on $STORAGE_EMULATOR_HOST, bucket $bucket" >&2
				return 0
			fi
			sleep 0.1
		done
		tail -n 20 "$work/storage.log" >&2 || true
	done
	return 1
}
if ! start_storage; then
	if in_ci; then
		echo "emulators.sh: the Cloud Storage emulator did not start (required: CI=true or EMULATORS_REQUIRED=1)" >&2
		exit 1
	fi
	echo "emulators.sh: the Cloud Storage emulator did not start; STORAGE_EMULATOR_HOST is not set" >&2
fi

if command -v "$GCLOUD" >/dev/null 2>&1; then
	# A private gcloud configuration: no prompts, no update checks, no shared state with other
	# runs on this machine.
	export CLOUDSDK_CONFIG="$work/gcloud" CLOUDSDK_CORE_DISABLE_PROMPTS=1
	export CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK=1
	began=$SECONDS
	mkdir -p "$work/pubsub"
	# Both at once: each takes a few seconds of JVM start.
	if launch firestore emulators firestore start &&
		launch pubsub beta emulators pubsub start --project=codeset-local --data-dir="$work/pubsub" &&
		wait_up firestore pubsub; then
		export FIRESTORE_EMULATOR_HOST=${host_of[firestore]} PUBSUB_EMULATOR_HOST=${host_of[pubsub]}
		echo "emulators.sh: Firestore on $FIRESTORE_EMULATOR_HOST, Pub/Sub on $PUBSUB_EMULATOR_HOST (up in $((SECONDS - began)) s)" >&2
	elif in_ci; then
		echo "emulators.sh: the emulators did not start (required: CI=true or EMULATORS_REQUIRED=1)" >&2
		exit 1
	else
		echo "emulators.sh: the emulators did not start; their tests will skip" >&2
	fi
elif in_ci; then
	echo "emulators.sh: $GCLOUD is not installed and the emulators are required (CI=true or EMULATORS_REQUIRED=1)" >&2
	exit 1
else
	echo "emulators.sh: $GCLOUD not found; the Firestore and Pub/Sub tests will skip" >&2
fi

# Not exec: the EXIT trap must run after COMMAND to stop the emulators.
set +e
"$@" &
child=$!
wait "$child"
status=$?
exit $status
