"""Notifications: nobody finds out by accident that an unattended job failed.

On a run event (`KINDS`) the `Notifier` posts a Slack-compatible JSON message to a webhook
URL and/or runs a local command. Both are sent from the host, by one background thread, so
`Notifier.notify` never blocks the scheduler. Each channel is retried with exponential backoff
(1, 2, 4, 8 s; 5 attempts; ``Retry-After`` honoured on 429) and each (run, kind) is sent once.

The URL is a vault secret: ``resolve_url(name)`` is called at send time and the URL is never
logged, only the secret's name. It must be ``https``; plain ``http`` is accepted only for a
loopback host (127.0.0.1, ::1, localhost), for local relays and tests. Redirects are refused.
The command is an argv list, never run through a shell; it gets the event in ``COATCHECK_*``
environment variables and as JSON on stdin, and a minimal environment with no secret in it.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import os
import queue
import subprocess
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from core import logs

KINDS = ("failure", "timeout", "missed", "auto_pause", "success", "warning")
DEFAULT_KINDS = frozenset(KINDS) - {"success"}
_HEADLINES = {"failure": "failed", "timeout": "timed out", "success": "succeeded",
              "missed": "missed a scheduled run",
              "auto_pause": "was paused after repeated failures",
              "warning": "ran with a warning"}  # fmt: skip
ATTEMPTS = 5
BACKOFF = 1.0  # seconds before the 2nd attempt; doubles after each failure
MAX_DELAY = 300.0  # cap on a server's Retry-After
POST_TIMEOUT, COMMAND_TIMEOUT = 10.0, 30.0  # seconds
REMEMBERED, QUEUED = 10_000, 1_000  # (run, kind) pairs kept for dedupe; events waiting
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME")

# Keys of the notify log line (to move into core.logs).
NOTIFY_EVENT = "notify"
KIND, CHANNEL, OUTCOME, ATTEMPT_COUNT = "kind", "channel", "outcome", "attempts"
SECRET, DEPLOYMENT = "secret", "deployment"


@dataclass(frozen=True)
class RunEvent:
    """What happened to a run; the same fields reach the webhook, the command and the logs."""

    event: str  # one of KINDS
    run_id: str
    deployment: str
    status: str
    reason: str
    run_url: str


class PostResult(NamedTuple):
    """The outcome of one POST: an HTTP status, or 0 and the exception's class name."""

    status: int
    retry_after: str | None = None
    error: str | None = None


class _Try(NamedTuple):
    final: str | None  # "delivered" or "failed"; None to try again
    reason: str
    retry_after: str | None = None


Post = Callable[[str, bytes, Mapping[str, str], float], PostResult]


def requests_post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> PostResult:
    """POST with requests, no redirects; an exception becomes its class name (its message may
    hold the URL, so it is never kept)."""
    import requests

    try:
        response = requests.post(
            url, data=body, headers=dict(headers), timeout=timeout, allow_redirects=False
        )
    except requests.RequestException as e:
        return PostResult(0, error=type(e).__name__)
    response.close()
    return PostResult(response.status_code, response.headers.get("Retry-After"))


def slack_message(event: RunEvent) -> dict[str, Any]:
    """A Slack-compatible message: ``text`` (the fallback) and one ``section`` block."""

    def esc(text: str) -> str:  # Slack mrkdwn: no mentions or links smuggled in a reason
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    head = f"coatcheck: deployment {esc(event.deployment)} {_HEADLINES[event.event]}"
    detail = f"run {esc(event.run_id)}: {esc(event.status)}"
    if event.reason:
        detail += f" ({esc(event.reason)})"
    text = f"{head}\n{detail}\n<{esc(event.run_url)}|View the run>"
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def url_problem(url: str) -> str | None:
    """Why a webhook URL is refused, or None. The reason never contains the URL."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "the notification URL is malformed"
    if not host:
        return "the notification URL has no host"
    if parts.scheme == "https" or (parts.scheme == "http" and host in _LOOPBACK):
        return None
    return "the notification URL must be https (http only for a loopback host)"


def retry_delay(attempt: int, retry_after: str | None = None, *, now: float | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): the server's
    ``Retry-After`` (seconds or an HTTP date, capped) when given, else 1, 2, 4, 8..."""
    if retry_after:
        value = retry_after.strip()
        if value.isdigit():
            return min(float(value), MAX_DELAY)
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            pass
        else:
            return min(max(when - (time.time() if now is None else now), 0.0), MAX_DELAY)
    return BACKOFF * 2 ** (attempt - 1)


