"""Fixtures of the real-Docker sandbox tests: labelled helper containers. (The Docker client,
``docker_api``, and the check that an engine answers live in tests/conftest.py.)"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker.errors
import pytest

from tests.sandbox.helpers import IMAGE, TEST_LABEL

LISTENER = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8000))
s.listen(16)
print("LISTENING", flush=True)
while True:
    c, peer = s.accept()
    print("CONNECTED", peer[0], flush=True)
    c.close()
"""


@dataclass
class Neighbour:
    """Another container on the default bridge with a TCP listener that logs each connection."""

    container: Any
    ip: str
    port: int = 8000

    def connections(self) -> int:
        return self.container.logs().decode().count("CONNECTED")


@pytest.fixture(scope="module")
def neighbour(docker_api: Any) -> Iterator[Neighbour]:
    container = docker_api.containers.run(
        IMAGE, ["python3", "-c", LISTENER], detach=True, network="bridge",
        labels={TEST_LABEL: "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while b"LISTENING" not in container.logs():
            assert time.monotonic() < deadline, f"neighbour never listened: {container.logs()!r}"
            time.sleep(0.1)
        container.reload()
        ip = container.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        assert ip, container.attrs["NetworkSettings"]
        yield Neighbour(container, ip)
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
