"""The proxy service's own log lines (mostly mitmproxy's), scrubbed before they are written,
and rate-limited.

mitmproxy's messages may quote what an upstream sent; they go to the service's stderr, which is
a runner's terminal or a CI log. Real values become their placeholders first. A flood (a run
exhausting file descriptors makes every accept fail) must not fill that log: an ``OSError``
(or a cancelled connection's task) is one line, not a traceback, and at most
:data:`~proxy.limits.LOG_LINES` lines go out per :data:`~proxy.limits.LOG_INTERVAL_S`; the
next line that does says how many were held back.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable

from proxy.engine import Engine
from proxy.limits import LineBudget
from proxy.scrub import scrub_text


class ScrubbingFormatter(logging.Formatter):
    """mitmproxy's log lines may quote what an upstream sent: real values become placeholders
    before a line reaches stderr (a runner's terminal, a CI log)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__("coatcheck proxy: %(levelname)s %(name)s: %(message)s")
        self.engine = engine

    def format(self, record: logging.LogRecord) -> str:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (OSError, asyncio.CancelledError)):  # one line each, not a traceback
            one_line = f"{record.getMessage()} ({type(exc).__name__}: {exc})"
            plain = {"msg": one_line, "args": None, "exc_info": None, "exc_text": None}
            record = logging.makeLogRecord({**record.__dict__, **plain})
        text = super().format(record)
        try:
            pairs = self.engine.all_scrub_pairs()
        except Exception:  # noqa: BLE001 - a log line must never take the proxy down
            return "coatcheck proxy: a log line was withheld (its values could not be checked)"
        return scrub_text(text, pairs) if pairs else text


class RateLimit(logging.Filter):
    """Lets at most ``budget.limit`` records through per ``budget.interval`` seconds."""

    def __init__(
        self, budget: LineBudget | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.budget, self.clock = budget or LineBudget(), clock

    def filter(self, record: logging.LogRecord) -> bool:
        ok, held_back = self.budget.admit(self.clock())
        if not ok:
            return False
        notes = [f"{held_back} earlier log lines were held back"] if held_back else []
        if self.budget.last_in_window:
            notes.append(f"more in the next {self.budget.interval:g}s are held back")
        if notes:
            record.msg, record.args = f"{record.getMessage()} [{'; '.join(notes)}]", None
        return True


def install_log_scrubber(engine: Engine) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ScrubbingFormatter(engine))
    handler.addFilter(RateLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
