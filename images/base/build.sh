#!/usr/bin/env bash
# Build the base image without any registry: debootstrap a minimal Debian trixie and import it.
# Usage: images/base/build.sh [IMAGE]   (default coatcheck/base:trixie; skipped if present)
set -euo pipefail
image=${1:-coatcheck/base:trixie}
if docker image inspect "$image" >/dev/null 2>&1; then
    echo "base image $image already present"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install -y debootstrap" >&2; exit 1; }
root=$(mktemp -d /tmp/coatcheck-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "debootstrapping Debian trixie into $root (about a minute)..."
debootstrap --variant=minbase --include=python3,ca-certificates,curl,git \
    trixie "$root" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# Trim what a sandbox never needs.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
       "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
find "$root"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'LABEL org.coatcheck.image=base' - "$image" >/dev/null
echo "built base image $image"
