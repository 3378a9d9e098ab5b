"""``coatcheck check``: validate job files without running them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from core.errors import InvalidJobFile
from core.home import coatcheck_home


def check_file(path: Path, *, home: Path) -> dict[str, Any]:
    """One job file's verdict: ``{"file", "ok", "name", "kind"}`` or ``{"file", "ok",
    "problems": [{"field", "message"}]}``."""
    from runner.jobcheck import check_vault
    from runner.jobfile import load_job

    try:
        job = load_job(path)
        note = check_vault(job, path, home=home, require_key=False)
    except InvalidJobFile as exc:
        problems = [{"field": f, "message": m} for f, m in exc.problems]
        return {"file": str(path), "ok": False, "problems": problems}
    verdict = {"file": str(path), "ok": True, "name": job.name, "kind": job.kind}
    return {**verdict, "note": f"before it runs here: {note}"} if note else verdict


@click.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON array of verdicts on stdout.")
def check_command(files: tuple[Path, ...], as_json: bool) -> None:
    """Validate job FILES without running them (the vault too, for an agent's key: a vaulted
    key must fit the job; one not vaulted yet is only a note, as `coatcheck run` needs it).

    \b
    Prints `ok NAME (command|agent)` per good file; for a bad one, one line per problem
    (`FILE: FIELD: what to fix`) on stderr. Exits 0 when all are good, 2 otherwise.
    """
    home = coatcheck_home()
    verdicts = [check_file(path, home=home) for path in files]
    if as_json:
        click.echo(json.dumps(verdicts, indent=2))
    else:
        for v in verdicts:
            if v["ok"]:
                click.echo(f"ok {v['name']} ({v['kind']})")
                if v.get("note"):
                    click.echo(f"{v['file']}: note: {v['note']}", err=True)
            for p in v.get("problems", ()):
                where = f"{v['file']}: {p['field']}: " if p["field"] else f"{v['file']}: "
                click.echo(where + p["message"], err=True)
    bad = sum(not v["ok"] for v in verdicts)
    if bad:
        if not as_json:
            click.echo(f"coatcheck: {bad} of {len(verdicts)} job files need fixing", err=True)
        raise SystemExit(2)
