"""Helpers of the web console's browser tests: Debian's headless Chromium driven by Selenium
(the system browser and chromedriver, never a download), a real ``coatcheck serve`` with a
private home, its history seeded without Docker, and screenshots of every page as CI artifacts.

Waiting is on what the browser or the service makes observable (``WebDriverWait``,
``wait_for``), never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.sandbox.helpers import Home, coatcheck
from tests.serve.helpers import Service, free_port, start_serve, wait_for

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("COATCHECK_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("COATCHECK_CHROMEDRIVER", "/usr/bin/chromedriver")
REQUIRE_BROWSER = "COATCHECK_REQUIRE_BROWSER"
WAIT_S = 20.0
SESSION_COOKIE = "coatcheck_session"
TOKEN_RE = re.compile(r"ccadm_[A-Za-z0-9_\-]+")

# Attacker-controlled text: the agent, the sandbox and upstreams wrote it. Every payload sets
# window.__pwned if it ever runs; the page must show it as text.
SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=2">'
TOOL_SCRIPT = "<script>window.__pwned=3</script>"
RESULT_PAYLOAD = '<script>window.__pwned=4</script><img src=x onerror="window.__pwned=5">'
OUTPUT_PAYLOAD = "<script>window.__pwned=6</script>"
REPORT_PAYLOAD = '<script>window.__pwned=7</script><img src=x onerror="window.__pwned=8">'
AUDIT_PATH = "/<script>window.__pwned=9</script>"

NIGHTLY_TOML = """name = "nightly"
command = ["true"]
[schedule]
cron = "0 3 * * *"
timezone = "Europe/Berlin"
"""


def job_toml(name: str, cron: str | None = None) -> str:
    text = f'name = "{name}"\ncommand = ["true"]\n'
    if cron:
        text += f'[schedule]\ncron = "{cron}"\ntimezone = "UTC"\n'
    return text


# -- the browser --------------------------------------------------------------------------
def browser_problem() -> str | None:
    """Why the browser tests can't run here (one line), or None when they can."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        return (
            f"no {' or '.join(missing)}: install Debian's chromium and chromium-driver "
            "(apt-get install chromium chromium-driver)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError as exc:
        return f"selenium is not installed ({exc}): pip install -e '.[dev]'"
    return None


def browser_required() -> bool:
    return os.environ.get(REQUIRE_BROWSER, "") not in ("", "0")


def new_driver() -> Any:
    """Headless Chromium from the system: no Selenium Manager, no network look-up."""
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service as DriverService

    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # we run as root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--metrics-recording-only",
        "--password-store=basic",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = DriverService(executable_path=CHROMEDRIVER, log_output=os.devnull)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    driver.implicitly_wait(0)
    return driver


def screenshots_dir() -> Path:
    root = Path(os.environ.get("COATCHECK_ARTIFACTS") or REPO / "artifacts")
    path = root / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def shot(driver: Any, name: str) -> Path:
    """A screenshot of the whole page as ``<artifacts>/screenshots/<name>.png``."""
    path = screenshots_dir() / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ".png")
    height = driver.execute_script(
        "return Math.max(document.body ? document.body.scrollHeight : 0, 600)"
    )
    driver.set_window_size(1280, min(int(height) + 120, 6000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)
    return path


def wait(driver: Any, timeout: float = WAIT_S) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1)


def css(driver: Any, selector: str, timeout: float = WAIT_S) -> Any:
    """The first element matching ``selector``, waited for; a clear failure when it never
    appears (with the page's URL and title)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    try:
        return wait(driver, timeout).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, selector))
        )
    except TimeoutException:
        raise AssertionError(
            f"no element {selector!r} on {driver.current_url} (title {driver.title!r}) "
            f"after {timeout:.0f}s; page starts: {page_text(driver)[:600]!r}"
        ) from None


def all_css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def page_text(driver: Any) -> str:
    try:
        return str(driver.execute_script("return document.body ? document.body.innerText : ''"))
    except Exception:  # noqa: BLE001 - a diagnostic only
        return ""


def text_of(element: Any) -> str:
    """Everything an element holds as text, folded parts too (``textContent``)."""
    return str(element.get_attribute("textContent") or "")


def wait_text(driver: Any, selector: str, needle: str, timeout: float = WAIT_S) -> Any:
    """The element ``selector`` once its text contains ``needle``."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException

    def has() -> Any:
        for el in all_css(driver, selector):
            with contextlib.suppress(StaleElementReferenceException):
                if needle in text_of(el):
                    return el
        return False

    try:
        return wait(driver, timeout).until(lambda _d: has())
    except TimeoutException:
        now = [text_of(e)[-400:] for e in all_css(driver, selector)]
        raise AssertionError(
            f"{selector!r} on {driver.current_url} never contained {needle!r} in "
            f"{timeout:.0f}s; it holds {now!r}"
        ) from None


