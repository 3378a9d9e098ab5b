"""A run that uses a secret overdue for rotation (``vault set --rotate-after``) warns: on
stderr, in run.json, in the run history (``runs show``, ``runs list --json``) and as a
``warning`` notification. The sandbox is a fake here (no Docker)."""

from __future__ import annotations

import functools
import io
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest
from click.testing import CliRunner

from core import logs
from core.home import coatcheck_home
from runner import recorded
from runner.cli_run import run_command
from runner.cli_runs import runs_group
from runner.history import History, history_path
from runner.history.migrations import LATEST
from runner.notify import DEFAULT_KINDS, Notifier, PostResult
from runner.recorded import run_recorded
from runner.run import RunRequest
from vault.keystore import FileKeystore
from vault.secret import SecretValue
from vault.store import Vault

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DAY = 86400


def fake_run(req: RunRequest, *, home: Path, run_id: str, stdout: IO[bytes],
             stderr: IO[bytes], log: IO[str] | None) -> int:  # fmt: skip
    stdout.write(b"ran\n")
    return 0


@pytest.fixture
def home() -> Path:
    return Path(os.environ["COATCHECK_HOME"])


def store(home: Path, name: str, *, set_at: datetime, rotate_after: int | None) -> None:
    keystore = FileKeystore(Path(os.environ["COATCHECK_VAULT_KEY_FILE"]))
    vault = Vault.open(home, keystore=keystore, clock=lambda: set_at)
    vault.set(name, SecretValue("sk-rotation-0123456789"), ["api.example.com"],
              rotate_after=rotate_after)  # fmt: skip


def recorded_run(home: Path, *secrets: str, now: datetime = NOW) -> tuple[Any, str]:
    err = io.BytesIO()
    done = run_recorded(RunRequest(command=("true",), secrets=secrets), home=home, run=fake_run,
                        stdout=io.BytesIO(), stderr=err, clock=lambda: now)  # fmt: skip
    return done, err.getvalue().decode()


def test_an_overdue_secret_warns_on_stderr_and_in_run_json(home: Path) -> None:
    store(home, "OLD", set_at=NOW - timedelta(days=45), rotate_after=30 * DAY)
    store(home, "FRESH", set_at=NOW - timedelta(days=2), rotate_after=30 * DAY)
    store(home, "FREE", set_at=NOW - timedelta(days=900), rotate_after=None)
    done, err = recorded_run(home, "FRESH", "OLD", "FREE")
    expected = (
        "secret OLD was last rotated 45 days ago (rotate after 30d): rotate it with "
        "`coatcheck vault set OLD --domains api.example.com` (the new value on stdin)"
    )
    assert done.record.warnings == (expected,)
    assert err == f"coatcheck: warning: {expected}\n"
    on_disk = json.loads(done.run_dir.run_json.read_text())
    assert on_disk["warnings"] == [expected] and on_disk["status"] == "succeeded"
    assert f"coatcheck: warning: {expected}" in done.run_dir.output_log.read_text()


def test_no_overdue_secret_no_warning(home: Path) -> None:
    store(home, "FRESH", set_at=NOW - timedelta(days=29), rotate_after=30 * DAY)
    done, err = recorded_run(home, "FRESH")
    assert done.record.warnings == () and err == ""
    assert json.loads(done.run_dir.run_json.read_text())["warnings"] == []


def test_the_clock_decides_when_it_becomes_overdue(home: Path) -> None:
    store(home, "T", set_at=NOW, rotate_after=7 * DAY)
    assert recorded_run(home, "T", now=NOW + timedelta(days=7))[0].record.warnings == ()
    late = recorded_run(home, "T", now=NOW + timedelta(days=8))[0].record.warnings
    assert len(late) == 1 and "8 days ago (rotate after 7d)" in late[0]


def test_a_plain_run_puts_the_warning_in_the_history(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store(home, "OLD", set_at=datetime.now(UTC) - timedelta(days=40), rotate_after=30 * DAY)
    monkeypatch.setattr(recorded, "run_recorded", functools.partial(run_recorded, run=fake_run))
    result = CliRunner().invoke(run_command, ["--secret", "OLD", "--", "true"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "coatcheck: warning: secret OLD was last rotated 40 days ago" in result.stderr
    with History.open(history_path(coatcheck_home())) as h:
        [row] = h.runs.list_runs()
    assert row.status == "succeeded" and row.warnings is not None
    assert len(row.warnings) == 1 and row.warnings[0].startswith("secret OLD was last rotated")
    shown = CliRunner().invoke(runs_group, ["show", row.id]).output
    assert "warning:          secret OLD was last rotated 40 days ago" in shown
    as_json = json.loads(CliRunner().invoke(runs_group, ["show", row.id, "--json"]).output)
    assert as_json["warnings"] == list(row.warnings)
    listed = json.loads(CliRunner().invoke(runs_group, ["list", "--json"]).output)
    assert listed[0]["warnings"] == list(row.warnings)


# -- the history ------------------------------------------------------------------------------
def test_warnings_column_round_trips() -> None:
    with History.open(history_path(coatcheck_home())) as h:
        assert h.db.version() == LATEST == 3
        rid, _ = h.runs.create_triggered(None, "manual", actor="cli")
        assert h.runs.get_run(rid).warnings is None
        assert h.runs.set_warnings(rid, ("one", 'two "quoted"'))
        assert h.runs.get_run(rid).warnings == ("one", 'two "quoted"')
        assert h.runs.set_warnings(rid, ())
        assert h.runs.get_run(rid).warnings is None
        assert not h.runs.set_warnings("r-0000000000000000", ("x",))


# -- notifications ----------------------------------------------------------------------------
def test_warning_is_a_notification_kind_sent_by_default() -> None:
    bodies: list[dict[str, Any]] = []

    def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> PostResult:
        bodies.append(json.loads(body))
        return PostResult(200)

    assert "warning" in DEFAULT_KINDS
    n = Notifier(base_url="https://cc.example", url_secret="HOOK",
                 resolve_url=lambda _n: "https://hooks.coatcheck.test/x", post=post,
                 log=logs.json_logger(io.StringIO()))  # fmt: skip
    assert n.notify("warning", run_id="r-1", deployment="nightly", status="succeeded",
                    reason="secret OLD was last rotated 45 days ago")  # fmt: skip
    assert not n.notify("warning", run_id="r-1", deployment="nightly", status="succeeded")
    assert n.close(10)
    [body] = bodies
    assert "deployment nightly ran with a warning" in body["text"]
    assert "secret OLD was last rotated 45 days ago" in body["text"]
