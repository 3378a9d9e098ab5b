"""What a running ``coatcheck serve`` can be asked to do, from the CLI (over the control socket)
and from the HTTP triggers (``Firing``): deploy, pause, unpause, archive, run now, a new API
token, a new GitHub webhook secret, and firing a deployment.

Run now (CLI) is allowed when active or paused and refused when archived; API and webhook
triggers are refused on a paused deployment unless ``allow_when_paused``. Every trigger obeys
the overlap policy and the daily cap; a refusal is recorded in the history as a skip.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from core.errors import UsageError
from runner.history.db import utc_now
from runner.history.deployments import Deployment
from runner.history.errors import DeploymentNotFound
from runner.history.store import History
from runner.schedule.cron import slots_after
from runner.schedule.policy import over_daily_cap, retry_after
from runner.serve.book import Book, daily_window, max_runtime, parse_deployment_job
from runner.serve.firing import Fired, Target, Trigger
from runner.serve.supervisor import Supervisor
from runner.serve.tokens import new_token, token_hash
from runner.serve.webhook_secret import new_webhook_secret

WEBHOOK_DOMAIN: Final = "webhook.coatcheck.invalid"  # never resolves: the proxy can't send it


def webhook_secret_name(deployment: str) -> str:
    """The vault name of a deployment's GitHub webhook secret."""
    stem = re.sub(r"[^A-Z0-9]", "_", deployment.upper())[:40]
    return f"COATCHECK_WEBHOOK_{stem}_{hashlib.sha256(deployment.encode()).hexdigest()[:6]}"


