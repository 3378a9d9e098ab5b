"""What the public HTTP API needs from the scheduler: a deployment's triggers, and firing (pure).

`runner.serve.public` answers HTTP with these types only; the scheduler implements `Firing`
(reading the database and the vault) and the tests use an in-memory fake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from runner.serve.github import Filters

Status = Literal["active", "paused", "archived"]
Trigger = Literal["api", "webhook"]
Refusal = Literal["overlap", "daily_cap", "min_interval", "paused", "archived"]


@dataclass(frozen=True)
class Target:
    """One deployment as its HTTP triggers see it.

    ``token_hash`` is the SHA-256 of the API token (None: no token, or revoked);
    ``webhook_secret`` is already read from the vault (None: no GitHub webhook set up);
    ``github`` is the ``[trigger.github]`` table (None: no filters, so no delivery matches)."""

    name: str
    status: Status
    token_hash: str | None = field(default=None, repr=False)
    webhook_secret: bytes | None = field(default=None, repr=False)
    github: Filters | None = None
    allow_when_paused: bool = False


@dataclass(frozen=True)
class Fired:
    """The answer of `Firing.fire`.

    ``created`` is False when an Idempotency-Key or a GitHub delivery id was seen before and
    ``run_id`` is that earlier run. ``refused`` says why no run was queued; for ``overlap``
    ``run_id`` is the id of the row recorded as skipped (or None), and ``retry_after`` is in
    seconds for ``daily_cap`` and ``min_interval``."""

    run_id: str | None
    created: bool = True
    refused: Refusal | None = None
    retry_after: float | None = None


class Firing(Protocol):
    """The scheduler, as the HTTP API uses it. Both calls are synchronous and quick: `fire`
    persists the run and schedules it; the run itself happens later, elsewhere."""

    def lookup(self, name: str) -> Target | None:
        """The deployment called ``name``, or None when there is none."""
        ...

    def fire(
        self, name: str, *, trigger: Trigger, actor: str, key: str | None, body: bytes | None
    ) -> Fired:
        """Queue a run of ``name``. ``key`` is the Idempotency-Key (api) or X-GitHub-Delivery
        (webhook); ``body`` is untrusted input handed to the job in a file, never config."""
        ...
