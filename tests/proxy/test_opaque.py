"""Opaque hosts, the pure part: which CONNECTs are spliced, the ClientHello check, the overlap
of an opaque pattern with a secret's domains, and the registration field."""

from __future__ import annotations

import ssl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.domains import parse_pattern
from core.errors import UsageError
from core.messages import Registration
from proxy.clienthello import HELLO_LIMIT, read_hello
from proxy.opaque import (
    could_be_connect,
    decide_opaque,
    hello_refusal,
    parse_connect,
    refusal_bytes,
)
from proxy.policy import deny
from proxy.reasons import Reason
from proxy.runs import RunPolicy, RunSecret, overlap, parse_run
from proxy.tunnels import Tunnel


def client_hello(server_hostname: str | None) -> bytes:
    """The ClientHello Python's ssl module sends for ``server_hostname``."""
    ctx = ssl.create_default_context()
    if server_hostname is None:
        ctx.check_hostname = False
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


# -- the CONNECT head --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("head", "want"),
    [
        pytest.param(b"CONNECT pypi.test:443 HTTP/1.1\r\nHost: x\r\n\r\n", ("pypi.test", 443),
                     id="plain"),
        pytest.param(b"CONNECT PyPI.test.:443 HTTP/1.1\r\n\r\nrest", ("pypi.test", 443),
                     id="normalized"),
        pytest.param(b"CONNECT pypi.test HTTP/1.1\r\n\r\n", None, id="no-port"),
        pytest.param(b"CONNECT pypi.test:99999 HTTP/1.1\r\n\r\n", None, id="bad-port"),
        pytest.param(b"CONNECT pypi.test:443 HTTP/1.1\r\n", None, id="incomplete"),
        pytest.param(b"GET https://pypi.test/ HTTP/1.1\r\n\r\n", None, id="not-connect"),
        pytest.param(b"CONNECT  pypi.test:443 HTTP/1.1\r\n\r\n", None, id="double-space"),
        pytest.param(b"CONNECT pypi.test:443 SPDY/3\r\n\r\n", None, id="not-http1"),
    ],
)  # fmt: skip
def test_parse_connect(head: bytes, want: tuple[str, int] | None) -> None:
    got = parse_connect(head)
    assert (got[:2] if got else None) == want
    if got is not None:
        assert head[got[2] :] in (b"", b"rest")


@pytest.mark.parametrize(
    ("first", "more"),
    [(b"CONN", True), (b"CONNECT a:1 HTTP/1.1\r\n", True), (b"CONNECT a:1 HTTP/1.1\r\n\r\n", False),
     (b"GET / HTTP/1.1\r\n", False), (b"\x16\x03\x01", False)],
)  # fmt: skip
def test_could_be_connect(first: bytes, more: bool) -> None:
    assert could_be_connect(first) is more


# -- which CONNECTs are opaque -----------------------------------------------------------------
def run_with(opaque: list[str], secret_domains: tuple[str, ...] = ()) -> RunPolicy:
    secrets = (
        (RunSecret("TOKEN", "ph", tuple(parse_pattern(d) for d in secret_domains)),)
        if secret_domains
        else ()
    )
    return RunPolicy("r-test", secrets=secrets, allow_opaque=tuple(map(parse_pattern, opaque)))


@pytest.mark.parametrize(
    ("opaque", "host", "port", "want"),
    [
        pytest.param(["pypi.test"], "pypi.test", 443, Reason.OPAQUE, id="exact"),
        pytest.param(["*.pyfiles.test"], "files.pyfiles.test", 443, Reason.OPAQUE,
                     id="wildcard"),
        pytest.param(["*.pyfiles.test"], "pyfiles.test", 443, None, id="apex-not-wildcard"),
        pytest.param(["pypi.test:443"], "pypi.test", 8443, None, id="other-port"),
        pytest.param(["pypi.test"], "pypi.test.evil.test", 443, None, id="suffix-trick"),
        pytest.param([], "pypi.test", 443, None, id="none"),
    ],
)  # fmt: skip
def test_decide_opaque(opaque: list[str], host: str, port: int, want: Reason | None) -> None:
    got = decide_opaque(run_with(opaque), host, port, cut_off=False)
    assert (got.reason if got else None) == want


