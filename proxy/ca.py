"""The proxy's certificate authority, created once per COATCHECK_HOME.

Written in mitmproxy's confdir layout (``mitmproxy-ca.pem`` = key + certificate, mode 0600;
``mitmproxy-ca-cert.pem`` = certificate only) so mitmproxy loads it instead of making its own,
and so the runner can hand the *certificate* to a sandbox before the proxy has started. The
private key never leaves ``ca/``.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from core.home import ensure_private_dir

CA_NAME = "coatcheck proxy CA"


def ensure_ca(confdir: Path) -> Path:
    """Create the CA in ``confdir`` if it is missing; return the certificate's path."""
    ensure_private_dir(confdir)
    key_file = confdir / "mitmproxy-ca.pem"
    cert_file = confdir / "mitmproxy-ca-cert.pem"
    if key_file.exists() and cert_file.exists():
        return cert_file
    _create(confdir, key_file, cert_file)
    return cert_file


def _create(confdir: Path, key_file: Path, cert_file: Path) -> None:
    # Imported only when a CA is made (once per COATCHECK_HOME): keeps `coatcheck run` fast.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "coatcheck"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    tmp = confdir / f".ca-{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem + cert_pem)
    os.replace(tmp, key_file)
    tmp.write_bytes(cert_pem)
    os.replace(tmp, cert_file)


def write_sandbox_bundle(cert_file: Path, bundle: Path) -> Path:
    """The trust bundle a sandbox gets: the proxy CA's certificate and nothing else.

    Every TLS connection a sandbox makes ends at the proxy, so no other CA is needed there.
    """
    data = cert_file.read_bytes()
    if bundle.exists() and bundle.read_bytes() == data:
        return bundle
    tmp = bundle.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, bundle)
    return bundle