def wait_url(driver: Any, check: Callable[[str], bool], what: str, timeout: float = WAIT_S) -> str:
    from selenium.common.exceptions import TimeoutException

    try:
        wait(driver, timeout).until(lambda d: check(d.current_url))
    except TimeoutException:
        raise AssertionError(
            f"expected {what}; the browser is at {driver.current_url} "
            f"(title {driver.title!r}): {page_text(driver)[:400]!r}"
        ) from None
    return str(driver.current_url)


def csp_violations(driver: Any) -> list[str]:
    """Console messages of the browser that report a Content-Security-Policy refusal."""
    try:
        entries = driver.get_log("browser")
    except Exception:  # noqa: BLE001 - a driver without the log: nothing to report
        return []
    return [e["message"] for e in entries if "Content Security Policy" in e.get("message", "")]


# -- the service ----------------------------------------------------------------------------
@dataclass
class Seeded:
    """What the seed wrote: run ids, secret names and values (that no page may show)."""

    done_run: str = ""
    failed_run: str = ""
    live_run: str = ""
    secret_values: dict[str, str] = field(default_factory=dict)
    overdue_secret: str | None = None
    fresh_secret: str = ""
    artifact_text: str = ""
    report_marker: str = ""


@dataclass
class Console:
    home: Home
    service: Service
    token: str
    seeded: Seeded

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def runs_dir(self) -> Path:
        return self.home.path / "runs"

    def get(self, path: str, *, cookie: str | None = None, bearer: str | None = None,
            **headers: str) -> httpx.Response:  # fmt: skip
        if cookie is not None:
            headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        return httpx.get(self.url + path if path.startswith("/") else path, headers=headers,
                         timeout=30, trust_env=False, follow_redirects=False)  # fmt: skip

    def post_form(self, url: str, data: dict[str, str], *, cookie: str | None,
                  **headers: str) -> httpx.Response:  # fmt: skip
        if cookie is not None:
            headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
        return httpx.post(url if url.startswith("http") else self.url + url, data=data,
                          headers=headers, timeout=30, trust_env=False,
                          follow_redirects=False)  # fmt: skip

    def history(self) -> Any:
        from runner.history.db import history_path
        from runner.history.store import History

        return History.open(history_path(self.home.path))

    def deployment_status(self, name: str) -> str:
        with self.history() as h:
            return str(h.deployments.get(name).status)

    def log_tail(self) -> str:
        return self.service.log_text()[-3000:]


def login_page_ready(service: Service) -> bool:
    if service.proc.poll() is not None:
        raise AssertionError(
            f"coatcheck serve exited {service.proc.returncode}:\n{service.log_text()[-3000:]}"
        )
    try:
        r = httpx.get(service.url + "/login", timeout=2, trust_env=False)
    except httpx.HTTPError:
        return False
    if r.status_code == 404:
        raise AssertionError(
            f"coatcheck serve answers but GET /login is 404: the console's routes are not in "
            f"its HTTP app\n{service.log_text()[-1500:]}"
        )
    return r.status_code == 200


@contextlib.contextmanager
def running_console(root: Path) -> Iterator[Console]:
    """A seeded home, ``coatcheck serve`` on a free loopback port, and a login token."""
    home = Home(root)
    home.path.mkdir(mode=0o700, parents=True, exist_ok=True)
    seeded = seed(home, root)
    service = start_serve(home, root, free_port())
    try:
        wait_for(lambda: login_page_ready(service), "the console's /login to answer", 120)
        result = coatcheck(home, "serve", "token", timeout=60)
        assert result.code == 0, f"coatcheck serve token failed: {result}"
        found = TOKEN_RE.search(result.stdout)
        assert found, f"coatcheck serve token printed no ccadm_ token: {result.stdout!r}"
        yield Console(home, service, found.group(0), seeded)
    finally:
        service.close()


