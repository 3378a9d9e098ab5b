"""One run must not hurt the others on a shared proxy: file descriptors, memory, time.

Each attack comes from one run of a proxy started for this module with small limits (the
session's proxy keeps its defaults for the other tests), while another run of the same proxy
must still be answered by the upstream. The proxy's stderr must stay small and its resident
memory bounded, compared to a baseline taken in the same test.

The attacks talk to a run's socket directly, as a sandbox's relay does for each of its
connections. Request bodies are sent as plain HTTP: the proxy buffers them the same way as
inside a TLS tunnel, and a client whose send fails can still read the refusal.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_NAMES, client_for, vault_key_of
from tests.security.conftest import API
from tests.security.pressure import Closed, Peak, unix, wait_for
from tests.security.wire import Conn, Response, build
from tests.support.harness import ProxyHarness, Run, start_proxy
from tests.support.upstream import Upstream, new_tag, only_received_with, received_with, tagged

MIB = 1024 * 1024
CAP = 64  # connections per run
IDLE_S = 2.0
BODY_S = 2.0
RUN_BUFFER_MIB, TOTAL_BUFFER_MIB = 24, 40
LIMITS = (
    f"--max-connections-per-run={CAP}",
    f"--idle-timeout={IDLE_S}",
    f"--body-timeout={BODY_S}",
    f"--buffer-per-run={RUN_BUFFER_MIB}",
    f"--buffer-total={TOTAL_BUFFER_MIB}",
)
# What the proxy may grow by under an attack: twice what all runs may buffer, and some room
# for connections. Each attack would take far more without the limits.
RSS_GROWTH_MB = 2 * TOTAL_BUFFER_MIB + 20
STDERR_BYTES = 4096  # a flood is a few log lines, not one (or a traceback) per connection


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, ca_file: Path) -> Iterator[ProxyHarness]:
    home = tmp_path_factory.mktemp("exhaustion")
    sockets = Path(f"/tmp/cc-exh-{os.getpid()}")
    with vault_key_of(home):
        harness = start_proxy(
            home,
            sockets,
            upstream_ca=ca_file,
            extra=(*(f"--resolve={n}:127.0.0.1" for n in TEST_NAMES), *LIMITS),
            stderr=home / "stderr.log",
        )
    yield harness
    harness.close()


# -- helpers --------------------------------------------------------------------------------
def served(proxy: ProxyHarness, run: Run, upstream: Upstream, body: bytes = b"") -> None:
    """``run`` is served: the upstream answers its request with 200 (a POST when ``body``)."""
    tag = new_tag()
    url = tagged(f"https://{API}:{upstream.port}/echo", tag)
    with client_for(run, proxy.ca_cert) as c:
        r = c.post(url, content=body) if body else c.get(url)
    assert r.status_code == 200, (r.status_code, r.headers.get("x-coatcheck-reason"))
    assert only_received_with(upstream, tag).body == body


def baseline(proxy: ProxyHarness, run: Run, upstream: Upstream) -> tuple[int, int]:
    """The service's resident memory (kB) and open files after it served ``run``."""
    served(proxy, run, upstream, b"warm-up " * 1000)
    return proxy.status("VmRSS"), proxy.open_files()


def stderr_of(proxy: ProxyHarness) -> str:
    assert proxy.stderr_log is not None
    return proxy.stderr_log.read_text(errors="replace")


def head(target: str, *headers: tuple[str, str]) -> bytes:
    return build("POST", target, [("Host", target.split("/")[2]), *headers])


def refusals(proxy: ProxyHarness, run: Run, reason: str) -> list[dict[str, object]]:
    return [e for e in proxy.audit_for(run) if e.get("reason") == reason]


