"""``coatcheck proxy`` offers the service's limits with the service's own defaults."""

from __future__ import annotations

from proxy import limits
from runner.cli_proxy import LIMITS


def test_limit_defaults_match_the_service():
    defaults = {flag: default for flag, _kind, default, _m, _h in LIMITS}
    assert defaults == {
        "--max-connections-per-run": limits.MAX_CONNECTIONS_PER_RUN,
        "--idle-timeout": limits.IDLE_TIMEOUT_S,
        "--body-timeout": limits.BODY_TIMEOUT_S,
        "--buffer-per-run": limits.RUN_BUFFER_MIB,
        "--buffer-total": limits.TOTAL_BUFFER_MIB,
    }