# -- the seed -------------------------------------------------------------------------------
def seed(home: Home, root: Path) -> Seeded:
    """Deployments, runs (one done with an agent transcript, one failed, one still running)
    and secrets, written the way the runner writes them, without Docker."""
    from runner.history.db import history_path
    from runner.history.store import History
    from runner.serve.owners import owner

    s = Seeded()
    now = datetime.now(UTC)
    base = str(root)
    # Runs "of" this test process: a service starting up ends the unfinished runs of dead
    # owners, and this one stays alive while the live run is watched.
    clock = [now]  # finish() stamps the clock's time: the seeded runs' own end times
    with History.open(history_path(home.path), owner=owner(), clock=lambda: clock[0]) as h:
        h.deployments.upsert("nightly", job_toml=NIGHTLY_TOML, job_base=base, cron="0 3 * * *",
                             timezone="Europe/Berlin")  # fmt: skip
        for name, cron in (("pausable", "30 4 * * *"), ("retired", "0 5 * * 1"),
                           ("adhoc", None), ("guarded", "15 6 * * *"),
                           ("vanishing", "45 7 * * *")):  # fmt: skip
            h.deployments.upsert(name, job_toml=job_toml(name, cron), job_base=base, cron=cron)
        h.deployments.upsert("held", job_toml=job_toml("held", "0 9 * * *"), job_base=base,
                             cron="0 9 * * *")  # fmt: skip
        h.deployments.pause("held", "manual", "waiting on the vendor's fix <b>not bold</b>")

        slot = (now - timedelta(days=1)).replace(hour=1, minute=0, second=0, microsecond=0)
        done = h.runs.claim_slot("nightly", slot)
        assert done is not None
        s.done_run = done
        _agent_run_dir(home, s, done, started=now - timedelta(hours=20))
        h.runs.mark_running(done, run_dir=str(home.path / "runs" / done),
                            started_at=now - timedelta(hours=20))  # fmt: skip
        clock[0] = now - timedelta(hours=20) + timedelta(seconds=12.5)
        h.runs.finish(done, "succeeded", exit_code=0)

        failed, _ = h.runs.create_triggered("nightly", "manual", actor="cli")
        s.failed_run = failed
        _command_run_dir(home, failed, "failed", exit_code=3, started=now - timedelta(hours=2),
                         output=b"step 1\nboom: something broke\n")  # fmt: skip
        h.runs.mark_running(failed, run_dir=str(home.path / "runs" / failed),
                            started_at=now - timedelta(hours=2))  # fmt: skip
        clock[0] = now - timedelta(hours=2) + timedelta(seconds=12.5)
        h.runs.finish(failed, "failed", exit_code=3, reason="exit_code")
        clock[0] = now

        live, _ = h.runs.create_triggered("nightly", "api", actor="api",
                                          idempotency_key="console-live")  # fmt: skip
        s.live_run = live
        _command_run_dir(home, live, "running", exit_code=None, started=now,
                         output=b"live run starting\n")  # fmt: skip
        (home.path / "runs" / live / "transcript.jsonl").write_text(
            _line(
                {
                    "type": "message",
                    "message": {
                        "role": "user",
                        "content": [{"type": "text", "text": "watch this run"}],
                    },
                }
            )  # fmt: skip
        )
        h.runs.mark_running(live, run_dir=str(home.path / "runs" / live), started_at=now)
    _seed_vault(home, s, now)
    return s


def _line(event: dict[str, Any]) -> str:
    return json.dumps(event) + "\n"


def _record(run_id: str, status: str, *, kind: str, started: datetime, exit_code: int | None,
            **extra: Any) -> dict[str, Any]:  # fmt: skip
    ended = status != "running"
    return {
        "id": run_id, "job": "nightly", "kind": kind, "status": status, "exit_code": exit_code,
        "started": started.isoformat(),
        "finished": (started + timedelta(seconds=12.5)).isoformat() if ended else None,
        "duration_s": 12.5 if ended else None,
        "image": "coatcheck/claude-code:latest" if kind == "agent" else "coatcheck/sandbox:latest",
        "secrets": ["GITHUB_TOKEN"], "error": None, "output_capped": False, **extra,
    }  # fmt: skip


def _run_dir(home: Home, run_id: str) -> Path:
    runs = home.path / "runs"
    runs.mkdir(mode=0o700, exist_ok=True)
    path = runs / run_id
    path.mkdir(mode=0o700)
    return path