# -- file descriptors -----------------------------------------------------------------------
def test_connections_held_open_are_capped_per_run(small, upstream):
    """1,000 connections held open by one run: it keeps its cap, the rest are closed at once
    with a few audit lines (not one each), and another run is still served meanwhile."""
    attacker, other = small.register(allow=[API]), small.register(allow=[API])
    base_rss, base_fds = baseline(small, other, upstream)
    held: list[socket.socket] = []
    try:
        with Peak(small) as peak:
            for _ in range(1000):
                sock = unix(attacker)
                held.append(sock)
                with contextlib.suppress(OSError):  # over the cap: closed already
                    sock.sendall(b"CONNECT ")  # not idle: only the cap can close these
            closed = Closed(held)
            wait_for("closed but the cap", lambda: closed.count() >= len(held) - CAP)
            served(small, other, upstream)
            assert closed.count() == len(held) - CAP, "the run kept more than its cap open"
            fds = small.open_files()
    finally:
        for sock in held:
            sock.close()
    assert fds <= base_fds + CAP + 16, f"{fds} open files, from {base_fds}"
    # meanwhile: at most a few accept batches (asyncio's backlog is 100) not closed yet
    assert peak.fds <= base_fds + CAP + 400, f"{peak.fds} open files, from {base_fds}"
    assert peak.rss_kb - base_rss < RSS_GROWTH_MB * 1024
    lines = refusals(small, attacker, "too_many_connections")
    assert 1 <= len(lines) <= 3, lines
    assert sum(int(str(e["refused_connections"])) for e in lines) <= len(held) - CAP
    wait_for("served again", lambda: _ok(small, attacker, upstream))  # its slots came back
    text = stderr_of(small)
    assert len(text.encode()) < STDERR_BYTES and "Traceback" not in text, text[-2000:]


def _ok(proxy: ProxyHarness, run: Run, upstream: Upstream) -> bool:
    try:
        served(proxy, run, upstream)
    except (AssertionError, httpx.HTTPError):
        return False
    return True


def test_running_out_of_files_is_a_few_log_lines_not_a_flood(tmp_path, ca_file, upstream):
    """A proxy allowed only a few open files, flooded by one run: accepts fail for a while
    (asyncio logs each failure), but its stderr gets a few one-line messages, no traceback
    per failed accept, and another run is served once the flood is over."""
    proxy = start_proxy(
        tmp_path / "home",
        Path(f"/tmp/cc-nofile-{os.getpid()}"),
        upstream_ca=ca_file,
        extra=(*(f"--resolve={n}:127.0.0.1" for n in TEST_NAMES), *LIMITS),
        stderr=tmp_path / "stderr.log",
        open_files=CAP + 48,  # the cap fits; a burst of accepts does not
    )
    try:
        attacker, other = proxy.register(allow=[API]), proxy.register(allow=[API])
        held: list[socket.socket] = []
        try:
            for _ in range(1000):
                held.append(unix(attacker))
        finally:
            for sock in held:
                sock.close()
        wait_for("served after the flood", lambda: _ok(proxy, other, upstream))
        assert proxy.proc.poll() is None, "the proxy died"
        text = stderr_of(proxy)
    finally:
        proxy.close()
    assert len(text.encode()) < 2 * STDERR_BYTES and "Traceback" not in text, text[-2000:]


def test_idle_connections_are_closed(small, upstream):
    """Connections that never send a request don't keep the run's slots: the proxy closes
    them after the idle timeout, and the run (and another one) can connect again."""
    attacker, other = small.register(allow=[API]), small.register(allow=[API])
    held = [unix(attacker) for _ in range(CAP)]
    try:
        closed = Closed(held)
        served(small, other, upstream)
        wait_for("closed when idle", lambda: closed.count() == len(held))
    finally:
        for sock in held:
            sock.close()
    served(small, attacker, upstream)
    assert refusals(small, attacker, "too_many_connections") == []


