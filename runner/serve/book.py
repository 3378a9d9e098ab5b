"""Deployments as the service runs them: each one's job file parsed once per config version.

A deployment keeps the text of its job file as it was deployed and the directory its relative
paths start from (``coatcheck deploy`` sends both); an edit of the file on disk changes nothing
until the next ``coatcheck deploy``.
"""

from __future__ import annotations

import threading
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Final

from runner.history.deployments import Deployment
from runner.jobfile import Job, parse_job
from runner.schedule.fields import Schedule
from runner.serve.launcher import Launch

DEFAULT_MAX_RUNTIME: Final = 3600.0  # scheduler.md: every run has one; 1 hour by default


def parse_deployment_job(toml: str, *, base: Path, source: str) -> Job:
    """The job of a deployment; ``InvalidJobFile`` (naming ``source``) when it is not one."""
    from core.errors import InvalidJobFile

    try:
        data = tomllib.loads(toml)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidJobFile(source, (("", f"not valid TOML: {exc}"),)) from None
    return parse_job(data, source=Path(source), base=base)


class Book:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, tuple[int, Job]] = {}

    def job(self, dep: Deployment) -> Job:
        with self._lock:
            cached = self._jobs.get(dep.name)
        if cached is not None and cached[0] == dep.config_version:
            return cached[1]
        job = parse_deployment_job(dep.job_toml, base=Path(dep.job_base),
                                   source=f"{dep.job_base}/{dep.name}.toml")  # fmt: skip
        with self._lock:
            self._jobs[dep.name] = (dep.config_version, job)
        return job

    def launch(self, dep: Deployment, run_id: str, body: bytes | None = None) -> Launch:
        job = self.job(dep)
        return Launch(
            deployment=dep.name,
            run_id=run_id,
            config_version=dep.config_version,
            job_toml=dep.job_toml,
            job_base=Path(dep.job_base),
            timeout=max_runtime(job),
            body=body,
        )


def schedule_of(job: Job) -> Schedule | None:
    return job.schedule


def max_runtime(job: Job) -> float:
    """The run's time-out: the schedule's ``max_runtime`` (1 hour by default), or the job's
    own ``timeout`` when that is shorter."""
    limit = job.schedule.max_runtime if job.schedule else DEFAULT_MAX_RUNTIME
    return min(limit, job.timeout) if job.timeout else limit


def daily_window() -> timedelta:
    return timedelta(hours=24)
