"""A clock the test moves by hand, and a deployment to hang runs on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from runner.history import History

T0 = datetime(2025, 3, 9, 6, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def deploy(history: History, name: str = "nightly", cron: str = "0 3 * * *") -> None:
    history.deployments.upsert(name, job_toml="command = ['true']\n", job_base="/jobs", cron=cron)
