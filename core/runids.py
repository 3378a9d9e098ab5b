"""Run ids: "r-" and 16 hex digits, the same in run directories, audit lines and the history."""

from __future__ import annotations

import re
import secrets
from typing import Final

RUN_ID: Final = re.compile(r"r-[0-9a-f]{16}")


def new_run_id() -> str:
    return "r-" + secrets.token_hex(8)
