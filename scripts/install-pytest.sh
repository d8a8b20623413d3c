#!/usr/bin/env bash
# Installs Debian's pytest (python3-pytest, for /usr/bin/python3) when it is missing: the oracle's
# tests grade a sample whose verifier is `pytest -rA`. Idempotent. Needs root and apt; without
# them it says so and the tests that need pytest skip (they fail under CI=true).
set -euo pipefail
if /usr/bin/python3 -c 'import pytest' 2>/dev/null; then
	exit 0
fi
if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
	echo "install-pytest: /usr/bin/python3 has no pytest, and apt-get as root is not available here" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends python3-pytest >/dev/null 2>&1; then
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends python3-pytest >/dev/null
fi
