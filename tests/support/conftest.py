"""Fixtures of the fake Messages API's tests: the fake on the session's test CA, the real SDK
pointed at it, and a clock for the SDK's retry waits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import anthropic._base_client
import pytest
import trustme

from tests.support.fake_anthropic import FakeAnthropic, sdk_client

API_KEY = "sk-ant-api03-" + "fAkEkEy0" * 10  # the key the fake expects


@pytest.fixture
def fake_api(test_ca: trustme.CA) -> Iterator[FakeAnthropic]:
    with FakeAnthropic.start(test_ca, api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
def client(fake_api: FakeAnthropic, test_ca: trustme.CA) -> Iterator[anthropic.Anthropic]:
    with sdk_client(fake_api.url, test_ca, api_key=API_KEY) as c:
        yield c


class RetryClock:
    """Stands in for the ``time`` module of the SDK's retry loop: records each wait instead of
    sleeping it (so a test sees exactly how long the SDK chose to wait, without waiting)."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def retry_clock(monkeypatch: pytest.MonkeyPatch) -> RetryClock:
    clock = RetryClock()
    monkeypatch.setattr(anthropic._base_client, "time", clock)
    return clock
