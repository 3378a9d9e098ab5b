"""``coatcheck run`` end to end with a secret overdue for rotation: the real command line, the
real Docker engine and proxy. The run succeeds and warns on stderr, in run.json and in the
history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.sandbox.helpers import Home, coatcheck
from vault.keystore import FileKeystore
from vault.secret import SecretValue
from vault.store import Vault

pytestmark = pytest.mark.docker


def test_a_run_with_an_overdue_secret_warns_and_records_it(tmp_path: Path) -> None:
    home = Home(tmp_path)
    then = datetime.now(UTC) - timedelta(days=45, hours=1)
    vault = Vault.open(home.path, keystore=FileKeystore(home.root / "vault.key"),
                       clock=lambda: then)  # fmt: skip
    vault.set("OLD", SecretValue("sk-overdue-0123456789"), ["api.coatcheck.test"],
              rotate_after=30 * 86400)  # fmt: skip
    r = coatcheck(home, "run", "--secret", "OLD", "--", "sh", "-c", 'test -n "$OLD"')
    assert r.code == 0, str(r)
    warning = "coatcheck: warning: secret OLD was last rotated 45 days ago (rotate after 30d)"
    assert warning in r.stderr
    assert "coatcheck vault set OLD --domains api.coatcheck.test" in r.stderr
    [run_dir] = (home.path / "runs").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "succeeded" and len(record["warnings"]) == 1
    shown = json.loads(coatcheck(home, "runs", "show", run_dir.name, "--json").stdout)
    assert shown["warnings"] == record["warnings"]
    listed = coatcheck(home, "vault", "list")
    assert "OVERDUE" in listed.stdout and "45d" in listed.stdout