def _command_run_dir(home: Home, run_id: str, status: str, *, exit_code: int | None,
                     started: datetime, output: bytes) -> Path:  # fmt: skip
    path = _run_dir(home, run_id)
    record = _record(run_id, status, kind="command", started=started, exit_code=exit_code)
    (path / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    (path / "output.log").write_bytes(output)
    (path / "audit.jsonl").write_text("")
    return path


AUDIT_ALLOW_HOST = "api.github.com"
AUDIT_DENY_HOST = "evil.test"


def _agent_run_dir(home: Home, s: Seeded, run_id: str, *, started: datetime) -> None:
    path = _run_dir(home, run_id)
    record = _record(run_id, "succeeded", kind="agent", started=started, exit_code=0, turns=2,
                     usage={"input_tokens": 1234, "output_tokens": 567,
                            "cache_read_input_tokens": 89},
                     cost_usd=0.0421)  # fmt: skip
    (path / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    (path / "output.log").write_text(
        f"agent starting\nfetching the repo\n{OUTPUT_PAYLOAD}\nagent done\n"
    )
    ts = started.isoformat()
    audit = [
        {"ts": ts, "event": "audit", "run_id": run_id, "method": "GET", "host": AUDIT_ALLOW_HOST,
         "port": 443, "path": "/repos/acme/app", "status": 200, "decision": "allow",
         "reason": "allowlisted", "secrets_injected": ["GITHUB_TOKEN"]},
        {"ts": ts, "event": "audit", "run_id": run_id, "method": "GET", "host": AUDIT_DENY_HOST,
         "port": 443, "path": AUDIT_PATH, "status": 403, "decision": "deny",
         "reason": "not_allowlisted", "secrets_injected": []},
    ]  # fmt: skip
    (path / "audit.jsonl").write_text("".join(_line(a) for a in audit))
    transcript = [
        {"type": "message", "message": {"role": "user", "content": [
            {"type": "text", "text": f"Summarise the issue {SCRIPT} please"}]}},
        {"type": "message", "message": {"role": "assistant", "content": [
            {"type": "text", "text": f"Looking at it. {IMG}"},
            {"type": "tool_use", "id": "toolu_01", "name": "bash",
             "input": {"command": f"echo '{TOOL_SCRIPT}'"}}]},
         "stop_reason": "tool_use", "usage": {"input_tokens": 600, "output_tokens": 300}},
        {"type": "tool_result", "name": "bash", "input": {"command": f"echo '{TOOL_SCRIPT}'"},
         "result": {"type": "tool_result", "tool_use_id": "toolu_01",
                    "content": RESULT_PAYLOAD, "is_error": False}},
        {"type": "message", "message": {"role": "assistant", "content": [
            {"type": "text", "text": "Done: the report is in out/report.txt"}]},
         "stop_reason": "end_turn", "usage": {"input_tokens": 634, "output_tokens": 267}},
    ]  # fmt: skip
    (path / "transcript.jsonl").write_text("".join(_line(t) for t in transcript))
    s.report_marker = "Console seed report"
    (path / "report.md").write_text(f"# {s.report_marker}\n\nAll fine.\n\n{REPORT_PAYLOAD}\n")
    (path / "out").mkdir(mode=0o700)
    s.artifact_text = "artifact body: 42 findings\n"
    (path / "out" / "report.txt").write_text(s.artifact_text)


def rotation_supported() -> bool:
    from vault.store import Vault

    return "rotate_after" in inspect.signature(Vault.set).parameters


def _seed_vault(home: Home, s: Seeded, now: datetime) -> None:
    """One fresh secret (through the CLI) and, when the vault knows rotation windows, one
    whose window passed long ago (set with an old clock)."""
    s.fresh_secret = "GITHUB_TOKEN"
    value = "ghp_SEEDEDconsoleVALUE0123456789abcdef"
    s.secret_values[s.fresh_secret] = value
    args = ["vault", "set", s.fresh_secret, "--domains", "api.github.com"]
    if rotation_supported():
        args += ["--rotate-after", "30d"]
    r = coatcheck(home, *args, input=value, timeout=60)
    assert r.code == 0, f"coatcheck vault set failed: {r}"
    if not rotation_supported():
        return
    from vault.keystore import FileKeystore
    from vault.secret import SecretValue
    from vault.store import Vault

    old = "sk_SEEDEDoverdueVALUE9876543210fedcba"
    vault = Vault.open(home.path, keystore=FileKeystore(home.root / "vault.key"),
                       clock=lambda: now - timedelta(days=400))  # fmt: skip
    vault.set("OLD_KEY", SecretValue(old), ["x.test"], rotate_after=30 * 86400)
    s.overdue_secret = "OLD_KEY"
    s.secret_values["OLD_KEY"] = old
