"""The notifier against a real local HTTP server and a real command; no real domains."""

from __future__ import annotations

import io
import json
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core import logs
from runner.notify import KINDS, Notifier, retry_delay, slack_message, url_problem

BASE = "https://coatcheck.test"
SECRET_NAME = "SLACK_WEBHOOK_URL"


class Hook:
    """A webhook receiver on 127.0.0.1 that answers from a script, then 200."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str]]] = []
        self.bodies: list[dict] = []
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.release.set()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.bodies.append(json.loads(body))
                hook.arrived.set()
                hook.release.wait(10)
                status, headers = hook.script.pop(0) if hook.script else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/XXXXSECRET"


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    thread = threading.Thread(target=h.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield h
    h.release.set()
    h.server.shutdown()
    h.server.server_close()
    thread.join()


@pytest.fixture
def log() -> io.StringIO:
    return io.StringIO()


def lines(log: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in log.getvalue().splitlines()]


def notifier(hook: Hook, log: io.StringIO, delays: list[float], **kw) -> Notifier:
    return Notifier(
        base_url=BASE + "/",
        url_secret=SECRET_NAME,
        resolve_url={SECRET_NAME: hook.url}.__getitem__,
        sleep=delays.append,
        log=logs.json_logger(log),
        **kw,
    )


def fire(n: Notifier, kind: str = "failure", run_id: str = "r-1") -> bool:
    return n.notify(kind, run_id=run_id, deployment="nightly", status="failed", reason="exit 3")


def test_a_failing_server_gets_the_message_once_after_backoff(hook, log):
    hook.script = [(500, {}), (503, {})]
    delays: list[float] = []
    n = notifier(hook, log, delays)
    assert fire(n)
    assert n.close(10)
    assert len(hook.bodies) == 3 and hook.bodies[0] == hook.bodies[2]
    assert delays == [1.0, 2.0]
    text = hook.bodies[-1]["text"]
    assert "nightly" in text and "r-1" in text and "exit 3" in text
    assert f"{BASE}/runs/r-1" in text
    outcomes = [(x["outcome"], x["attempts"]) for x in lines(log)]
    assert outcomes == [("retry", 1), ("retry", 2), ("delivered", 3)]
    assert lines(log)[-1] | {"ts": None} == {
        "event": "notify", "run_id": "r-1", "kind": "failure", "deployment": "nightly",
        "channel": "webhook", "outcome": "delivered", "attempts": 3, "secret": SECRET_NAME,
        "reason": "HTTP 200", "ts": None,
    }  # fmt: skip


def test_retry_after_is_honoured_on_429(hook, log):
    hook.script = [(429, {"Retry-After": "7"})]
    delays: list[float] = []
    n = notifier(hook, log, delays)
    fire(n)
    assert n.close(10)
    assert delays == [7.0] and len(hook.bodies) == 2


def test_it_gives_up_after_five_attempts_and_on_a_permanent_error(hook, log):
    hook.script = [(500, {})] * 5 + [(404, {})]
    delays: list[float] = []
    n = notifier(hook, log, delays)
    fire(n, run_id="r-1")
    fire(n, run_id="r-2")
    assert n.close(10)
    assert delays == [1.0, 2.0, 4.0, 8.0] and len(hook.bodies) == 6
    finals = [
        (x["run_id"], x["outcome"], x["reason"]) for x in lines(log) if x["outcome"] != "retry"
    ]
    assert finals == [("r-1", "gave_up", "HTTP 500"), ("r-2", "failed", "HTTP 404")]


def test_a_redirect_is_not_followed(hook, log):
    hook.script = [(302, {"Location": "http://127.0.0.1:1/elsewhere"})]
    n = notifier(hook, log, [])
    fire(n)
    assert n.close(10)
    assert len(hook.bodies) == 1 and lines(log)[-1]["outcome"] == "failed"


def test_one_message_per_run_and_kind(hook, log):
    sent: set[tuple[str, str]] = {("r-0", "failure")}
    n = notifier(hook, log, [], already_sent=lambda r, k: (r, k) in sent,
                 mark_sent=lambda r, k: sent.add((r, k)))  # fmt: skip
    assert fire(n) and not fire(n)
    assert fire(n, "timeout")
    assert fire(n, run_id="r-0")  # persisted by the caller: skipped in the worker
    assert n.close(10)
    assert len(hook.bodies) == 2
    assert sent == {("r-0", "failure"), ("r-1", "failure"), ("r-1", "timeout")}
    assert lines(log)[-1]["outcome"] == "duplicate"


def test_notify_returns_while_the_server_is_still_answering(hook, log):
    hook.release.clear()
    n = notifier(hook, log, [])
    assert fire(n)
    assert hook.arrived.wait(10)  # the POST is in flight...
    assert fire(n, "timeout")  # ...and the caller is not held up
    assert log.getvalue() == ""
    hook.release.set()
    assert n.close(10)
    assert len(hook.bodies) == 2


def test_the_url_never_reaches_the_logs(hook, log):
    hook.script = [(500, {})]
    n = notifier(hook, log, [])
    fire(n)
    assert n.close(10)
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}/services/XXXXSECRET"
        gone = Notifier(base_url=BASE, url_secret="DEAD", resolve_url=lambda _: dead_url,
                        sleep=lambda _: None, attempts=2, log=logs.json_logger(log))  # fmt: skip
        fire(gone)
        assert gone.close(10)
    text = log.getvalue()
    assert "XXXXSECRET" not in text and "127.0.0.1" not in text and "services" not in text
    assert SECRET_NAME in text and "DEAD" in text
    assert lines(log)[-1]["reason"] == "ConnectionError"
    assert lines(log)[-1]["outcome"] == "gave_up"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://hooks.slack.test/services/x", None),
        ("http://127.0.0.1:9/x", None),
        ("http://localhost/x", None),
        ("http://[::1]:9/x", None),
        ("http://hooks.slack.test/services/x", "must be https"),
        ("http://127.0.0.1.evil.test/x", "must be https"),
        ("ftp://hooks.slack.test/x", "must be https"),
        ("https:///x", "no host"),
        ("hooks.slack.test/x", "no host"),
        ("http://[::1/x", "malformed"),
    ],
    ids=["https", "http-loopback", "http-localhost", "http-ipv6-loopback", "http-remote",
         "loopback-lookalike", "ftp", "no-host", "no-scheme", "malformed"],
)  # fmt: skip
def test_only_https_or_loopback_http(url, problem):
    got = url_problem(url)
    assert got is None if problem is None else problem in got
    assert got is None or "slack" not in got


def test_a_refused_url_is_logged_by_its_secret_name(log):
    posts: list[str] = []
    n = Notifier(base_url=BASE, url_secret="HOOK", resolve_url=lambda _: "http://x.test/SECRET",
                 post=lambda url, *_: posts.append(url), log=logs.json_logger(log))  # fmt: skip
    fire(n)
    assert n.close(10)
    assert posts == [] and "SECRET" not in log.getvalue()
    assert lines(log)[-1]["outcome"] == "refused" and lines(log)[-1]["secret"] == "HOOK"


def test_a_command_gets_the_event_in_env_and_stdin_and_no_secret(tmp_path: Path, log, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-must-not-pass")
    out = tmp_path / "got.json"
    script = tmp_path / "on_event.py"
    script.write_text(
        "import json, os, sys\n"
        "env = {k: v for k, v in os.environ.items()}\n"
        f"open({str(out)!r}, 'w').write(json.dumps({{'env': env, 'stdin': sys.stdin.read(),"
        " 'argv': sys.argv}))\n"
    )
    n = Notifier(base_url=BASE, command=[sys.executable, str(script), "--fixed"],
                 kinds=frozenset(KINDS), log=logs.json_logger(log))  # fmt: skip
    assert n.notify("success", run_id="r/9", deployment="d", status="succeeded")
    assert n.close(30)
    got = json.loads(out.read_text())
    assert got["argv"][1:] == ["--fixed"]
    env = got["env"]
    assert env["COATCHECK_EVENT"] == "success" and env["COATCHECK_RUN_ID"] == "r/9"
    assert env["COATCHECK_DEPLOYMENT"] == "d" and env["COATCHECK_STATUS"] == "succeeded"
    assert env["COATCHECK_REASON"] == "" and env["COATCHECK_RUN_URL"] == f"{BASE}/runs/r%2F9"
    assert "ANTHROPIC_API_KEY" not in env and "sk-must-not-pass" not in out.read_text()
    assert json.loads(got["stdin"])["run_url"] == env["COATCHECK_RUN_URL"]
    assert lines(log)[-1] | {"ts": None} == lines(log)[-1] | {
        "channel": "command", "outcome": "delivered", "attempts": 1, "ts": None}  # fmt: skip


def test_a_failing_command_is_retried(tmp_path: Path, log):
    delays: list[float] = []
    n = Notifier(base_url=BASE, command=[sys.executable, "-c", "raise SystemExit(4)"],
                 sleep=delays.append, attempts=2, log=logs.json_logger(log))  # fmt: skip
    fire(n)
    assert n.close(30)
    assert delays == [1.0]
    assert [(x["outcome"], x["reason"]) for x in lines(log)] == [
        ("retry", "exit 4"), ("gave_up", "exit 4")]  # fmt: skip


def test_success_is_off_unless_asked_and_nothing_configured_sends_nothing(log):
    n = Notifier(base_url=BASE, command=["true"], log=logs.json_logger(log))
    assert not n.notify("success", run_id="r", deployment="d", status="succeeded")
    assert n.close(10)
    bare = Notifier(base_url=BASE, log=logs.json_logger(log))
    assert not fire(bare) and bare.close(10)
    with pytest.raises(ValueError, match="unknown notification kind"):
        fire(bare, "exploded")
    assert not fire(bare)  # closed


def test_the_message_escapes_slack_markup():
    from runner.notify import RunEvent

    event = RunEvent("failure", "r-1", "d", "failed", "<!channel> & <https://evil.test|x>",
                     f"{BASE}/runs/r-1")  # fmt: skip
    message = slack_message(event)
    assert "<!channel>" not in message["text"] and "&lt;!channel&gt; &amp;" in message["text"]
    assert message["blocks"][0]["text"]["text"] == message["text"]


@pytest.mark.parametrize(
    ("attempt", "retry_after", "delay"),
    [(1, None, 1.0), (2, None, 2.0), (4, None, 8.0), (1, "30", 30.0), (1, "99999", 300.0),
     (1, "soon", 1.0), (1, "Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
     (1, "Wed, 21 Oct 2015 07:27:00 GMT", 0.0)],
    ids=["first", "second", "fourth", "seconds", "capped", "garbage", "http-date", "past-date"],
)  # fmt: skip
def test_retry_delay(attempt, retry_after, delay):
    assert retry_delay(attempt, retry_after, now=1445412480.0) == delay
