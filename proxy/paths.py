"""Where the proxy service keeps its files.

Under ``COATCHECK_HOME/proxy``: the CA (``ca/``, private, 0700), the sandbox trust bundle
(public certificate only), the audit log. Sockets live in a short private directory under
``/tmp`` (Unix socket paths are limited to 108 bytes): ``control.sock`` and one ``runs/<id>/``
directory per run, which is what gets bind-mounted into that run's sandbox; ``launch.sock``, where
the shared service's zygote takes warm runs.

The thin client (``runner/launch.py``) and the coordinator import this: it imports neither
hashlib (OpenSSL's libcrypto) nor tempfile (shutil, bz2, lzma) nor dataclasses (inspect).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TEMP_VARIABLES = ("TMPDIR", "TEMP", "TMP")  # tempfile's order
TEMP_FALLBACKS = ("/tmp", "/var/tmp", "/usr/tmp")  # noqa: S108 - tempfile's, for the same answer


class ProxyPaths:
    """A service's files: ``home`` (``COATCHECK_HOME``) and ``sockets`` (its socket directory).
    Immutable, compared by value."""

    __slots__ = ("home", "sockets")
    home: Path
    sockets: Path

    def __init__(self, home: Path, sockets: Path) -> None:
        object.__setattr__(self, "home", home)
        object.__setattr__(self, "sockets", sockets)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"ProxyPaths is immutable: {name} can't be set")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProxyPaths):
            return NotImplemented
        return (self.home, self.sockets) == (other.home, other.sockets)

    def __hash__(self) -> int:
        return hash((self.home, self.sockets))

    def __repr__(self) -> str:
        return f"ProxyPaths(home={self.home!r}, sockets={self.sockets!r})"

    @classmethod
    def for_home(cls, home: Path, *, sockets: Path | None = None) -> ProxyPaths:
        """``home``'s paths; its socket directory, unless given, is named after the resolved
        home in the temporary directory (the same for every process of this user)."""
        if sockets is None:
            try:  # the interpreter's own SHA-256: hashlib would load OpenSSL's libcrypto
                from _sha2 import sha256
            except ImportError:  # pragma: no cover - an interpreter built without it
                from hashlib import sha256
            digest = sha256(str(home.resolve()).encode()).hexdigest()[:12]
            sockets = Path(temp_dir()) / f"coatcheck-{os.getuid()}-{digest}"
        return cls(home=home, sockets=sockets)

    @property
    def dir(self) -> Path:
        return self.home / "proxy"

    @property
    def confdir(self) -> Path:
        return self.dir / "ca"

    @property
    def ca_cert(self) -> Path:
        return self.confdir / "mitmproxy-ca-cert.pem"

    @property
    def sandbox_bundle(self) -> Path:
        return self.dir / "sandbox-ca.pem"

    @property
    def audit_log(self) -> Path:
        return self.dir / "audit.jsonl"

    @property
    def control(self) -> Path:
        return self.sockets / "control.sock"

    @property
    def launch(self) -> Path:
        """The zygote's socket (``runner/zygote.py``): warm ``coatcheck run``s start there."""
        return self.sockets / "launch.sock"

    def run_dir(self, run_id: str) -> Path:
        return self.sockets / "runs" / run_id

    def run_socket(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "proxy.sock"


def temp_dir() -> str:
    """``tempfile.gettempdir()``'s answer, from this environment each time (tempfile caches
    it): the first of ``$TMPDIR``, ``$TEMP``, ``$TMP``, /tmp, /var/tmp, /usr/tmp and the
    current directory that is a directory this user can create files in."""
    candidates = [v for v in map(os.environ.get, TEMP_VARIABLES) if v]
    candidates += TEMP_FALLBACKS
    with contextlib.suppress(OSError):
        candidates.append(os.getcwd())
    for candidate in candidates:
        where = candidate if candidate == os.curdir else os.path.abspath(candidate)
        if os.path.isdir(where) and os.access(where, os.W_OK | os.X_OK):
            return where
    raise FileNotFoundError(f"no usable temporary directory in {candidates}; set TMPDIR")
