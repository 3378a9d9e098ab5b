"""Who hears about a deployment's runs: its ``[notify]`` table, one ``Notifier`` per deployment
and config version, made the first time something is worth telling. Sent from the host, never
from a sandbox; the webhook URL is a vaulted secret read at send time; never blocking.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from core.errors import CoatcheckError
from runner.history.store import History
from runner.notify import Notifier
from runner.serve.book import Book


class Notices:
    def __init__(
        self, history: History, book: Book, *, base_url: str, resolve_url: Callable[[str], str],
        log: Any = None,
    ) -> None:  # fmt: skip
        self.history = history
        self.book = book
        self.base_url = base_url
        self._resolve_url = resolve_url
        self._log = log
        self._lock = threading.Lock()
        self._by_deployment: dict[str, tuple[int, Notifier]] = {}

    def __call__(self, kind: str, *, run_id: str, deployment: str, status: str,
                 reason: str = "") -> None:  # fmt: skip
        notifier = self._notifier(deployment)
        if notifier is not None:
            notifier.notify(kind, run_id=run_id, deployment=deployment, status=status,
                            reason=reason)  # fmt: skip

    def _notifier(self, name: str) -> Notifier | None:
        dep = self.history.deployments.find(name)
        if dep is None:
            return None
        try:
            spec = self.book.job(dep).notify
        except CoatcheckError:
            return None
        if spec is None:
            return None
        with self._lock:
            known = self._by_deployment.get(name)
            if known is not None and known[0] == dep.config_version:
                return known[1]
            notifier = Notifier(
                base_url=self.base_url, url_secret=spec.webhook_secret,
                resolve_url=self._resolve_url if spec.webhook_secret else None,
                command=spec.command, kinds=frozenset(spec.on), log=self._log,
            )  # fmt: skip
            self._by_deployment[name] = (dep.config_version, notifier)
        if known is not None:
            known[1].close(timeout=0)
        return notifier

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            notifiers = [n for _, n in self._by_deployment.values()]
            self._by_deployment.clear()
        for n in notifiers:
            n.close(timeout=timeout)
