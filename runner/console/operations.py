"""The four actions on a deployment, as the console and its JSON API ask them of ``Actions``
(the same object the CLI's control socket uses): what each is called and how each is done."""

from __future__ import annotations

from typing import Any, Final

from core.errors import CoatcheckError
from runner.history.errors import DeploymentNotFound

VERBS: Final = {"pause": "Pause", "unpause": "Unpause", "run": "Run now", "archive": "Archive"}
NOTE_CHARS: Final = 500


def perform(actions: Any, name: str, action: str, note: str | None) -> dict[str, Any]:
    """Do ``action`` (one of ``VERBS``); raises ``CoatcheckError`` with the reason."""
    if action == "pause":
        return dict(actions.pause(name, (note or "").strip()[:NOTE_CHARS] or None))
    if action == "unpause":
        return dict(actions.unpause(name))
    if action == "run":
        return dict(actions.run_now(name))
    if action == "archive":
        return dict(actions.archive(name))
    raise CoatcheckError(f"no action {action!r}; use one of {', '.join(VERBS)}")


def status_of(exc: CoatcheckError) -> int:
    return 404 if isinstance(exc, DeploymentNotFound) else 409


def done(name: str, action: str, result: dict[str, Any]) -> str:
    """The flash line after an action."""
    if action == "run":
        return f"{name}: started run {result.get('run_id')}"
    return f"{name}: {result.get('status', action)}"
