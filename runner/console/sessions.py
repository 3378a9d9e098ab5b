"""Console sessions: server-side, in memory, 12 hours each; one CSRF token per session.

The cookie holds a random id (256 bits); the table is keyed by its SHA-256, so the ids
themselves are kept nowhere. A restart of the service ends every session. Flash messages (one
line after an action) ride on the session, never in a URL.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from runner.history.db import utc_now

COOKIE: Final = "coatcheck_session"
LIFETIME: Final = timedelta(hours=12)
MAX_SESSIONS: Final = 1000  # the oldest go first past this


@dataclass
class Session:
    csrf: str
    expires: datetime
    token_hash: str  # of the admin token it signed in with: a new token ends the session
    flash: list[str] = field(default_factory=list)

    def csrf_ok(self, given: str | None) -> bool:
        if not given:
            return False
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.csrf.encode())

    def pop_flash(self) -> list[str]:
        out, self.flash = self.flash, []
        return out


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


class Sessions:
    def __init__(self, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._table: dict[str, Session] = {}

    def create(self, token_hash: str) -> tuple[str, Session]:
        """A new session: its cookie value (say it once, in Set-Cookie) and the session."""
        session_id = secrets.token_urlsafe(32)
        expires = self._clock() + LIFETIME
        session = Session(secrets.token_urlsafe(32), expires, token_hash)
        with self._lock:
            self._expire()
            while len(self._table) >= MAX_SESSIONS:
                del self._table[next(iter(self._table))]
            self._table[_key(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._table.get(_key(session_id))
            if session is not None and session.expires <= self._clock():
                del self._table[_key(session_id)]
                return None
            return session

    def drop(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._table.pop(_key(session_id), None)

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, s in self._table.items() if s.expires <= now]:
            del self._table[key]