# -- memory ---------------------------------------------------------------------------------
def test_slow_bodies_are_bounded_per_run_and_timed_out(small, upstream):
    """60 connections each start a 16 MiB body under ``--on-leak block`` (buffered for
    inspection), send 4 MiB of it and stall: the run holds at most its budget (the others get
    429 ``buffer_full``), the stalled ones get 408 ``body_timeout``, nothing reaches the
    upstream, another run is served, memory stays bounded and is given back."""
    attacker = small.register(allow=[API], on_leak="block")
    other = small.register(allow=[API], on_leak="block")
    base_rss, _ = baseline(small, other, upstream)
    tag = new_tag()
    target = tagged(f"http://{API}:{upstream.port}/echo", tag)
    piece = b"s" * (4 * MIB)
    conns: list[Conn] = []
    with Peak(small) as peak:
        for _ in range(60):
            conn = Conn(unix(attacker))
            conn.send(head(target, ("Content-Length", str(16 * MIB))))
            with contextlib.suppress(OSError):  # refused (429) midway: the proxy closed
                conn.send(piece)
            conns.append(conn)
        served(small, other, upstream, b"x" * 1000)  # its buffered body still fits
        answers = [_answer(conn) for conn in conns]
    assert peak.rss_kb - base_rss < RSS_GROWTH_MB * 1024, (peak.rss_kb, base_rss)
    statuses = {(a.status, a.refusal) for a in answers}
    assert statuses <= {(408, "body_timeout"), (429, "buffer_full")}, statuses
    assert statuses == {(408, "body_timeout"), (429, "buffer_full")}, statuses
    assert received_with(upstream, tag) == []
    served(small, attacker, upstream, b"r" * (RUN_BUFFER_MIB // 2 * MIB))  # its budget is back
    assert small.status("VmRSS") - base_rss < RSS_GROWTH_MB * 1024
    assert len(refusals(small, attacker, "body_timeout")) == len(
        [a for a in answers if a.status == 408]
    )
    assert "Traceback" not in stderr_of(small)


def _answer(conn: Conn) -> Response:
    with conn:
        return conn.read()


def test_big_chunked_upload_is_refused_at_the_inspection_cap(small, upstream):
    """A 400 MiB chunked upload under ``--on-leak block``: 413 ``too_large`` once the 16 MiB
    cap is passed, without reading the rest; memory stays bounded; another run is served."""
    attacker = small.register(allow=[API], on_leak="block")
    other = small.register(allow=[API])
    base_rss, _ = baseline(small, other, upstream)
    tag = new_tag()
    target = tagged(f"http://{API}:{upstream.port}/echo", tag)
    chunk = b"%x\r\n%s\r\n" % (MIB, b"c" * MIB)
    sent = 0
    with Peak(small) as peak, Conn(unix(attacker)) as conn:
        conn.send(head(target, ("Transfer-Encoding", "chunked")))
        try:
            for i in range(400):
                conn.send(chunk)
                sent += MIB
                if i == 4:
                    served(small, other, upstream)
        except OSError:
            pass  # the proxy answered and stopped reading
        resp = conn.read()
    assert (resp.status, resp.refusal) == (413, "too_large")
    assert sent < 48 * MIB, f"the proxy read {sent // MIB} MiB of a body it could not inspect"
    assert peak.rss_kb - base_rss < RSS_GROWTH_MB * 1024, (peak.rss_kb, base_rss)
    assert received_with(upstream, tag) == []
    [line] = refusals(small, attacker, "too_large")
    assert line["status"] == 413


def test_declared_length_over_the_cap_is_refused_before_the_body(small, upstream):
    """``Content-Length: 400 MiB`` under ``--on-leak block``: the 413 comes right after the
    head; the client need not send (nor the proxy read) any of the body."""
    attacker = small.register(allow=[API], on_leak="block")
    tag = new_tag()
    target = tagged(f"http://{API}:{upstream.port}/echo", tag)
    with Conn(unix(attacker)) as conn:
        conn.send(head(target, ("Content-Length", str(400 * MIB))))
        resp = conn.read()
        assert (resp.status, resp.refusal) == (413, "too_large")
        assert conn.is_closed()
    assert received_with(upstream, tag) == []