class Notifier:
    """Sends run events to a webhook (the URL held in the vault secret ``url_secret``) and/or
    a command, from one background thread. Start it, `notify` from anywhere, `close` at exit."""

    def __init__(
        self,
        *,
        base_url: str,
        url_secret: str | None = None,
        resolve_url: Callable[[str], str] | None = None,
        command: Sequence[str] | None = None,
        kinds: frozenset[str] = DEFAULT_KINDS,
        post: Post = requests_post,
        sleep: Callable[[float], None] = time.sleep,
        log: Any = None,
        already_sent: Callable[[str, str], bool] | None = None,
        mark_sent: Callable[[str, str], None] | None = None,
        attempts: int = ATTEMPTS,
        command_timeout: float = COMMAND_TIMEOUT,
    ) -> None:
        if url_secret is not None and resolve_url is None:
            raise ValueError("a webhook secret name needs resolve_url to read it from the vault")
        if command is not None and (not command or not all(isinstance(a, str) for a in command)):
            raise ValueError("the notification command must be a non-empty list of strings")
        if unknown := set(kinds) - set(KINDS):
            raise ValueError(f"unknown notification kinds {sorted(unknown)}; use {KINDS}")
        self._base_url = base_url.rstrip("/")
        self._url_secret, self._resolve_url = url_secret, resolve_url
        self._command = tuple(command) if command is not None else None
        self._kinds, self._post, self._sleep = kinds, post, sleep
        self._log = log if log is not None else logs.json_logger()
        self._already_sent, self._mark_sent = already_sent, mark_sent
        self._attempts, self._command_timeout = max(1, attempts), command_timeout
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()
        self._queue: queue.Queue[RunEvent | None] = queue.Queue(QUEUED)
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="coatcheck-notify", daemon=True)
        self._thread.start()

    def notify(
        self, kind: str, *, run_id: str, deployment: str, status: str, reason: str = ""
    ) -> bool:
        """Queue a notification and return at once: True when queued, False when this kind is
        not wanted, nothing is configured, it was already sent for this run, or the queue is
        full (logged)."""
        if kind not in KINDS:
            raise ValueError(f"unknown notification kind {kind!r}; use one of {KINDS}")
        if kind not in self._kinds or (self._url_secret is None and self._command is None):
            return False
        url = f"{self._base_url}/runs/{urllib.parse.quote(run_id, safe='')}"
        event = RunEvent(kind, run_id, deployment, status, reason, url)
        with self._lock:
            if self._closed or (run_id, kind) in self._seen:
                return False
            self._seen[(run_id, kind)] = None
            while len(self._seen) > REMEMBERED:
                self._seen.popitem(last=False)
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                self._outcome(event, "all", "dropped", 0, "notification queue full")
                return False
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Send what is queued, then stop the thread; False if it was still busy at timeout."""
        with self._lock:
            first, self._closed = not self._closed, True
        if first:  # outside the lock: a full queue must not hold up notify()
            self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _work(self) -> None:
        while (event := self._queue.get()) is not None:
            try:
                self._deliver(event)
            except Exception as e:  # a hook or a bug must not kill the thread
                self._outcome(event, "all", "error", 0, type(e).__name__)

    def _deliver(self, event: RunEvent) -> None:
        if self._already_sent is not None and self._already_sent(event.run_id, event.event):
            self._outcome(event, "all", "duplicate", 0)
            return
        if self._url_secret is not None:
            self._send_webhook(event, self._url_secret)
        if self._command is not None:
            self._retry(event, "command", lambda: self._run_command(event))
        if self._mark_sent is not None:  # after the last attempt, delivered or not
            self._mark_sent(event.run_id, event.event)

    def _send_webhook(self, event: RunEvent, name: str) -> None:
        assert self._resolve_url is not None
        try:
            url = self._resolve_url(name)
        except Exception as e:  # the vault's error class only; its message is not kept
            why = f"can't read the secret: {type(e).__name__}"
            self._outcome(event, "webhook", "failed", 0, why, name)
            return
        if problem := url_problem(url):
            self._outcome(event, "webhook", "refused", 0, problem, name)
            return
        body = json.dumps(slack_message(event)).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "coatcheck"}
        self._retry(event, "webhook", lambda: self._post_once(url, body, headers), name)

    def _post_once(self, url: str, body: bytes, headers: Mapping[str, str]) -> _Try:
        result = self._post(url, body, headers, POST_TIMEOUT)
        if 200 <= result.status < 300:
            return _Try("delivered", f"HTTP {result.status}")
        if result.status == 0:
            return _Try(None, result.error or "connection error")
        if result.status in (408, 425, 429) or result.status >= 500:
            return _Try(None, f"HTTP {result.status}", result.retry_after)
        return _Try("failed", f"HTTP {result.status}")  # 3xx (not followed) and other 4xx

    def _run_command(self, event: RunEvent) -> _Try:
        assert self._command is not None
        env = {k: v for k, v in os.environ.items() if k in _PASSED_ENV}
        env.update({f"COATCHECK_{k.upper()}": v for k, v in asdict(event).items()})
        try:
            done = subprocess.run(
                self._command,
                input=json.dumps(asdict(event)).encode(),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=self._command_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return _Try(None, f"timed out after {self._command_timeout:g}s")
        except OSError as e:
            return _Try("failed", f"can't run the command: {type(e).__name__}")
        if done.returncode == 0:
            return _Try("delivered", "exit 0")
        return _Try(None, f"exit {done.returncode}")

    def _retry(
        self, event: RunEvent, channel: str, once: Callable[[], _Try], secret: str | None = None
    ) -> None:
        attempt, result = 1, once()
        while result.final is None and attempt < self._attempts:
            self._outcome(event, channel, "retry", attempt, result.reason, secret)
            self._sleep(retry_delay(attempt, result.retry_after))
            attempt, result = attempt + 1, once()
        self._outcome(event, channel, result.final or "gave_up", attempt, result.reason, secret)

    def _outcome(
        self, event: RunEvent, channel: str, outcome: str, attempts: int,
        reason: str = "", secret: str | None = None,
    ) -> None:  # fmt: skip
        """The log line of one attempt's outcome: names only, never the URL or a secret."""
        fields = {logs.RUN_ID: event.run_id, KIND: event.event, DEPLOYMENT: event.deployment,
                  CHANNEL: channel, OUTCOME: outcome, ATTEMPT_COUNT: attempts}  # fmt: skip
        if secret is not None:
            fields[SECRET] = secret
        with contextlib.suppress(Exception):  # a broken log stream must not stop notifications
            self._log.info(NOTIFY_EVENT, **fields, **{logs.REASON: reason})
