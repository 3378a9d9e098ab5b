"""The job's signal state and limits are those of a plain container.

Attack/bug: the Python init ignored SIGPIPE and SIGXFSZ and passed that on to the job
(``SigIgn: 0000000001001000``), so ``yes | head -1`` printed "Broken pipe" and pipefail scripts
behaved differently from plain ``docker run``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.helpers import IMAGE, TEST_LABEL, Home, coatcheck, docker_client

pytestmark = pytest.mark.docker

SIGNAL_STATE = "grep -E '^Sig(Blk|Ign)' /proc/self/status; ulimit -a"
PIPE = 'yes | head -1; echo "yes_status=${PIPESTATUS[0]}"'


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with docker_client() as c:
        yield c


def plain(client: Any, *command: str) -> str:
    """The same command in a plain container of the same image (no coatcheck init)."""
    out = client.containers.run(
        IMAGE, list(command), entrypoint=[], network_mode="none", remove=True,
        labels={TEST_LABEL: "1"}, stdout=True, stderr=True,
    )  # fmt: skip
    return out.decode()


def test_job_signal_dispositions_and_mask_match_a_plain_container(client: Any, tmp_path: Path):
    # bash execs the last command of -c, so grep reports the state the job itself got.
    ours = coatcheck(Home(tmp_path), "run", "--", "bash", "-c", SIGNAL_STATE)
    assert ours.code == 0, ours
    theirs = plain(client, "bash", "-c", SIGNAL_STATE)
    assert "SigIgn:\t0000000000000000" in ours.stdout, ours.stdout
    assert ours.stdout.splitlines()[:2] == theirs.splitlines()[:2]


def test_job_resource_limits_match_a_plain_container_where_coatcheck_sets_none(
    client: Any, tmp_path: Path
):
    ours = coatcheck(Home(tmp_path), "run", "--", "bash", "-c", "ulimit -a")
    theirs = plain(client, "bash", "-c", "ulimit -a")
    # coatcheck limits processes with the pids cgroup, not RLIMIT_NPROC: compare the rest.
    keep = [ln for ln in ours.stdout.splitlines() if "max user processes" not in ln]
    assert keep == [ln for ln in theirs.splitlines() if "max user processes" not in ln]


def test_broken_pipe_ends_the_writer_by_sigpipe_as_in_a_plain_container(
    client: Any, tmp_path: Path
):
    ours = coatcheck(Home(tmp_path), "run", "--", "bash", "-c", PIPE)
    assert ours.code == 0, ours
    assert "Broken pipe" not in ours.stderr
    assert "yes_status=141" in ours.stdout  # 128 + SIGPIPE, not an EPIPE error exit
    assert "yes_status=141" in plain(client, "bash", "-c", PIPE)
