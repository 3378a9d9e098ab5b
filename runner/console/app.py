"""``console_routes``: the web console, as Starlette routes for the public app of
``coatcheck serve`` to add to its own.

    routes = console_routes(history_path=history_path(home), home=home, actions=actions,
                            admin_token_hash=lambda: admin_token_hash(home))
    public_app(actions, extra_routes=routes)

Every route carries its own access rules and security headers (``context.page``/``api``), so
no middleware is needed. The console reads the history through a connection of its own (held
for the life of the process; ``Console.history.close()`` ends it) and acts only through
``actions``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute

from runner.console import api, confirm, live, login, pages, static
from runner.console.context import Console
from runner.console.guard import Guard
from runner.console.ratelimit import Failures
from runner.console.sessions import Sessions
from runner.history.db import utc_now
from runner.history.store import History


def build(
    *,
    history: History,
    home: Path,
    actions: Any,
    admin_token_hash: Callable[[], str | None],
    clock: Callable[[], datetime] = utc_now,
) -> Console:
    guard = Guard(Sessions(clock=clock), admin_token_hash)
    return Console(history=history, home=home, actions=actions, guard=guard,
                   failures=Failures(clock=clock), clock=clock)  # fmt: skip


def routes_of(console: Console, *, poll_s: float = 0.5) -> list[BaseRoute]:
    return [
        *login.routes(console),
        *static.routes(),
        *api.routes(console),
        *live.routes(console, poll_s=poll_s),
        *confirm.routes(console),
        *pages.routes(console),
    ]


def console_routes(
    *,
    history_path: Path,
    home: Path,
    actions: Any,
    admin_token_hash: Callable[[], str | None],
    clock: Callable[[], datetime] = utc_now,
) -> list[BaseRoute]:
    """The console's routes, over its own connection to the history at ``history_path``."""
    history = History.open(history_path, clock=clock)
    console = build(history=history, home=home, actions=actions,
                    admin_token_hash=admin_token_hash, clock=clock)  # fmt: skip
    return routes_of(console)
