#!/usr/bin/env bash
# Build the sandbox image from the local base image (no registry needed).
# Usage: images/sandbox/build.sh [IMAGE]   (default coatcheck/sandbox:latest)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
image=${1:-coatcheck/sandbox:latest}
"$top/images/base/build.sh"
ctx=$(mktemp -d /tmp/coatcheck-sandbox-ctx.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/runner"
cp "$top/runner/sandbox_init.py" "$ctx/runner/"
cp "$here/Dockerfile" "$ctx/Dockerfile"
docker build -q -t "$image" "$ctx" >/dev/null
echo "built sandbox image $image"
