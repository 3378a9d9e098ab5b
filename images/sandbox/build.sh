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
if ! docker build -q -t "$image" "$ctx" >"$ctx.log" 2>&1; then
    cat "$ctx.log" >&2; rm -f "$ctx.log"; exit 1
fi
rm -f "$ctx.log"
echo "sandbox image $image is up to date"
