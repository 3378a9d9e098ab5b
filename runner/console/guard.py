"""Who may use the console, and the checks on every request (pure but for the session table).

A request is authenticated by ``Authorization: Bearer <admin token>`` (scripts) or by the
session cookie (browsers); a session ends when the admin token it signed in with is replaced.
A bearer header that does not match fails: there is no fallback to the cookie. A
state-changing request is refused when the browser says it comes from another site
(``Sec-Fetch-Site``) or another origin (``Origin``), and, for a cookie session, without the
session's CSRF token. Every console response carries ``SECURITY_HEADERS``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

from runner.console.sessions import COOKIE, Session, Sessions
from runner.serve import tokens

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: under no-referrer Chromium sends `Origin: null` on its own
    # form posts, which the cross-site check must refuse. Other sites still get no referrer.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
_SAME: Final = frozenset({"same-origin", "none"})


@dataclass(frozen=True)
class Who:
    via: Literal["bearer", "cookie"]
    session_id: str | None = None
    session: Session | None = None


def cross_site(headers: Mapping[str, str]) -> str | None:
    """Why a state-changing request looks cross-site, or None. Browsers send these headers;
    scripts need not (they then authenticate with the bearer token or the CSRF token)."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() not in _SAME:
        return f"refused: a {fetch_site} request (Sec-Fetch-Site); act from the console itself"
    origin = headers.get("origin")
    if origin is None:
        return None
    host = headers.get("host", "")
    if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
        return "refused: the request came from another origin; act from the console itself"
    return None


class Guard:
    def __init__(self, sessions: Sessions, admin_token_hash: Callable[[], str | None]) -> None:
        self.sessions = sessions
        self._hash = admin_token_hash

    def token_hash(self) -> str | None:
        return self._hash()

    def token_ok(self, token: str | None) -> bool:
        return tokens.token_matches(token, self._hash())

    def who(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> Who | None:
        """The caller, or None when it is not authenticated."""
        if "authorization" in headers:
            token = tokens.bearer(headers.get("authorization"))
            return Who("bearer") if self.token_ok(token) else None
        session_id = cookies.get(COOKIE)
        session = self.sessions.get(session_id)
        current = self._hash()
        if session is None or current is None:
            return None
        if not hmac.compare_digest(session.token_hash.encode(), current.encode()):
            self.sessions.drop(session_id)  # signed in with a token since replaced
            return None
        return Who("cookie", session_id, session)

    def refusal(self, who: Who, headers: Mapping[str, str], csrf: str | None) -> str | None:
        """Why a state-changing request of ``who`` is refused (403), or None."""
        if (cross := cross_site(headers)) is not None:
            return cross
        if who.via == "bearer":
            return None
        if who.session is None or not who.session.csrf_ok(csrf):
            return "refused: missing or wrong CSRF token; reload the page and try again"
        return None
