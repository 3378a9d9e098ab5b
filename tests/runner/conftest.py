"""Fixtures of the ``coatcheck run`` command-line tests (real Docker, real proxy)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.sandbox.helpers import docker_client


@pytest.fixture(scope="session")
def docker_api() -> Iterator[Any]:
    with docker_client() as client:
        yield client
