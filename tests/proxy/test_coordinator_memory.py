"""The coordinator stays small: the process runner.proxyd becomes (``exec``, same pid) imports
the standard library's socket, threading, subprocess and json and our own small modules, and
none of what it needs no more (the CA's cryptography, hashlib's OpenSSL, tempfile's shutil,
dataclasses' inspect, argparse, logging, typing). ProxyPaths, now without hashlib and
tempfile, names the same socket directory as before."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from proxy.paths import ProxyPaths
from tests.conftest import vault_key_of
from tests.support.harness import start_proxy
from vault.keystore import FileKeystore
from vault.store import Vault

HEAVY = {"hashlib", "_hashlib", "tempfile", "shutil", "bz2", "lzma", "dataclasses", "inspect",
         "argparse", "logging", "typing", "asyncio", "ssl", "mitmproxy", "vault", "cryptography",
         "ctypes", "click", "runner"}  # fmt: skip
HEAVY_LIBS = ("libcrypto", "libssl", "libbz2", "liblzma", "libffi")


def test_the_coordinators_imports_are_light() -> None:
    probe = (
        "import sys; import proxy.coordinated; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)  # fmt: skip
    assert set(out.stdout.split()) & HEAVY == set()


def test_the_service_becomes_a_coordinator_without_openssl(tmp_path: Path, ca_file: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    Vault.open(home, keystore=FileKeystore(home / "vault.key")).list()
    with vault_key_of(home):
        proxy = start_proxy(home, Path(f"/tmp/cc-mem-{os.getpid()}"), upstream_ca=ca_file,
                            workers=2)  # fmt: skip
    try:
        pid = proxy.proc.pid  # the same process, after the exec
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert argv[1:4] == [b"-I", b"-m", b"proxy.coordinated"]
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert [lib for lib in HEAVY_LIBS if lib in maps] == []
    finally:
        proxy.close()
    assert not (proxy.sockets / "launch.sock").exists()  # the zygote stopped with it


@pytest.mark.parametrize(
    "env",
    [{}, {"TMPDIR": "/var/tmp"}, {"TMPDIR": "/nonexistent"}, {"TMP": "/var/tmp"},
     {"TMPDIR": "relative"}, {"TEMP": "/etc/hostname", "TMP": "/var/tmp"}],
    ids=["default", "tmpdir", "missing-tmpdir", "tmp", "relative", "a-file-then-tmp"],
)  # fmt: skip
def test_the_socket_directory_is_the_one_tempfile_and_hashlib_gave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(tempfile, "tempdir", None)  # computed again from this environment
    home = tmp_path / "home"
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12]
    before = Path(tempfile.gettempdir()) / f"coatcheck-{os.getuid()}-{digest}"
    assert ProxyPaths.for_home(home).sockets == before
