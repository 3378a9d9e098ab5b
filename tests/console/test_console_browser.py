"""The web console of ``coatcheck serve`` in a real browser (headless Debian Chromium through
Selenium): login, each page with seeded history, each action through the UI, transcripts that
stay inert, CSRF and origin checks, a strict CSP, and live output. Screenshots of every page go
to ``$COATCHECK_ARTIFACTS/screenshots/`` (default ``artifacts/screenshots/``).

One service for the module, seeded before it starts (no Docker needed). Each action test acts
on a deployment of its own, so the tests don't depend on their order.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from tests.console.browser import (
    AUDIT_ALLOW_HOST,
    AUDIT_DENY_HOST,
    IMG,
    OUTPUT_PAYLOAD,
    SCRIPT,
    SESSION_COOKIE,
    TOOL_SCRIPT,
    Console,
    all_css,
    browser_problem,
    browser_required,
    csp_violations,
    css,
    new_driver,
    page_text,
    rotation_supported,
    running_console,
    shot,
    text_of,
    wait,
    wait_text,
    wait_url,
)

PROBLEM = browser_problem()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(PROBLEM is not None and not browser_required(), reason=PROBLEM or ""),
]

PAGES = ("/", "/deployments/nightly", "/vault")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    if PROBLEM is not None:  # COATCHECK_REQUIRE_BROWSER=1: a missing browser is a failure
        pytest.fail(f"COATCHECK_REQUIRE_BROWSER=1, but the browser tests can't run: {PROBLEM}")
    with running_console(tmp_path_factory.mktemp("console")) as c:
        yield c


@pytest.fixture(scope="module")
def driver(console: Console) -> Iterator[Any]:
    d = new_driver()
    try:
        yield d
    finally:
        d.quit()


def path_of(url: str) -> str:
    return urlsplit(url).path


def session_cookie(driver: Any) -> dict[str, Any] | None:
    return next((c for c in driver.get_cookies() if c["name"] == SESSION_COOKIE), None)


def login(driver: Any, console: Console, token: str) -> None:
    driver.get(console.url + "/login")
    css(driver, "form#login-form")
    field = css(driver, "input#token[name=token]")
    field.clear()
    field.send_keys(token)
    css(driver, "button#login").click()


def logged_in(driver: Any, console: Console) -> Any:
    """The driver with a live session (logging in again after a logout test)."""
    driver.get(console.url + "/")
    if path_of(driver.current_url) == "/login":
        login(driver, console, console.token)
        wait(driver).until(lambda d: path_of(d.current_url) == "/" or all_css(d, ".error"))
        errors = [text_of(e).strip() for e in all_css(driver, ".error")]
        assert path_of(driver.current_url) == "/", f"logging in with the token failed: {errors}"
    css(driver, "table#deployments")
    return driver


@pytest.fixture
def page(console: Console, driver: Any) -> Any:
    return logged_in(driver, console)


def open_page(driver: Any, console: Console, path: str, ready: str, name: str) -> None:
    driver.get(console.url + path)
    css(driver, ready)
    assert_local_assets(driver, console)
    shot(driver, name)


def assert_local_assets(driver: Any, console: Console) -> None:
    """Assets come from the service itself (no CDN), and no script is inline (a strict CSP)."""
    urls = driver.execute_script(
        "return [...document.querySelectorAll('script[src],link[href],img[src],iframe[src]')]"
        ".map(e => e.src || e.href)"
    )
    foreign = [u for u in urls if not u.startswith(console.url + "/")]
    assert not foreign, f"{driver.current_url} loads assets from elsewhere: {foreign}"
    inline = driver.execute_script(
        "return [...document.querySelectorAll('script:not([src])')]"
        ".filter(s => !/json/.test(s.type)).map(s => s.outerHTML.slice(0, 120))"
    )
    assert not inline, f"{driver.current_url} has inline scripts: {inline}"


def row(driver: Any, selector: str) -> Any:
    return css(driver, selector)


def cell(tr: Any, name: str) -> str:
    from selenium.webdriver.common.by import By

    cells = tr.find_elements(By.CSS_SELECTOR, f"td.{name}")
    assert cells, f"row {tr.get_attribute('outerHTML')[:300]!r} has no td.{name}"
    return " ".join(text_of(cells[0]).split())


def next_fires(cron_hour: int, tz: str, n: int) -> list[str]:
    """The ISO dates of the next ``n`` daily fires at ``cron_hour``:00 in ``tz``."""
    now = datetime.now(ZoneInfo(tz))
    first = now.replace(hour=cron_hour, minute=0, second=0, microsecond=0)
    if first <= now:
        first += timedelta(days=1)
    return [(first + timedelta(days=i)).date().isoformat() for i in range(n)]


def shows_date(element_text: str, element: Any, iso_date: str) -> bool:
    """The date is in the text, or in a ``<time datetime=...>`` inside the element."""
    if iso_date in element_text:
        return True
    from selenium.webdriver.common.by import By

    return any(
        (t.get_attribute("datetime") or "").startswith(iso_date)
        or iso_date in (t.get_attribute("datetime") or "")
        for t in element.find_elements(By.CSS_SELECTOR, "time")
    )


def confirm_action(driver: Any, console: Console, deployment: str, action: str,
                   note: str | None = None) -> None:  # fmt: skip
    """Open the deployment, click the action, confirm it, land back with a flash message."""
    open_page(
        driver, console, f"/deployments/{deployment}", "table#runs", f"deployment-{deployment}"
    )
    css(driver, f"a.action[data-action={action}]").click()
    css(driver, "form#confirm")
    if note is not None:
        field = css(driver, "input#note")
        field.clear()
        field.send_keys(note)
    shot(driver, f"confirm-{action}-{deployment}")
    css(driver, "button#confirm-button").click()
    wait_url(driver, lambda u: path_of(u) == f"/deployments/{deployment}",
             f"a redirect back to /deployments/{deployment} after {action}")  # fmt: skip
    css(driver, ".flash")
    shot(driver, f"after-{action}-{deployment}")


def deployments_row(driver: Any, console: Console, name: str) -> Any:
    driver.get(console.url + "/")
    css(driver, "table#deployments")
    return row(driver, f"table#deployments tr[data-deployment={name}]")


# -- access ---------------------------------------------------------------------------------
def test_every_page_needs_a_login(console: Console, driver: Any) -> None:
    driver.get(console.url + "/login")
    driver.delete_all_cookies()
    for path in (*PAGES, f"/runs/{console.seeded.done_run}"):
        driver.get(console.url + path)
        wait_url(driver, lambda u: path_of(u) == "/login", f"{path} to redirect to /login")
    css(driver, "form#login-form")
    shot(driver, "login")
    for path in (*PAGES, f"/runs/{console.seeded.done_run}"):
        for kw in ({}, {"bearer": "ccadm_not-the-token"}, {"cookie": "forged"}):
            r = console.get(path, **kw)
            assert r.status_code in (302, 303, 307, 401, 403), (
                f"GET {path} with {kw or 'nothing'} answered {r.status_code}, not a refusal"
            )
    assert console.get("/", bearer=console.token).status_code == 200, "Bearer login refused"


def test_a_bad_token_stays_on_the_login_page(console: Console, driver: Any) -> None:
    driver.get(console.url + "/login")
    driver.delete_all_cookies()
    login(driver, console, "ccadm_" + secrets.token_urlsafe(24))
    css(driver, ".error")
    shot(driver, "login-bad-token")
    assert path_of(driver.current_url) == "/login", driver.current_url
    assert not all_css(driver, "table#deployments")
    assert session_cookie(driver) is None, f"a bad token got a session: {driver.get_cookies()}"


def test_login_sets_a_strict_session_cookie(console: Console, driver: Any) -> None:
    driver.get(console.url + "/login")
    driver.delete_all_cookies()
    login(driver, console, console.token)
    wait_url(driver, lambda u: path_of(u) == "/", "the deployments page after logging in")
    css(driver, "table#deployments")
    shot(driver, "deployments-after-login")
    cookie = session_cookie(driver)
    assert cookie is not None, f"no {SESSION_COOKIE} cookie: {driver.get_cookies()}"
    flags = {k: cookie.get(k) for k in ("httpOnly", "secure", "sameSite")}
    assert flags == {"httpOnly": True, "secure": True, "sameSite": "Strict"}, flags
    assert console.token not in cookie["value"], "the session cookie holds the login token"


def test_logout_ends_the_session(console: Console, page: Any) -> None:
    cookie = session_cookie(page)
    assert cookie is not None
    form = css(page, "form#logout")
    buttons = form.find_elements("css selector", "button, input[type=submit]")
    if buttons:
        buttons[0].click()
    else:
        form.submit()
    wait_url(page, lambda u: path_of(u) == "/login", "the login page after logging out")
    page.get(console.url + "/")
    wait_url(page, lambda u: path_of(u) == "/login", "/ to redirect to /login after logout")
    r = console.get("/", cookie=cookie["value"])
    assert r.status_code != 200, "the session cookie still works after logging out"


# -- pages ----------------------------------------------------------------------------------
def test_deployments_page(console: Console, page: Any) -> None:
    open_page(page, console, "/", "table#deployments", "deployments")
    assert path_of(css(page, "a#nav-deployments").get_attribute("href")) == "/"
    assert path_of(css(page, "a#nav-vault").get_attribute("href")) == "/vault"
    for name in ("nightly", "pausable", "retired", "adhoc", "held"):
        row(page, f"table#deployments tr[data-deployment={name}]")
    nightly = row(page, "table#deployments tr[data-deployment=nightly]")
    assert "active" in cell(nightly, "status")
    schedule = cell(nightly, "schedule")
    assert schedule and schedule != "0 3 * * *", f"schedule not in words: {schedule!r}"
    assert "3:00" in schedule or "3 AM" in schedule.upper(), f"td.schedule: {schedule!r}"
    first = next_fires(3, "Europe/Berlin", 1)[0]
    nxt = cell(nightly, "next")
    assert shows_date(nxt, nightly.find_element("css selector", "td.next"), first), (
        f"td.next {nxt!r} doesn't show the next fire's date {first}"
    )
    assert cell(nightly, "last-run"), "td.last-run is empty for a deployment with runs"
    held = row(page, "table#deployments tr[data-deployment=held]")
    assert "paused" in cell(held, "status")
    assert "waiting on the vendor's fix <b>not bold</b>" in cell(held, "paused"), (
        f"td.paused of a paused deployment: {cell(held, 'paused')!r}"
    )
    assert not all_css(page, "table#deployments b"), "the pause note's markup was rendered"


def test_deployment_page(console: Console, page: Any) -> None:
    s = console.seeded
    open_page(page, console, "/deployments/nightly", "table#runs", "deployment-nightly")
    fires = all_css(page, "ul#next-fires li")
    assert len(fires) == 5, f"ul#next-fires has {len(fires)} items, not 5"
    expected = next_fires(3, "Europe/Berlin", 5)
    for li, day in zip(fires, expected, strict=True):
        assert shows_date(text_of(li), li, day), f"next fire {text_of(li)!r}, expected {day}"
    for run_id, status in ((s.done_run, "succeeded"), (s.failed_run, "failed"),
                           (s.live_run, "running")):  # fmt: skip
        tr = row(page, f"table#runs tr[data-run={run_id}]")
        assert status in text_of(tr), f"run {run_id}'s row {text_of(tr)!r} lacks {status}"
    css(page, "svg#chart")
    for action in ("pause", "run", "archive"):
        css(page, f"a.action[data-action={action}]")


def test_run_page(console: Console, page: Any) -> None:
    s = console.seeded
    open_page(page, console, f"/runs/{s.done_run}", "#transcript", "run-agent")
    assert "succeeded" in text_of(css(page, "#status"))
    assert "schedule" in text_of(css(page, "#trigger"))
    assert text_of(css(page, "#exit-code")).strip() == "0", text_of(css(page, "#exit-code"))
    usage = re.sub(r"[,\s\u202f\u00a0]", "", text_of(css(page, "#usage")))
    assert "1234" in usage and "567" in usage, f"#usage: {text_of(css(page, '#usage'))!r}"
    assert "0.04" in text_of(css(page, "#cost")), f"#cost: {text_of(css(page, '#cost'))!r}"

    assert len(all_css(page, "#transcript .message.user")) >= 1
    assert len(all_css(page, "#transcript .message.assistant")) >= 2
    calls = all_css(page, "#transcript details.tool-call")
    results = all_css(page, "#transcript details.tool-result")
    assert calls and results, f"tool calls {len(calls)}, results {len(results)}"
    assert "bash" in text_of(calls[0]) and TOOL_SCRIPT in text_of(calls[0]), text_of(calls[0])
    assert calls[0].get_attribute("open") is None, "a tool call is not folded"
    assert "Done: the report is in out/report.txt" in text_of(css(page, "#transcript"))

    assert OUTPUT_PAYLOAD in text_of(css(page, "pre#output"))

    refused = all_css(page, "table#audit tr.refused")
    assert len(refused) == 1, f"{len(refused)} refused audit rows, expected 1"
    assert cell(refused[0], "host") == AUDIT_DENY_HOST
    assert cell(refused[0], "decision") == "deny"
    assert cell(refused[0], "reason") == "not_allowlisted"
    allowed = [tr for tr in all_css(page, "table#audit tr") if AUDIT_ALLOW_HOST in text_of(tr)]
    assert allowed, "the allowed audit line is missing"
    assert "refused" not in (allowed[0].get_attribute("class") or "")

    assert s.report_marker in text_of(css(page, "#report"))
    links = [a for a in all_css(page, "ul#artifacts a.artifact") if "report.txt" in text_of(a)]
    assert links, f"no artifact link for report.txt: {text_of(css(page, 'ul#artifacts'))!r}"
    href = links[0].get_attribute("href")
    cookie = session_cookie(page)
    assert cookie is not None
    got = console.get(href, cookie=cookie["value"])
    assert got.status_code == 200 and got.text == s.artifact_text, (got.status_code, got.text)
    assert console.get(href).status_code != 200, "an artifact downloads without a login"


def test_failed_run_page(console: Console, page: Any) -> None:
    s = console.seeded
    open_page(page, console, f"/runs/{s.failed_run}", "pre#output", "run-failed")
    assert "failed" in text_of(css(page, "#status"))
    assert "manual" in text_of(css(page, "#trigger"))
    assert text_of(css(page, "#exit-code")).strip() == "3"
    assert "boom: something broke" in text_of(css(page, "pre#output"))


def test_transcript_and_output_stay_inert(console: Console, page: Any) -> None:
    open_page(page, console, f"/runs/{console.seeded.done_run}", "#transcript", "run-xss")
    assert page.execute_script("return window.__pwned") is None, "attacker text ran as script"
    visible = page.execute_script("return document.querySelector('#transcript').innerText")
    assert SCRIPT in visible, f"the literal {SCRIPT!r} is not shown in the transcript"
    assert IMG in text_of(css(page, "#transcript"))
    source = page.page_source
    assert "<script>window.__pwned" not in source, "a transcript <script> reached the DOM"
    assert not all_css(page, "img[onerror]"), "an attacker's <img onerror> became an element"
    assert not csp_violations(page), f"CSP refusals on the run page: {csp_violations(page)}"
    assert page.execute_script("return window.__pwned") is None


def test_vault_page_never_shows_a_value(console: Console, page: Any) -> None:
    s = console.seeded
    open_page(page, console, "/vault", "table#secrets", "vault")
    tr = row(page, f"table#secrets tr[data-secret={s.fresh_secret}]")
    assert "api.github.com" in cell(tr, "domains")
    assert "header" in cell(tr, "surfaces")
    cell(tr, "rules")
    for name in ("created", "updated", "age"):
        assert cell(tr, name), f"td.{name} of {s.fresh_secret} is empty"
    cookie = session_cookie(page)
    assert cookie is not None
    for path in (*PAGES, f"/runs/{s.done_run}", f"/runs/{s.live_run}"):
        text = console.get(path, cookie=cookie["value"]).text
        for name, value in s.secret_values.items():
            assert value not in text, f"{path} shows the value of {name}"
    for name, value in s.secret_values.items():
        assert value not in page.page_source, f"the vault page shows the value of {name}"


@pytest.mark.skipif(not rotation_supported(), reason="the vault has no rotation window yet")
def test_vault_flags_overdue_secrets(console: Console, page: Any) -> None:
    s = console.seeded
    assert s.overdue_secret is not None
    open_page(page, console, "/vault", "table#secrets", "vault-overdue")
    old = row(page, f"table#secrets tr[data-secret={s.overdue_secret}]")
    fresh = row(page, f"table#secrets tr[data-secret={s.fresh_secret}]")
    assert "overdue" in (old.get_attribute("class") or "").split(), old.get_attribute("outerHTML")
    assert "overdue" not in (fresh.get_attribute("class") or "").split()


def test_pages_send_a_strict_csp(console: Console) -> None:
    for path in ("/login", *PAGES, f"/runs/{console.seeded.done_run}"):
        r = console.get(path, bearer=None if path == "/login" else console.token)
        assert r.status_code == 200, f"GET {path} with the Bearer token: {r.status_code}"
        csp = r.headers.get("content-security-policy")
        assert csp, f"GET {path} has no Content-Security-Policy header"
        policy = {
            d.split()[0].lower(): d.split()[1:] for d in csp.split(";") if d.strip()
        }  # fmt: skip
        scripts = policy.get("script-src", policy.get("default-src"))
        assert scripts is not None, f"{path}: no script-src or default-src in {csp!r}"
        for loose in ("'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:", "data:"):
            assert loose not in scripts, f"{path}: script sources allow {loose}: {csp!r}"
        assert "default-src" in policy, f"{path}: no default-src in {csp!r}"


# -- actions --------------------------------------------------------------------------------
def test_pause_with_a_note_then_unpause(console: Console, page: Any) -> None:
    note = "vendor outage <i>maintenance</i>"
    confirm_action(page, console, "pausable", "pause", note=note)
    assert console.deployment_status("pausable") == "paused"
    tr = deployments_row(page, console, "pausable")
    shot(page, "deployments-paused")
    assert "paused" in cell(tr, "status")
    assert note in cell(tr, "paused"), f"td.paused {cell(tr, 'paused')!r} lacks the note"

    confirm_action(page, console, "pausable", "unpause")
    assert console.deployment_status("pausable") == "active"
    tr = deployments_row(page, console, "pausable")
    assert "active" in cell(tr, "status")
    assert note not in cell(tr, "paused")


def test_run_now(console: Console, page: Any) -> None:
    confirm_action(page, console, "adhoc", "run")

    def manual_row(driver: Any) -> Any:
        driver.refresh()
        rows = all_css(driver, "table#runs tr[data-run]")
        return next((r for r in rows if "manual" in text_of(r)), False)

    tr = wait(page).until(manual_row)
    shot(page, "deployment-adhoc-run-now")
    run_id = tr.get_attribute("data-run")
    with console.history() as h:
        run = h.runs.get_run(run_id)
    assert run.deployment == "adhoc" and run.trigger == "manual", run


def test_archive(console: Console, page: Any) -> None:
    confirm_action(page, console, "retired", "archive")
    assert console.deployment_status("retired") == "archived"
    tr = deployments_row(page, console, "retired")
    shot(page, "deployments-archived")
    assert "archived" in cell(tr, "status")


def test_a_refused_action_shows_an_error(console: Console, page: Any) -> None:
    open_page(page, console, "/deployments/vanishing", "table#runs", "deployment-vanishing")
    css(page, "a.action[data-action=pause]").click()
    css(page, "form#confirm")
    with console.history() as h:  # archived meanwhile (from the CLI, say): pause must fail
        h.deployments.archive("vanishing")
    css(page, "button#confirm-button").click()
    error = wait_text(page, ".error", "archived")  # the reason, not a CSRF or origin refusal
    shot(page, "action-error")
    assert "vanishing" in text_of(error), text_of(error)
    css(page, "form#confirm")  # the form again, to go back or cancel
    assert console.deployment_status("vanishing") == "archived"


def test_actions_need_the_csrf_token_and_the_same_origin(console: Console, page: Any) -> None:
    open_page(page, console, "/deployments/guarded", "table#runs", "deployment-guarded")
    css(page, "a.action[data-action=pause]").click()
    form = css(page, "form#confirm")
    action = form.get_attribute("action") or page.current_url
    assert (form.get_attribute("method") or "").lower() == "post", "form#confirm is not a POST"
    fields = {
        i.get_attribute("name"): i.get_attribute("value") or ""
        for i in form.find_elements("css selector", "input[name]")
    }
    fields["note"] = "should never be stored"
    csrf = [n for n in fields if "csrf" in n.lower()]
    assert csrf, f"form#confirm has no csrf field: {sorted(fields)}"
    cookie = session_cookie(page)
    assert cookie is not None
    same = {"Origin": console.url}

    without = {k: v for k, v in fields.items() if k not in csrf}
    r = console.post_form(action, without, cookie=cookie["value"], **same)
    assert r.status_code == 403, f"POST without the CSRF token: {r.status_code} {r.text[:200]!r}"
    wrong = {**fields, **{k: "x" + v for k, v in fields.items() if k in csrf}}
    r = console.post_form(action, wrong, cookie=cookie["value"], **same)
    assert r.status_code == 403, f"POST with a wrong CSRF token: {r.status_code}"
    r = console.post_form(action, fields, cookie=cookie["value"], Origin="http://evil.test")
    assert r.status_code == 403, f"POST from another origin: {r.status_code} {r.text[:200]!r}"
    r = console.post_form(action, fields, cookie=None, **same)
    refused = r.status_code in (401, 403) or (
        r.status_code in (302, 303, 307) and path_of(r.headers.get("location", "")) == "/login"
    )
    assert refused, f"POST without a session: {r.status_code} {r.headers.get('location')}"
    assert console.deployment_status("guarded") == "active", "a refused POST paused it"

    # the control: the same form, complete, from the console's own origin, is accepted
    r = console.post_form(action, fields, cookie=cookie["value"], **same)
    assert r.status_code in (302, 303), f"a complete same-origin POST: {r.status_code}"
    assert console.deployment_status("guarded") == "paused"


# -- live -----------------------------------------------------------------------------------
def test_a_running_run_updates_without_reloading(console: Console, page: Any) -> None:
    run_id = console.seeded.live_run
    open_page(page, console, f"/runs/{run_id}", "pre#output", "run-live-before")
    assert "running" in text_of(css(page, "#status"))
    scripts = page.execute_script(
        "return [...document.querySelectorAll('script[src]')].map(s => s.src)"
    )
    assert any(path_of(s).endswith("live.js") for s in scripts), f"no live.js: {scripts}"
    wait_text(page, "pre#output", "live run starting")
    page.execute_script("window.__sameDocument = 'yes'")

    line = f"live line {secrets.token_hex(6)}"
    run_dir: Path = console.runs_dir / run_id
    with open(run_dir / "output.log", "a") as f:
        f.write(line + "\n")
    wait_text(page, "pre#output", line, timeout=30)

    said = f"live message {secrets.token_hex(6)}"
    with open(run_dir / "transcript.jsonl", "a") as f:
        f.write(
            '{"type": "message", "message": {"role": "assistant", "content": '
            f'[{{"type": "text", "text": "{said}"}}]}}}}\n'
        )
    wait_text(page, "#transcript", said, timeout=30)
    shot(page, "run-live-after")
    assert page.execute_script("return window.__sameDocument") == "yes", "the page reloaded"
    assert page_text(page)


def test_no_csp_refusals_on_any_page(console: Console, page: Any) -> None:
    page.get_log("browser")  # drop what earlier tests left
    for path in (*PAGES, f"/runs/{console.seeded.done_run}", f"/runs/{console.seeded.live_run}"):
        page.get(console.url + path)
        css(page, "body")
        found = csp_violations(page)
        assert not found, f"{path}: the page breaks its own CSP: {found}"
