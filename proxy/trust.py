"""What the proxy trusts for upstream TLS: the public roots, the service's own ``--upstream-ca``
and the CAs of the runs registered now, as one bundle file in the service's socket directory.

A run's CA stops being trusted when the run leaves, and bundle files nothing uses are removed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from core.home import ensure_private_dir

BUNDLE_PREFIX = "upstream-ca-"


class UpstreamTrust:
    def __init__(self, where: Path, service_cas: list[str] | None = None) -> None:
        self.where = where
        self.base = [Path(p).read_text() for p in (service_cas or [])]
        self.runs: dict[str, list[str]] = {}
        self.apply: Callable[[str | None], None] = lambda _p: None  # set by mitmproxy start-up

    def add(self, run_id: str, pems: list[str]) -> None:
        if pems:
            self.runs[run_id] = pems
            self._update()

    def drop(self, run_id: str) -> None:
        if self.runs.pop(run_id, None) is not None:
            self._update()

    def _update(self) -> None:
        path = self.bundle()
        self.apply(path)  # None: the public roots only
        self.remove(keep=path)

    def bundle(self) -> str | None:
        extra = self.base + [pem for pems in self.runs.values() for pem in pems]
        if not extra:
            return None
        import certifi  # mitmproxy's own default trust store

        text = Path(certifi.where()).read_text() + "\n" + "\n".join(extra)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        ensure_private_dir(self.where)
        path = self.where / f"{BUNDLE_PREFIX}{digest}.pem"
        if not path.exists():
            path.write_text(text)
        return str(path)

    def remove(self, keep: str | None = None) -> None:
        for old in self.where.glob(f"{BUNDLE_PREFIX}*.pem"):
            if str(old) != keep:
                old.unlink(missing_ok=True)
