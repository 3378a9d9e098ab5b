"""The proxy service's own log lines (mostly mitmproxy's), scrubbed before they are written.

mitmproxy's messages may quote what an upstream sent; they go to the service's stderr, which is
a runner's terminal or a CI log. Real values become their placeholders first.
"""

from __future__ import annotations

import logging
import sys

from proxy.engine import Engine
from proxy.scrub import scrub_text


class ScrubbingFormatter(logging.Formatter):
    """mitmproxy's log lines may quote what an upstream sent: real values become placeholders
    before a line reaches stderr (a runner's terminal, a CI log)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__("coatcheck proxy: %(levelname)s %(name)s: %(message)s")
        self.engine = engine

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        try:
            pairs = self.engine.all_scrub_pairs()
        except Exception:  # noqa: BLE001 - a log line must never take the proxy down
            return "coatcheck proxy: a log line was withheld (its values could not be checked)"
        return scrub_text(text, pairs) if pairs else text


def install_log_scrubber(engine: Engine) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ScrubbingFormatter(engine))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
