"""The service's stderr log lines never carry a real value."""

from __future__ import annotations

import logging

from proxy.engine import DictValues, Engine
from proxy.logscrub import ScrubbingFormatter
from proxy.runs import parse_run

VALUE = "sk-log-canary-0123456789"
PH = "ccph_" + "L" * 26


def test_a_log_line_quoting_a_value_shows_the_placeholder():
    engine = Engine(DictValues({"T": VALUE}))
    engine.register(parse_run({
        "run_id": "r-logs1",
        "secrets": [{"name": "T", "placeholder": PH, "domains": ["api.example.test"]}],
    }))  # fmt: skip
    record = logging.LogRecord(
        "mitmproxy.proxy.server", logging.WARNING, __file__, 1,
        "Cannot parse HTTP response: Invalid header line: b'X %s'", (VALUE,), None,
    )  # fmt: skip
    line = ScrubbingFormatter(engine).format(record)
    assert VALUE not in line and PH in line