class Actions:
    def __init__(
        self,
        history: History,
        book: Book,
        supervisor: Supervisor,
        *,
        check_secrets: Callable[[Any, Path], None],
        reveal: Callable[[str], str | None],
        store_secret: Callable[[str, str, str], None],
        poke: Callable[[], None],
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.history = history
        self.book = book
        self.supervisor = supervisor
        self._check_secrets = check_secrets
        self._reveal = reveal
        self._store_secret = store_secret
        self._poke = poke
        self.clock = clock

    # -- the CLI's operations ------------------------------------------------------------
    def deploy(self, job_toml: str, job_base: str, source: str) -> dict[str, Any]:
        job = parse_deployment_job(job_toml, base=Path(job_base), source=source)
        self._check_secrets(job, Path(source))
        old = self.history.deployments.find(job.name)
        sched = job.schedule
        dep = self.history.deployments.upsert(
            job.name, job_toml=job_toml, job_base=job_base,
            cron=sched.cron if sched else None, timezone=sched.timezone if sched else "UTC",
        )  # fmt: skip
        self._poke()
        return {"deployment": job.name, "created": old is None,
                "config_version": dep.config_version, "status": dep.status,
                "next": [t.isoformat() for t in self.next_fires(dep, 5)]}  # fmt: skip

    def pause(self, name: str, note: str | None) -> dict[str, Any]:
        dep = self._live(name, "paused")
        dep = self.history.deployments.pause(name, "manual", note)
        return {"deployment": name, "status": dep.status, "note": note}

    def unpause(self, name: str) -> dict[str, Any]:
        self._live(name, "unpaused")
        dep = self.history.deployments.unpause(name)
        self._poke()
        return {"deployment": name, "status": dep.status,
                "next": [t.isoformat() for t in self.next_fires(dep, 1)]}  # fmt: skip

    def archive(self, name: str) -> dict[str, Any]:
        dep = self.history.deployments.archive(self._get(name).name)
        self._poke()
        return {"deployment": name, "status": dep.status}

    def run_now(self, name: str) -> dict[str, Any]:
        fired = self._fire(self._get(name), trigger="manual", actor="cli", key=None, body=None)
        if fired.refused is not None:
            raise UsageError(f"{name}: not started ({_refusal(fired)})")
        return {"deployment": name, "run_id": fired.run_id}

    def token(self, name: str) -> dict[str, Any]:
        self._live(name, "given a token")
        token = new_token()
        self.history.deployments.set_token_hash(name, token_hash(token))
        return {"deployment": name, "token": token}

    def webhook(self, name: str) -> dict[str, Any]:
        self._live(name, "given a webhook")
        secret, vault_name = new_webhook_secret(), webhook_secret_name(name)
        self._store_secret(vault_name, secret, WEBHOOK_DOMAIN)
        self.history.deployments.set_webhook_secret(name, vault_name)
        return {"deployment": name, "secret": secret, "vault_name": vault_name}

    def next_fires(self, dep: Deployment, n: int) -> list[datetime]:
        sched = self.book.job(dep).schedule
        if sched is None or dep.status != "active":
            return []
        after = max(self.clock(), dep.last_slot or dep.armed_at)
        return list(slots_after(sched.compiled, sched.zone, after, n))

    # -- Firing (the HTTP triggers) -------------------------------------------------------
    def lookup(self, name: str) -> Target | None:
        dep = self.history.deployments.find(name)
        if dep is None:
            return None
        job = self.book.job(dep)
        secret = self._reveal(dep.webhook_secret) if dep.webhook_secret else None
        return Target(
            name=dep.name, status=dep.status, token_hash=dep.token_hash,
            webhook_secret=secret.encode() if secret else None,
            github=job.trigger.github if job.trigger else None,
            allow_when_paused=bool(job.schedule and job.schedule.allow_when_paused),
        )  # fmt: skip

    def fire(self, name: str, *, trigger: Trigger, actor: str, key: str | None,
             body: bytes | None) -> Fired:  # fmt: skip
        return self._fire(self._get(name), trigger=trigger, actor=actor, key=key, body=body)

    def _fire(self, dep: Deployment, *, trigger: str, actor: str, key: str | None,
              body: bytes | None) -> Fired:  # fmt: skip
        if dep.status == "archived":
            return Fired(None, False, "archived")
        job = self.book.job(dep)
        sched = job.schedule
        if (
            dep.status == "paused"
            and trigger != "manual"
            and not (sched and sched.allow_when_paused)
        ):
            return Fired(None, False, "paused")
        now = self.clock()
        cap = sched.daily_cap if sched else None
        starts = self.history.runs.start_times(dep.name, now - daily_window())
        if over_daily_cap(starts, now, cap):
            skipped = self.history.runs.record_skip(dep.name, "daily_cap", trigger=trigger)  # type: ignore[arg-type]
            return Fired(skipped, True, "daily_cap", float(retry_after(starts, now, cap)))
        run_id, created = self.history.runs.create_triggered(
            dep.name, trigger,  # type: ignore[arg-type]
            actor=actor[:100], config_version=dep.config_version,
            idempotency_key=key if trigger == "api" else None,
            delivery_id=key if trigger == "webhook" else None,
        )  # fmt: skip
        if not created:
            return Fired(run_id, False)
        action = self.supervisor.submit(self.book.launch(dep, run_id, body), _overlap(job))
        return Fired(run_id, True, "overlap" if action == "skip" else None)

    def _get(self, name: str) -> Deployment:
        dep = self.history.deployments.find(name)
        if dep is None:
            raise DeploymentNotFound(
                f"no deployment named {name!r}; `coatcheck deployments list` shows them, "
                "`coatcheck deploy JOBFILE` creates one"
            )
        return dep

    def _live(self, name: str, verb: str) -> Deployment:
        dep = self._get(name)
        if dep.status == "archived":
            raise UsageError(f"{name} is archived and can't be {verb}; deploy it under a new name")
        return dep


def _overlap(job: Any) -> str:
    return job.schedule.overlap if job.schedule else "skip"


def _refusal(fired: Fired) -> str:
    return {
        "archived": "it is archived",
        "paused": "it is paused",
        "overlap": "a run is still running and overlap is skip",
        "daily_cap": f"over its daily cap; try again in {int(fired.retry_after or 0)} s",
    }.get(fired.refused or "", str(fired.refused))


__all__ = ["Actions", "max_runtime", "webhook_secret_name"]
