"""Where the proxy service keeps its files.

Under ``COATCHECK_HOME/proxy``: the CA (``ca/``, private, 0700), the sandbox trust bundle
(public certificate only), the audit log. Sockets live in a short private directory under
``/tmp`` (Unix socket paths are limited to 108 bytes): ``control.sock`` and one ``runs/<id>/``
directory per run, which is what gets bind-mounted into that run's sandbox; ``launch.sock``, where
the shared service's zygote takes warm runs.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProxyPaths:
    home: Path
    sockets: Path

    @classmethod
    def for_home(cls, home: Path, *, sockets: Path | None = None) -> ProxyPaths:
        if sockets is None:
            digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12]
            sockets = Path(tempfile.gettempdir()) / f"coatcheck-{os.getuid()}-{digest}"
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
