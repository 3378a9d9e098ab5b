"""``coatcheck proxy --workers`` from outside: the default count on a big machine."""

from __future__ import annotations

import pytest

from core.errors import UsageError
from proxy import workers


def test_the_default_worker_count_never_exceeds_what_workers_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda _pid: set(range(128)))
    assert workers.count_for([]) <= workers.MAX_WORKERS


def test_an_explicit_count_above_the_maximum_is_refused_with_the_range() -> None:
    with pytest.raises(UsageError, match="from 1 to 64"):
        workers.count_of(["--workers", "65"])
