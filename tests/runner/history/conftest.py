"""A history on a temp file with a clock the test moves by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.history import History
from tests.runner.history.helpers import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "history.sqlite3"


@pytest.fixture
def history(db_path: Path, clock: Clock) -> Iterator[History]:
    with History.open(db_path, clock=clock) as h:
        yield h
