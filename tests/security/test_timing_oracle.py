"""A timing oracle in the scrubber: what the proxy holds back must not say what a value is.

The attack: a job asks an allowlisted streaming echo (no secret needed for that host) to end a
chunk with a guess. A scrubber that held back only a possible start of a value would pass a
wrong guess at once and a right one only with the next chunk, so the job would learn the value
a character at a time. Here the upstream sends the guess, then waits on a :class:`Hold` until
the test has read what reached the client: whether the guess got through comes from the order
of events, never a clock (the socket timeout only bounds a failure).

And the incident: a full real value in a response to a request that carried none is not
scrubbed but stops the response (``unexpected_value``): the connection is killed (or the
response refused with 502 when it was not yet sent), under ``--on-leak block`` the run is cut
off; a response to a request that carried a value is still scrubbed, across chunks too.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.security.conftest import API, OTHER, Trail
from tests.security.hostile import Server, pct_mixed, u_escaped
from tests.security.pressure import wait_for
from tests.security.wire import Closed, Conn, Response, build, open_tunnel
from tests.support.harness import Run
from tests.support.upstream import Hold, tagged

READ_S = 10.0  # bounds a failure only: a held-back guess would make the read wait this long


@pytest.fixture
def run(proxy, secret) -> Run:  # type: ignore[no-untyped-def]
    secret("ORACLE_TOKEN")  # the canary, for API; OTHER is reachable with no secret
    return proxy.register(("ORACLE_TOKEN",), allow=[OTHER])


def _start(run: Run, proxy, port: int, host: str, path: str, headers=()) -> tuple[Conn, Response]:  # type: ignore[no-untyped-def]
    conn = open_tunnel(run.proxy_url, f"{host}:{port}", proxy.ca_cert, sni=host)
    conn.send(build("GET", path, [("Host", f"{host}:{port}"), *headers]))
    conn.sock.settimeout(READ_S)
    return conn, conn.read(head_only=True)


def _body(conn: Conn, at_least: int | None = None) -> tuple[bytes, bool]:
    """Chunked body bytes: ``at_least`` of them, or all; and whether the body ended properly
    (False: the connection was closed or reset first)."""
    got = b""
    try:
        while at_least is None or len(got) < at_least:
            size = int(conn.file.readline().split(b";")[0] or b"x", 16)
            if size == 0:
                conn.file.readline()
                return got, True
            got += conn.file.read(size)
            conn.file.readline()
    except (OSError, ValueError, Closed):
        return got, False
    return got, True


def _held_echo(hostile: Server, tag: str, hold: Hold, first: str, **more: str) -> str:
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in {"a": first, **more}.items())
    return tagged(f"/held-echo?hold={hold.id}&{query}", tag)


def _wrong(guess: str, right: str) -> str:
    """``guess`` with its last character changed: the same length, no longer a prefix."""
    return guess[:-1] + ("0" if right[len(guess) - 1] != "0" else "1")


SPELLINGS = {
    "raw": lambda text: text.encode(),
    "json-u-escaped-ending-inside-an-escape": lambda text: u_escaped(text) + b"\\u00",
    "percent-encoded": lambda text: pct_mixed(text.encode()),
}


@pytest.mark.parametrize("spell", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_a_right_guess_arrives_exactly_when_a_wrong_one_does(
    proxy, hostile, run, canary, tag, spell
):
    """Both guesses, every character of the value but the last right or one wrong, reach the
    client whole while the upstream is still holding its next chunk."""
    arrived = {}
    for kind, guess in (("right", canary[:-1]), ("wrong", _wrong(canary[:-1], canary))):
        first = "x=" + spell(guess).decode()
        hold = hostile.hold()
        path = _held_echo(hostile, tag, hold, first, b="\n")
        conn, head = _start(run, proxy, hostile.port, OTHER, path)
        with conn:
            assert head.status == 200, head.raw()
            try:
                early, _ = _body(conn, len(first))
            finally:
                hold.release()  # the upstream's next chunk: only now
            rest, complete = _body(conn)
        assert not hold.gave_up, "the test never read the guess while the upstream held"
        assert (early, complete) == (first.encode(), True), kind
        arrived[kind] = (early, rest)
    assert len(arrived["right"][0]) == len(arrived["wrong"][0])
    wait_for("audited", lambda: len(proxy.audit_for(run)) == 2)
    assert [e["decision"] for e in proxy.audit_for(run)] == ["allow"] * 2


def test_a_full_value_in_a_stream_to_a_request_that_carried_none_kills_it(
    proxy, hostile, run, canary, tag
):
    """The echo sends half the value, waits, then the other half: the first half reaches the
    client (nothing is held back: it is what the job sent), the rest never does."""
    half = len(canary) // 2
    hold = hostile.hold()
    path = _held_echo(hostile, tag, hold, "t=" + canary[:half], b=canary[half:] + "\n")
    conn, head = _start(run, proxy, hostile.port, OTHER, path)
    with conn:
        assert head.status == 200, head.raw()
        try:
            early, _ = _body(conn, len("t=") + half)
        finally:
            hold.release()
        rest, complete = _body(conn)
    assert early == f"t={canary[:half]}".encode()
    assert not complete, "the stream that completed a real value was not cut"
    assert canary.encode() not in early + rest
    wait_for("audited", lambda: len(proxy.audit_for(run)) == 1)
    [line] = proxy.audit_for(run)
    assert (line["decision"], line["reason"]) == ("deny", "unexpected_value"), line
    Trail(proxy, (hostile,)).assert_contained(canary, may_reach=(OTHER,), seen=(early + rest,))


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/json-u-all", id="buffered-json-u-escaped"),
        pytest.param("/header-name", id="in-a-header-name"),
    ],
)
def test_a_full_value_in_a_small_response_to_a_request_that_carried_none_is_refused(
    proxy, hostile, run, canary, tag, path
):
    """The whole response is read before any of it goes out: it is replaced by a 502."""
    query = f"src=query&key={canary}"
    conn, head = _start(run, proxy, hostile.port, OTHER, tagged(f"{path}?{query}", tag))
    with conn:
        body = conn.file.read(int(head.header("Content-Length") or 0))
    assert (head.status, head.refusal) == (502, "unexpected_value"), head.raw()
    wait_for("audited", lambda: len(proxy.audit_for(run)) == 1)
    [line] = proxy.audit_for(run)
    assert (line["status"], line["reason"]) == (502, "unexpected_value"), line
    seen = (head.raw(), body)
    Trail(proxy, (hostile,)).assert_contained(canary, may_reach=(OTHER,), seen=seen)


def test_under_on_leak_block_the_incident_cuts_the_run_off(proxy, hostile, secret, canary, tag):
    secret("ORACLE_TOKEN")
    run = proxy.register(("ORACLE_TOKEN",), allow=[OTHER], on_leak="block")
    query = f"src=query&key={canary}"
    conn, head = _start(run, proxy, hostile.port, OTHER, tagged(f"/json-u-all?{query}", tag))
    conn.close()
    assert head.refusal == "unexpected_value"
    ph = run.placeholders["ORACLE_TOKEN"]
    for host in (OTHER, API):  # a new connection, to either host, with or without a value
        conn, later = _start(run, proxy, hostile.port, host, tagged("/ok", tag), [
            ("Authorization", f"Bearer {ph}"),
        ])  # fmt: skip
        conn.close()
        assert (later.status, later.refusal) == (403, "unexpected_value"), later.raw()
    assert [r.path.split("?")[0] for r in hostile.received if tag in r.path] == ["/json-u-all"]


def test_a_value_echoed_to_the_request_that_carried_it_is_scrubbed_across_chunks(
    proxy, hostile, run, canary, tag
):
    """The upstream echoes the credential it got, cut in two chunks around its hold."""
    ph = run.placeholders["ORACLE_TOKEN"]
    hold = hostile.hold()
    split = str(len("token=") + len(canary) // 2)
    path = _held_echo(hostile, tag, hold, "token=", b="\n", echo="1", split=split)
    conn, head = _start(run, proxy, hostile.port, API, path, [("Authorization", f"Bearer {ph}")])
    with conn:
        hold.release()
        body, complete = _body(conn)
    assert (head.status, complete) == (200, True), head.raw()
    assert body == f"token={ph}\n".encode()
    wait_for("audited", lambda: len(proxy.audit_for(run)) == 1)
    assert [e["secrets_injected"] for e in proxy.audit_for(run)] == [["ORACLE_TOKEN"]]
    Trail(proxy, (hostile,)).assert_contained(canary, may_reach=(API,), seen=(body,))


def test_an_event_that_ends_is_passed_at_once_to_a_request_that_carried_a_value(
    proxy, hostile, run, canary, tag
):
    """Latency: the hold is fixed, but a blank line (no spelling of a value spans one) ends
    it, so a server-sent event goes out whole at once, scrubbed."""
    ph = run.placeholders["ORACLE_TOKEN"]
    hold = hostile.hold()
    first = 'data: {"echo": "'
    split = str(len(first) + len(canary) + len('"}\n\n'))
    more = {"b": '"}\n\ndata: [DONE]\n\n', "echo": "1", "split": split, "type": "text/event-stream"}
    path = _held_echo(hostile, tag, hold, first, **more)
    conn, head = _start(run, proxy, hostile.port, API, path, [("Authorization", f"Bearer {ph}")])
    event = f'data: {{"echo": "{ph}"}}\n\n'.encode()
    with conn:
        try:
            early, _ = _body(conn, len(event))
        finally:
            hold.release()
        rest, complete = _body(conn)
    assert not hold.gave_up, "the event was held until the upstream's next chunk"
    assert (head.status, early, rest, complete) == (200, event, b"data: [DONE]\n\n", True)
