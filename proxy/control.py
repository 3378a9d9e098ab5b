"""The proxy service's control protocol: one JSON object a line over a private Unix socket.

Requests: ``{"op": "ping"}``, ``{"op": "register", ...run...}``, ``{"op": "unregister",
"run_id": ...}``. Replies: ``{"ok": true, ...}`` or ``{"ok": false, "error": message}``.
The client side is here, with no mitmproxy import, so the warm path of ``coatcheck run`` stays
fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import ProxyUnavailable, RegistrationRefused
from core.unixline import Unreachable, exchange
from core.wire import MAX_LINE


def call(path: Path, request: dict[str, Any], *, timeout: float = 10.0) -> dict[str, Any]:
    """Send one request and return the reply; raise on an unreachable or refusing service."""
    try:
        buf = exchange(path, json.dumps(request).encode() + b"\n", timeout=timeout,
                       max_line=MAX_LINE)  # fmt: skip
    except Unreachable as exc:
        raise ProxyUnavailable(
            f"no proxy service answers at {path} ({exc}); start one with "
            "`coatcheck proxy`, or let `coatcheck run` start its own"
        ) from None
    except TimeoutError:
        raise ProxyUnavailable(f"the proxy service at {path} did not answer in time") from None
    try:
        reply = json.loads(buf)
    except ValueError:
        raise ProxyUnavailable(f"the proxy service at {path} sent a garbled reply") from None
    if not reply.get("ok"):
        raise RegistrationRefused(str(reply.get("error", "refused")))
    return dict(reply)


def ping(path: Path, *, timeout: float = 2.0) -> dict[str, Any] | None:
    """The service's ping reply, or None when none runs there."""
    if not path.exists():
        return None
    try:
        return call(path, {"op": "ping"}, timeout=timeout)
    except (ProxyUnavailable, RegistrationRefused):
        return None
