"""security.md: "The sandbox runs with least privilege": non-root, read-only root file system,
all capabilities dropped, no new privileges, pid, memory and CPU limits.

One sandbox reports what it can do from the inside while the host inspects its container
through the Docker API (found by its ``org.coatcheck.*`` labels); each test asserts one claim.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import pytest

from tests.sandbox.helpers import (
    OWNER_LABEL,
    RELEASE_FILE,
    RUN_LABEL,
    Home,
    Result,
    inspected_run,
    probe_command,
)

pytestmark = pytest.mark.docker

SANDBOX_UID = 10001
READ_ONLY = ("/etc/x", "/usr/x", "/x", "/opt/coatcheck/x", "/run/coatcheck/x")
WRITABLE = ("/tmp/x", "/work/x", "/home/sandbox/x")
NO_CAPS = "0000000000000000"


@dataclass
class Privileges:
    home: Home
    result: Result
    probe: dict[str, Any]
    inspect: dict[str, Any]

    @property
    def host_config(self) -> dict[str, Any]:
        return dict(self.inspect["HostConfig"])


@pytest.fixture(scope="module")
def priv(tmp_path_factory: pytest.TempPathFactory, docker_api: Any) -> Privileges:
    home = Home(tmp_path_factory.mktemp("privileges"))
    arg = {"write": [*READ_ONLY, *WRITABLE], "release": RELEASE_FILE}
    inspect, result = inspected_run(home, docker_api, "--", *probe_command("privileges", arg))
    return Privileges(home, result, result.probe(), inspect)


def test_probe_ran_and_exited_zero(priv: Privileges) -> None:
    assert priv.result.code == 0, str(priv.result)
    assert priv.probe["released"], "the probe ended before the host had inspected its container"


def test_runs_as_the_unprivileged_sandbox_user(priv: Privileges) -> None:
    assert priv.probe["uid"] == priv.probe["euid"] == SANDBOX_UID
    assert priv.probe["gid"] == SANDBOX_UID
    assert 0 not in priv.probe["groups"]


def test_touch_in_etc_fails_on_the_read_only_root(priv: Privileges) -> None:
    touch = priv.probe["touch_etc"]
    assert touch["rc"] != 0
    assert "Read-only file system" in touch["stderr"], touch


@pytest.mark.parametrize("path", READ_ONLY)
def test_root_file_system_and_mounts_are_not_writable(priv: Privileges, path: str) -> None:
    assert priv.probe["write"][path] == "OSError: EROFS"


def test_root_is_mounted_read_only(priv: Privileges) -> None:
    options = priv.probe["root_mount"].split()[5].split(",")
    assert "ro" in options, priv.probe["root_mount"]


@pytest.mark.parametrize("path", WRITABLE)
def test_tmp_work_and_home_are_writable(priv: Privileges, path: str) -> None:
    assert priv.probe["write"][path] == "written"


@pytest.mark.parametrize("field", ["cap_eff", "cap_prm", "cap_bnd"])
def test_no_capabilities_at_all(priv: Privileges, field: str) -> None:
    assert priv.probe[field] == NO_CAPS


def test_no_new_privileges_flag_is_set(priv: Privileges) -> None:
    assert priv.probe["no_new_privs"] == "1"


# -- the container as Docker sees it ------------------------------------------------------------
def test_container_carries_the_coatcheck_labels(priv: Privileges) -> None:
    labels = priv.inspect["Config"]["Labels"]
    assert labels[RUN_LABEL].startswith("r-")
    assert int(labels[OWNER_LABEL]) > 0
    assert labels["org.coatcheck.host"] == socket.gethostname()


def test_container_root_file_system_is_read_only(priv: Privileges) -> None:
    assert priv.host_config["ReadonlyRootfs"] is True


def test_container_drops_all_capabilities(priv: Privileges) -> None:
    assert priv.host_config["CapDrop"] == ["ALL"]
    assert not priv.host_config["CapAdd"]
    assert priv.host_config["Privileged"] is False


def test_container_has_no_new_privileges(priv: Privileges) -> None:
    assert "no-new-privileges" in (priv.host_config["SecurityOpt"] or [])


def test_container_has_a_pids_limit(priv: Privileges) -> None:
    assert 0 < (priv.host_config["PidsLimit"] or 0) <= 4096


def test_container_has_a_memory_limit_without_extra_swap(priv: Privileges) -> None:
    memory = priv.host_config["Memory"]
    assert 0 < memory <= 16 * 2**30
    assert priv.host_config["MemorySwap"] == memory


def test_container_has_a_cpu_limit(priv: Privileges) -> None:
    assert 0 < priv.host_config["NanoCpus"] <= 64 * 10**9


def test_container_network_mode_is_none(priv: Privileges) -> None:
    assert priv.host_config["NetworkMode"] == "none"
    assert priv.inspect["NetworkSettings"]["Networks"].keys() == {"none"}


def test_container_runs_as_the_sandbox_user(priv: Privileges) -> None:
    assert priv.inspect["Config"]["User"] == f"{SANDBOX_UID}:{SANDBOX_UID}"


def test_container_mounts_are_the_run_socket_dir_and_the_ca_only_read_only(
    priv: Privileges,
) -> None:
    binds = {m["Destination"]: m for m in priv.inspect["Mounts"] if m["Type"] == "bind"}
    assert set(binds) == {
        "/run/coatcheck", "/etc/coatcheck/ca.pem", "/etc/ssl/certs/ca-certificates.crt",
    }  # fmt: skip
    assert all(m["RW"] is False for m in binds.values()), binds
    # The proxy CA only, from beside the run's socket directory (not from COATCHECK_HOME,
    # whose path the sandbox would then read in /proc/self/mountinfo).
    ca_source = binds["/etc/coatcheck/ca.pem"]["Source"]
    assert ca_source == binds["/run/coatcheck"]["Source"] + ".ca.pem"
    assert str(priv.home.path) not in ca_source
    assert not any("docker.sock" in m["Source"] for m in priv.inspect["Mounts"])


def test_the_only_sysctl_lets_the_init_bind_low_ports_in_its_own_namespace(
    priv: Privileges,
) -> None:
    """Ports 53, 80 and 443 for the init's name server and relays (issue 12); a namespaced
    sysctl, allowed because the container has its own network namespace (network none)."""
    assert priv.host_config["Sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "0"}


def test_the_only_name_server_is_the_init_in_the_sandbox(priv: Privileges) -> None:
    """Docker writes the sandbox's resolv.conf from these (issue 12): the init answers every
    lookup itself; nothing forwards a query, and there is no interface to send one on."""
    assert priv.host_config["Dns"] == ["127.0.0.53"]
    assert priv.host_config["DnsSearch"] in (None, [])


def test_container_tmpfs_work_dirs_are_nosuid(priv: Privileges) -> None:
    tmpfs = priv.host_config["Tmpfs"]
    assert set(tmpfs) == {"/tmp", "/work", "/home/sandbox"}
    assert all("nosuid" in opts.split(",") for opts in tmpfs.values()), tmpfs