def test_a_host_a_secret_covers_now_is_not_opaque() -> None:
    """Vault rules edited after registration: the secret's host goes to interception."""
    run = run_with(["*.example.test"], ("api.example.test",))
    assert decide_opaque(run, "api.example.test", 443, cut_off=False) is None
    assert decide_opaque(run, "pkg.example.test", 443, cut_off=False) is not None


def test_a_cut_off_run_gets_no_opaque_tunnel() -> None:
    got = decide_opaque(run_with(["pypi.test"]), "pypi.test", 443, cut_off=True)
    assert got is not None and not got.allowed and got.reason == Reason.UNEXPECTED_VALUE


# -- the ClientHello ---------------------------------------------------------------------------
def test_read_hello_finds_the_sni() -> None:
    hello = read_hello(client_hello("pypi.test"))
    assert hello.complete and hello.sni == "pypi.test"


def test_read_hello_without_sni() -> None:
    hello = read_hello(client_hello(None))
    assert hello.complete and hello.sni is None


def test_read_hello_in_pieces_needs_more_until_whole() -> None:
    data = client_hello("pypi.test")
    for cut in (1, 2, 5, 6, len(data) // 2, len(data) - 1):
        got = read_hello(data[:cut])
        assert not got.complete and not got.not_tls, cut
    assert read_hello(data + b"more").sni == "pypi.test"


def test_read_hello_across_records() -> None:
    """A ClientHello split over two TLS records (as a large key share makes it) is gathered."""
    data = client_hello("pypi.test")
    body = data[5:]
    first, second = body[:100], body[100:]
    split = (
        b"\x16\x03\x01" + len(first).to_bytes(2, "big") + first
        + b"\x16\x03\x01" + len(second).to_bytes(2, "big") + second
    )  # fmt: skip
    assert read_hello(split).sni == "pypi.test"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: pypi.test\r\n\r\n", id="http"),
        pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n", id="ssh"),
        pytest.param(b"\x17\x03\x03\x00\x10" + b"x" * 16, id="application-data-record"),
        pytest.param(b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", id="server-hello"),
        pytest.param(b"\x16\x03\x01\x00\x00", id="empty-record"),
        pytest.param(b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00", id="truncated"),
        pytest.param(b"\x16\x03\x01\x00\x04\x01\xff\xff\xff", id="over-the-limit"),
    ],
)
def test_read_hello_refuses_what_is_no_client_hello(data: bytes) -> None:
    assert read_hello(data).not_tls


def _sni_extension(name: bytes) -> bytes:
    entry = b"\x00" + len(name).to_bytes(2, "big") + name
    return b"\x00\x00" + (len(entry) + 2).to_bytes(2, "big") + len(entry).to_bytes(2, "big") + entry


def _with_extension(data: bytes, ext: bytes) -> bytes:
    """``data``'s ClientHello with the extension ``ext`` appended."""
    body = bytearray(data[9:])  # after record header (5) and handshake header (4)
    # the extensions block is last: its 2-byte length is found by walking the fixed fields
    pos = 34
    pos += 1 + body[pos]
    pos += 2 + int.from_bytes(body[pos : pos + 2], "big")
    pos += 1 + body[pos]
    ext_len = int.from_bytes(body[pos : pos + 2], "big") + len(ext)
    body[pos : pos + 2] = ext_len.to_bytes(2, "big")
    body += ext
    hs = b"\x01" + len(body).to_bytes(3, "big") + bytes(body)
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs


def test_read_hello_refuses_two_server_names() -> None:
    """Two SNI extensions: which one would the upstream believe? Neither is checked: refused."""
    data = _with_extension(client_hello("pypi.test"), _sni_extension(b"evil.test"))
    assert read_hello(data).not_tls
    # (the rewrite itself keeps a well-formed hello: another extension appended still parses)
    other = _with_extension(client_hello("pypi.test"), b"\xfa\xfa\x00\x00")
    assert read_hello(other).sni == "pypi.test"


def test_read_hello_gives_up_past_its_limit() -> None:
    head = b"\x16\x03\x01\x40\x00\x01\x00\xff\xff"
    assert read_hello(head + b"\x00" * (HELLO_LIMIT - len(head))).not_tls


@pytest.mark.parametrize(
    ("sni", "reason"),
    [("pypi.test", None), ("PYPI.TEST", None), ("evil.test", Reason.SNI_MISMATCH),
     (None, Reason.SNI_MISMATCH)],
)  # fmt: skip
def test_hello_refusal(sni: str | None, reason: Reason | None) -> None:
    got = hello_refusal(Tunnel("pypi.test", 443), read_hello(client_hello(sni)))
    assert (got.reason if got else None) == reason


def test_hello_refusal_of_no_hello() -> None:
    got = hello_refusal(Tunnel("pypi.test", 443), None)
    assert got is not None and got.reason == Reason.NOT_TLS


def test_refusal_bytes_name_the_reason() -> None:
    raw = refusal_bytes(deny(Reason.ADDRESS_PRIVATE, "pypi.test resolves to 10.0.0.1"), 403)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 ") and b"X-Coatcheck-Reason: address_private" in head
    assert f"Content-Length: {len(body)}".encode() in head and b"10.0.0.1" in body


# -- opaque patterns against a run's secrets ----------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ("pypi.test", "pypi.test", True),
        ("pypi.test", "files.pypi.test", False),
        ("*.pypi.test", "files.pypi.test", True),
        ("*.pypi.test", "pypi.test", False),
        ("*.example.test", "*.api.example.test", True),
        ("*.a.example.test", "*.b.example.test", False),
        ("pypi.test:443", "pypi.test:8443", False),
        ("pypi.test:443", "pypi.test", True),
    ],
)
def test_overlap_is_symmetric(a: str, b: str, want: bool) -> None:
    pa, pb = parse_pattern(a), parse_pattern(b)
    assert overlap(pa, pb) is want and overlap(pb, pa) is want


