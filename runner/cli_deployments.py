"""``coatcheck deployments``: list, show (read the history directly, no service needed), and
pause, unpause, archive, run, token, webhook (asked of the running service)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from core.errors import CoatcheckError
from core.home import coatcheck_home
from runner.history import History, history_path
from runner.history.deployments import Deployment


def _history() -> History | None:
    path = history_path(coatcheck_home())
    return History.open(path) if path.exists() else None


def _ask(op: str, name: str, note: str | None = None) -> dict[str, Any]:
    from runner.serve.launcher import ServePaths
    from runner.serve.wire import Request, call

    return call(ServePaths(coatcheck_home()).control, Request(op, name=name, note=note))


def describe(dep: Deployment, n: int = 5) -> dict[str, Any]:
    """A deployment as `list` and `show` give it: schedule in words, next fire times."""
    from runner.schedule.cron import slots_after
    from runner.serve.book import Book

    out: dict[str, Any] = {
        "name": dep.name, "status": dep.status, "paused_reason": dep.paused_reason,
        "note": dep.note, "cron": dep.cron, "timezone": dep.timezone,
        "config_version": dep.config_version, "created_at": dep.created_at.isoformat(),
        "updated_at": dep.updated_at.isoformat(),
        "last_slot": dep.last_slot.isoformat() if dep.last_slot else None,
        "consecutive_failures": dep.consecutive_failures, "token": dep.token_hash is not None,
        "webhook": dep.webhook_secret is not None, "schedule": None, "next": [],
    }  # fmt: skip
    try:
        sched = Book().job(dep).schedule
    except CoatcheckError as exc:
        out["error"] = exc.message
        return out
    if sched is None:
        return out
    out["schedule"] = sched.compiled.explain()
    if dep.status == "active":
        after = max(datetime.now(UTC), dep.last_slot or dep.armed_at)
        out["next"] = [
            {"utc": t.isoformat(), "local": t.astimezone(sched.zone).isoformat()}
            for t in slots_after(sched.compiled, sched.zone, after, n)
        ]
    return out


@click.group("deployments")
def deployments_group() -> None:
    """Deployments: job files that fire on a schedule, by hand, by API or by webhook."""


@deployments_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
def list_command(as_json: bool) -> None:
    """Every deployment: status, schedule in words, next fire time, last run."""
    history = _history()
    rows: list[dict[str, Any]] = []
    if history is not None:
        with history:
            for dep in history.deployments.list():
                row = describe(dep, 1)
                newest = history.runs.list_runs(dep.name, None, limit=1)
                row["last_run"] = (
                    {"id": newest[0].id, "status": newest[0].status} if newest else None
                )
                rows.append(row)
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no deployments yet; create one with `coatcheck deploy JOBFILE`")
        return
    for r in rows:
        nxt = r["next"][0]["local"] if r["next"] else "-"
        last = f"{r['last_run']['id']} {r['last_run']['status']}" if r["last_run"] else "-"
        status = r["status"] + (f" ({r['paused_reason']})" if r["paused_reason"] else "")
        click.echo(f"{r['name']:<24} {status:<16} {r['schedule'] or 'no schedule':<40} "
                   f"next {nxt}  last {last}")  # fmt: skip
        if r["note"]:
            click.echo(f"{'':<24} note: {r['note']}")


@deployments_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="As a JSON object.")
def show_command(name: str, as_json: bool) -> None:
    """One deployment: its schedule explained and its next five fire times (its zone, UTC)."""
    from runner.history.errors import DeploymentNotFound

    history = _history()
    dep = history.deployments.find(name) if history is not None else None
    if dep is None:
        raise DeploymentNotFound(f"no deployment {name!r}; `coatcheck deployments list`")
    info = describe(dep, 5)
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo(f"{dep.name}: {info['status']}"
               + (f" ({info['paused_reason']}: {info['note'] or ''})" if dep.paused_reason
                  else ""))  # fmt: skip
    if info["cron"]:
        click.echo(f"schedule: {info['cron']} ({info['timezone']}): {info['schedule']}")
    for t in info["next"]:
        click.echo(f"  {t['local']}  =  {t['utc']}")
    click.echo(f"config version {info['config_version']}; API token: "
               f"{'set' if info['token'] else 'none'}; GitHub webhook: "
               f"{'set' if info['webhook'] else 'none'}")  # fmt: skip


@deployments_group.command("pause")
@click.argument("name")
@click.option("--note", default=None, help="Why (shown in listings).")
def pause_command(name: str, note: str | None) -> None:
    """Stop firing NAME (run now still works)."""
    _ask("pause", name, note)
    click.echo(f"{name} paused")


def _simple(op: str, done: str, doc: str) -> None:
    @deployments_group.command(op, help=doc)
    @click.argument("name")
    def command(name: str) -> None:
        reply = _ask(op, name)
        click.echo(f"{name} {done}" + (f"; run {reply['run_id']}" if "run_id" in reply else ""))


_simple("unpause", "unpaused", "Fire NAME again, from now on (missed slots are not run).")
_simple("archive", "archived", "Stop NAME for good: no schedule, token revoked, history kept.")
_simple("run", "started", "Run NAME now (active or paused; obeys its overlap policy).")


@deployments_group.command("token")
@click.argument("name")
def token_command(name: str) -> None:
    """A new API token for NAME, printed once (the old one stops working)."""
    reply = _ask("token", name)
    click.echo(reply["token"])
    click.echo(f"use: curl -X POST -H 'Authorization: Bearer <token>' "
               f"http://HOST:PORT/v1/deployments/{name}/run", err=True)  # fmt: skip


@deployments_group.command("webhook")
@click.argument("name")
def webhook_command(name: str) -> None:
    """A new GitHub webhook secret for NAME, printed once, kept in the vault."""
    reply = _ask("webhook", name)
    click.echo(reply["secret"])
    click.echo(f"GitHub: Payload URL http://HOST:PORT/v1/deployments/{name}/github, content "
               f"type application/json, this secret (vaulted as {reply['vault_name']})",
               err=True)  # fmt: skip
