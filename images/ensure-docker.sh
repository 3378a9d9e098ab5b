#!/usr/bin/env bash
# Make sure a Docker engine answers: install docker.io and start dockerd where none runs.
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
if ! command -v dockerd >/dev/null 2>&1; then
    echo "coatcheck: no Docker engine installed; installing docker.io with apt-get..."
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq docker.io >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
    echo "coatcheck: no Docker engine running; starting dockerd in the background (log: /tmp/coatcheck-dockerd.log)"
    # In a session of its own: a process-group kill of whatever ran this must not take it along.
    $sudo setsid sh -c 'nohup dockerd >/tmp/coatcheck-dockerd.log 2>&1 &'
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && exit 0
        sleep 0.5
    done
    echo "coatcheck: dockerd did not come up; see /tmp/coatcheck-dockerd.log" >&2
    tail -20 /tmp/coatcheck-dockerd.log >&2 || true
    exit 1
fi