def test_registration_refuses_an_opaque_pattern_over_a_secret_domain() -> None:
    secret = {"name": "GH_TOKEN", "placeholder": "ph", "domains": ["api.github.test"]}
    with pytest.raises(UsageError) as exc:
        parse_run({"run_id": "r-test", "secrets": [secret], "allow_opaque": ["*.github.test"]})
    message = exc.value.message
    assert "*.github.test" in message and "api.github.test" in message and "GH_TOKEN" in message
    assert "opaque hosts get no secret" in message
    ok = parse_run({"run_id": "r-test", "secrets": [secret], "allow_opaque": ["pypi.test"]})
    assert [str(p) for p in ok.allow_opaque] == ["pypi.test"]


def test_opaque_is_not_the_interception_allowlist() -> None:
    run = parse_run({"run_id": "r-test", "allow_opaque": ["pypi.test"]})
    assert run.allowlist == ()


def test_registration_carries_allow_opaque() -> None:
    reg = Registration(run_id="r-test", allow_opaque=("pypi.test", "*.pyfiles.test"))
    assert Registration.from_json(reg.to_json()) == reg
    with pytest.raises(UsageError):
        Registration.from_json({"run_id": "r-test", "allow_opaque": "pypi.test"})
    with pytest.raises(UsageError):
        parse_run({"run_id": "r-test", "allow_opaque": ["https://pypi.test/"]})


@given(st.binary(max_size=4096))
def test_read_hello_never_raises(data: bytes) -> None:
    hello = read_hello(data)
    assert hello.complete or hello.not_tls or hello == read_hello(data)


@given(st.integers(min_value=9, max_value=400), st.binary(min_size=1, max_size=64))
def test_read_hello_of_a_mangled_hello_never_raises(at: int, junk: bytes) -> None:
    """Bytes of a real hello overwritten anywhere: a name, no name, or refused; never a crash."""
    data = bytearray(client_hello("pypi.test"))
    data[at : at + len(junk)] = junk
    hello = read_hello(bytes(data))
    assert hello.sni is None or isinstance(hello.sni, str)
