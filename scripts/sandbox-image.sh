#!/usr/bin/env bash
# Builds and pushes the images Cloud Run sandboxes run (docs/SANDBOX_IMAGES.md); needs docker,
# logged in to the target's registry.
#
#   scripts/sandbox-image.sh base <target>
#       the sandbox base image, from this checkout: CODESET_CLOUDRUN_BASE_IMAGE
#   scripts/sandbox-image.sh sample <sample image> <target> <base image>
#       the sample's image with codeset sandboxd (from the base image) layered on: a dataset
#       row's environment.image
#
# Prints the pushed image by digest, the reference to configure or import.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
	sed -n '5,10p' "$0" >&2
	exit 2
}

# pushed pushes $1 and prints it by digest: a tag can move, a digest always names what was tested.
pushed() {
	docker push "$1" >&2
	local repo=${1%@*}
	case ${repo##*/} in *:*) repo=${repo%:*} ;; esac
	docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$1" | grep -F -m1 "$repo@"
}

case ${1:-} in
base)
	[ $# -eq 2 ] || usage
	docker build --file scripts/sandbox/Dockerfile --tag "$2" .
	pushed "$2"
	;;
sample)
	[ $# -eq 4 ] || usage
	context=$(mktemp -d)
	trap 'rmdir "$context"' EXIT
	docker build --file scripts/sandbox/sample.Dockerfile --build-arg SAMPLE_IMAGE="$2" --build-arg BASE_IMAGE="$4" --tag "$3" "$context"
	pushed "$3"
	;;
*)
	usage
	;;
esac
