"""Docker lifecycle of a sandbox: the only module that imports ``docker``.

A sandbox is one container per run: no network but loopback (``network_mode=none``), the run's
proxy socket directory bind-mounted read-only at /run/coatcheck, the proxy CA *certificate* as
its trust bundle, the init as its only name server, non-root, read-only root file system with
tmpfs work dirs, every capability dropped, no-new-privileges, and pid, memory and CPU limits.
Everything carries the coatcheck labels; containers whose owning process is gone are reaped at
the next start.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
import requests.exceptions

from core.errors import DockerUnavailable, ImageMissing, SandboxError
from core.pids import alive
from sandbox import names

LABEL_RUN = "org.coatcheck.run"
LABEL_OWNER = "org.coatcheck.owner_pid"
LABEL_HOST = "org.coatcheck.host"
SANDBOX_UID = 10001
PROXY_PORT = 3128
SOCKET_MOUNT = "/run/coatcheck"
CA_MOUNT = "/etc/coatcheck/ca.pem"
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
TIMEOUT_EXIT = 124
CA_ENV = (
    "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "PIP_CERT",
    "NODE_EXTRA_CA_CERTS", "AWS_CA_BUNDLE",
)  # fmt: skip
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
NO_PROXY_ENV = ("NO_PROXY", "no_proxy")
RUNTIME_PROXY_ENV = {"NODE_USE_ENV_PROXY": "1"}  # Node >= 24 reads HTTPS_PROXY when it is set
RESERVED_ENV = frozenset((*CA_ENV, *PROXY_ENV, *NO_PROXY_ENV, *RUNTIME_PROXY_ENV,
                          "COATCHECK_PROXY_SOCKET", "COATCHECK_PROXY_PORT",
                          "COATCHECK_DNS"))  # fmt: skip
# The init binds DNS (53) and the name relays (443, 80) as the sandbox user, in the sandbox's own
# network namespace (network_mode=none): no port below 1024 is privileged there.
SYSCTLS = {"net.ipv4.ip_unprivileged_port_start": "0"}


@dataclass(frozen=True)
class Limits:
    memory: str = "1g"
    cpus: float = 1.0
    pids: int = 256
    tmp_size: str = "512m"


@dataclass(frozen=True)
class SandboxSpec:
    run_id: str
    image: str
    command: tuple[str, ...]
    run_dir: Path
    ca_bundle: Path
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    limits: Limits = Limits()
    workspace: Path | None = None  # a host directory mounted read-write at /workspace
    input_file: Path | None = None  # a trigger's body: untrusted data, mounted read-only


WORKSPACE_MOUNT = "/workspace"
INPUT_MOUNT = "/run/coatcheck-input"  # $COATCHECK_INPUT: a file, when the run has an input


def sandbox_env(spec: SandboxSpec) -> dict[str, str]:
    """Proxy and trust settings so curl, git, pip and python work unchanged (and the init's
    name server, for the clients that ignore them)."""
    proxy = f"http://127.0.0.1:{PROXY_PORT}"
    env = dict(spec.env)
    env.update({k: proxy for k in PROXY_ENV})
    env.update({k: "localhost,127.0.0.1,::1" for k in NO_PROXY_ENV})
    env.update({k: CA_MOUNT for k in CA_ENV})
    env.update(RUNTIME_PROXY_ENV)
    env["COATCHECK_DNS"] = names.DNS_ADDRESS
    env["COATCHECK_PROXY_SOCKET"] = f"{SOCKET_MOUNT}/proxy.sock"
    env["COATCHECK_PROXY_PORT"] = str(PROXY_PORT)
    env["COATCHECK_RUN_ID"] = spec.run_id
    if spec.input_file is not None:
        env["COATCHECK_INPUT"] = INPUT_MOUNT
    return env


def _tmpfs(limits: Limits) -> dict[str, str]:
    owned = f"uid={SANDBOX_UID},gid={SANDBOX_UID}"
    return {
        "/tmp": f"rw,nosuid,nodev,exec,size={limits.tmp_size},mode=1777",  # noqa: S108 - the sandbox's own tmpfs
        "/work": f"rw,nosuid,nodev,exec,size={limits.tmp_size},{owned},mode=0755",
        "/home/sandbox": f"rw,nosuid,nodev,size=64m,{owned},mode=0700",
    }


class Sandboxes:
    """Creates, runs and removes sandboxes on the local Docker engine."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                self._client = docker.from_env(timeout=120)
                self._client.ping()
            except (docker.errors.DockerException, requests.exceptions.RequestException):
                raise DockerUnavailable(
                    "no Docker engine answers; start one (`dockerd &`, or `make docker`) "
                    "or set DOCKER_HOST"
                ) from None
        return self._client

    def close(self) -> None:  # the engine connection, if opened (a new one opens on next use)
        client, self._client = self._client, None
        with contextlib.suppress(Exception):
            if client is not None:
                client.close()

    def check_image(self, image: str) -> None:
        if self.image_labels(image) is None:
            raise ImageMissing(_missing(image))

    # -- images (built without a registry: see images/) -------------------------------
    def image_labels(self, image: str) -> dict[str, str] | None:
        """The labels of a local image, or None when there is no such image."""
        try:
            attrs = self.client.api.inspect_image(image)
        except docker.errors.ImageNotFound:
            return None
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise SandboxError(f"Docker could not inspect {image}: {_explain(exc)}") from None
        return dict((attrs.get("Config") or {}).get("Labels") or {})

    def import_rootfs(self, tarball: Path, image: str, changes: list[str]) -> None:
        """``docker import``: a root file system tarball becomes ``image``."""
        repo, _, tag = image.rpartition(":")
        try:
            self.client.api.import_image_from_file(
                str(tarball), repository=repo, tag=tag, changes=changes
            )
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise SandboxError(f"Docker could not import {image}: {_explain(exc)}") from None

    def build_image(
        self,
        context: Path,
        image: str,
        *,
        labels: dict[str, str],
        on_line: Callable[[str], None],
    ) -> None:
        """``docker build`` of a local context (no registry is asked: the base is local)."""
        try:
            for item in self.client.api.build(
                path=str(context), tag=image, labels=labels, rm=True, forcerm=True, decode=True
            ):
                if "error" in item:
                    raise SandboxError(f"building {image} failed: {item['error'].strip()}")
                line = str(item.get("stream", "")).strip()
                if line:
                    on_line(line)
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise SandboxError(f"Docker could not build {image}: {_explain(exc)}") from None

    def reap_orphans(self) -> int:
        """Remove sandboxes of this host whose owning process is gone (after a crash)."""
        host = socket.gethostname()
        reaped = 0
        api = self.client.api  # list only: `containers.list` inspects too (races removals)
        for c in api.containers(all=True, filters={"label": LABEL_RUN}):
            labels = c.get("Labels") or {}
            if labels.get(LABEL_HOST) != host:
                continue
            pid = int(labels.get(LABEL_OWNER, "0") or 0)
            if pid and alive(pid):
                continue
            with contextlib.suppress(docker.errors.APIError):
                api.remove_container(c["Id"], force=True)
                reaped += 1
        return reaped

    def run(
        self,
        spec: SandboxSpec,
        *,
        stdout: IO[bytes],
        stderr: IO[bytes],
        on_started: Callable[[Callable[[], None]], None] | None = None,
    ) -> int:
        """Run the sandbox to completion, streaming its output; return the exit code.

        ``on_started`` is called once the container runs, with a function that kills it.
        """
        api = self.client.api
        try:
            container = api.create_container(
                spec.image,
                command=list(spec.command),
                environment=sandbox_env(spec),
                user=f"{SANDBOX_UID}:{SANDBOX_UID}",
                labels={
                    LABEL_RUN: spec.run_id,
                    LABEL_OWNER: str(os.getpid()),
                    LABEL_HOST: socket.gethostname(),
                },
                hostname="sandbox",
                host_config=api.create_host_config(
                    network_mode="none",
                    read_only=True,
                    tmpfs=_tmpfs(spec.limits),
                    cap_drop=["ALL"],
                    security_opt=["no-new-privileges"],
                    pids_limit=spec.limits.pids,
                    mem_limit=spec.limits.memory,
                    memswap_limit=spec.limits.memory,
                    nano_cpus=int(spec.limits.cpus * 1e9),
                    sysctls=SYSCTLS,
                    dns=[names.DNS_ADDRESS],  # its resolv.conf: the init, which answers itself
                    dns_opt=list(names.DNS_OPTIONS),
                    binds={
                        str(spec.run_dir): {"bind": SOCKET_MOUNT, "mode": "ro"},
                        str(spec.ca_bundle): {"bind": CA_MOUNT, "mode": "ro"},
                        **(
                            {str(spec.workspace): {"bind": WORKSPACE_MOUNT, "mode": "rw"}}
                            if spec.workspace is not None
                            else {}
                        ),
                        **(
                            {str(spec.input_file): {"bind": INPUT_MOUNT, "mode": "ro"}}
                            if spec.input_file is not None
                            else {}
                        ),
                    },
                    mounts=[
                        docker.types.Mount(
                            SYSTEM_BUNDLE, str(spec.ca_bundle), type="bind", read_only=True
                        )
                    ],
                ),
            )
        except docker.errors.ImageNotFound:
            raise ImageMissing(_missing(spec.image)) from None
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise SandboxError(f"Docker refused to create the sandbox: {_explain(exc)}") from None
        cid = container["Id"]
        try:
            return self._run_created(api, cid, spec, stdout, stderr, on_started)
        finally:
            with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
                api.remove_container(cid, force=True, v=True)

    def _run_created(
        self,
        api: Any,
        cid: str,
        spec: SandboxSpec,
        stdout: IO[bytes],
        stderr: IO[bytes],
        on_started: Callable[[Callable[[], None]], None] | None,
    ) -> int:
        stream = api.attach(cid, stdout=True, stderr=True, stream=True, logs=True, demux=True)
        pump = threading.Thread(target=_pump, args=(stream, stdout, stderr), daemon=True)
        try:
            api.start(cid)
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise SandboxError(f"Docker could not start the sandbox: {_explain(exc)}") from None
        pump.start()
        if on_started is not None:

            def kill() -> None:
                with contextlib.suppress(docker.errors.APIError):
                    api.kill(cid)

            on_started(kill)
        try:
            result = api.wait(cid, timeout=spec.timeout)
            code = int(result.get("StatusCode", 125))
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            with contextlib.suppress(docker.errors.APIError):
                api.kill(cid)
            code = TIMEOUT_EXIT
        pump.join(timeout=5)
        return code


def _pump(stream: Any, stdout: IO[bytes], stderr: IO[bytes]) -> None:
    with contextlib.suppress(Exception):
        for out, err in stream:
            if out:
                stdout.write(out)
                stdout.flush()
            if err:
                stderr.write(err)
                stderr.flush()


def _missing(image: str) -> str:
    return (
        f"the image {image} is not on this Docker engine; build coatcheck's images with "
        "`coatcheck images build` (or name a local image with --image)"
    )


def _explain(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc.__class__.__name__)
