"""The sandbox's trust bundle for a run with opaque hosts: the proxy's CA and the public CAs.

A sandbox normally trusts the proxy's CA alone: every TLS connection it makes ends at the proxy.
An opaque host (``--allow-opaque``) is not intercepted, so its client sees the host's real
certificate and needs the public CAs too: the same store the proxy verifies upstreams with
(certifi's, as mitmproxy uses). Trusting more CAs gives the sandbox no way around the proxy:
its only way out is still the proxy, which decides every destination itself.
"""

from __future__ import annotations

import os
from pathlib import Path

NAME = "sandbox-public-trust.pem"


def with_public_cas(cert: Path) -> Path:
    """A bundle of the proxy CA's certificate ``cert`` and the public CAs, beside ``cert``."""
    import certifi

    out = cert.with_name(NAME)
    data = cert.read_bytes().rstrip(b"\n") + b"\n" + Path(certifi.where()).read_bytes()
    if not out.exists() or out.read_bytes() != data:
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, out)
    return out
