"""Access to the console: sign-in, sessions, bearer tokens, CSRF and cross-site refusals, and
the security headers on every answer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from runner.console.admin_token import new_admin_token
from runner.console.guard import CSP, cross_site
from runner.console.sessions import COOKIE
from tests.runner.console.conftest import Seeded
from tests.runner.console.helpers import csrf_of

PAGES = ("/", "/deployments/nightly", "/vault", "/runs/{ok}", "/runs/{ok}/artifacts/result.txt",
         "/deployments/nightly/confirm/pause")  # fmt: skip
APIS = ("/v1/console/deployments", "/v1/console/runs", "/v1/console/runs/{ok}",
        "/runs/{running}/events")  # fmt: skip


def fill(path: str, s: Seeded) -> str:
    return path.format(ok=s.ok, running=s.running)


@pytest.mark.parametrize("path", PAGES)
def test_a_page_sends_strangers_to_login(anon: TestClient, seeded: Seeded, path: str) -> None:
    answer = anon.get(fill(path, seeded))
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")
    assert answer.headers["content-security-policy"] == CSP


@pytest.mark.parametrize("path", APIS)
def test_an_api_answers_strangers_401(anon: TestClient, seeded: Seeded, path: str) -> None:
    answer = anon.get(fill(path, seeded))
    assert answer.status_code == 401
    assert "coatcheck serve token" in answer.json()["error"]


@pytest.mark.parametrize("path", ["/v1/console/deployments/nightly/pause", "/logout",
                                  "/deployments/nightly/pause"])  # fmt: skip
def test_a_stranger_cannot_act(anon: TestClient, seeded: Seeded, path: str) -> None:
    assert anon.post(path).status_code in (303, 401)
    assert seeded.actions.calls == []


def test_login_sets_a_strict_session_cookie(anon: TestClient, seeded: Seeded) -> None:
    answer = anon.post("/login", data={"token": seeded.token})
    assert (answer.status_code, answer.headers["location"]) == (303, "/")
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert attribute.lower() in cookie.lower()
    assert seeded.token not in cookie
    assert anon.get("/").status_code == 200


def test_login_page_has_its_hooks(anon: TestClient) -> None:
    html = anon.get("/login").text
    for hook in ('id="login-form"', 'id="token"', 'name="token"', 'id="login"'):
        assert hook in html


@pytest.mark.parametrize("token", ["", "ccadm_wrong", "x" * 5000])
def test_a_wrong_token_is_refused(anon: TestClient, token: str) -> None:
    answer = anon.post("/login", data={"token": token})
    assert answer.status_code == 401
    assert 'class="error"' in answer.text
    assert COOKIE not in answer.headers.get("set-cookie", "")


def test_failed_logins_are_rate_limited(anon: TestClient, seeded: Seeded) -> None:
    for _ in range(10):
        assert anon.post("/login", data={"token": "nope"}).status_code == 401
    refused = anon.post("/login", data={"token": seeded.token})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    seeded.clock.advance(minutes=1, seconds=1)
    assert anon.post("/login", data={"token": seeded.token}).status_code == 303


def test_without_a_stored_token_nobody_signs_in(anon: TestClient, seeded: Seeded) -> None:
    (seeded.home / "serve" / "console-token.sha256").unlink()
    assert "coatcheck serve token" in anon.get("/login").text
    assert anon.post("/login", data={"token": seeded.token}).status_code == 401


def test_a_session_ends_after_12_hours(client: TestClient, seeded: Seeded) -> None:
    assert client.get("/").status_code == 200
    seeded.clock.advance(hours=12)
    assert client.get("/").headers["location"] == "/login"


def test_logout_ends_the_session(client: TestClient) -> None:
    cookie = client.cookies[COOKIE]
    answer = client.post("/logout", data={"csrf": csrf_of(client)})
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")
    client.cookies.set(COOKIE, cookie, domain="testserver.local")
    assert client.get("/").status_code == 303


def test_bearer_token_opens_pages_and_api(anon: TestClient, seeded: Seeded) -> None:
    auth = {"Authorization": f"Bearer {seeded.token}"}
    assert anon.get("/", headers=auth).status_code == 200
    answer = anon.post("/v1/console/deployments/nightly/pause", headers=auth,
                       json={"note": "by script"})  # fmt: skip
    assert answer.json()["status"] == "paused"
    assert ("pause", "nightly", "by script") in seeded.actions.calls


def test_a_wrong_bearer_fails_even_with_a_cookie(client: TestClient) -> None:
    answer = client.get("/v1/console/deployments", headers={"Authorization": "Bearer ccadm_x"})
    assert answer.status_code == 401


@pytest.mark.parametrize(
    ("form", "headers"),
    [
        ({}, {}),
        ({"csrf": "forged"}, {}),
        ({"csrf": "{csrf}"}, {"Origin": "https://evil.example"}),
        ({"csrf": "{csrf}"}, {"Origin": "null"}),
        ({"csrf": "{csrf}"}, {"Sec-Fetch-Site": "cross-site"}),
        ({"csrf": "{csrf}"}, {"Sec-Fetch-Site": "same-site"}),
    ],
    ids=["no-token", "forged-token", "other-origin", "null-origin", "cross-site", "same-site"],
)
def test_an_action_without_csrf_or_from_elsewhere_is_refused(
    client: TestClient, seeded: Seeded, form: dict[str, str], headers: dict[str, str]
) -> None:
    token = csrf_of(client)
    data = {k: v.format(csrf=token) for k, v in form.items()}
    answer = client.post("/deployments/nightly/pause", data=data, headers=headers)
    assert answer.status_code == 403
    assert 'class="error"' in answer.text
    assert seeded.actions.calls == []
    assert seeded.history.deployments.get("nightly").status == "active"


def test_the_api_wants_the_csrf_header_from_a_cookie_session(
    client: TestClient, seeded: Seeded
) -> None:
    url = "/v1/console/deployments/nightly/pause"
    assert client.post(url).status_code == 403
    answer = client.post(url, headers={"X-CSRF-Token": csrf_of(client)})
    assert answer.status_code == 200


def test_a_same_origin_action_passes(client: TestClient, seeded: Seeded) -> None:
    headers = {"Origin": "https://testserver", "Sec-Fetch-Site": "same-origin"}
    answer = client.post("/deployments/nightly/pause", headers=headers,
                         data={"csrf": csrf_of(client), "note": "n"})  # fmt: skip
    assert answer.status_code == 303


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({}, False),
        ({"host": "127.0.0.1:8080", "origin": "http://127.0.0.1:8080"}, False),
        ({"host": "127.0.0.1:8080", "origin": "http://127.0.0.1:9090"}, True),
        ({"host": "a", "sec-fetch-site": "none"}, False),
    ],
    ids=["no-headers", "same-origin", "other-port", "typed-url"],
)
def test_cross_site(headers: dict[str, str], refused: bool) -> None:
    assert (cross_site(headers) is not None) == refused


@pytest.mark.parametrize(
    "path",
    ["/login", "/", "/vault", "/deployments/nightly", "/runs/{ok}", "/static/console.css",
     "/static/live.js", "/v1/console/runs", "/deployments/nope", "/runs/r-nope"],
)  # fmt: skip
def test_every_answer_has_the_security_headers(
    client: TestClient, seeded: Seeded, path: str
) -> None:
    headers = client.get(fill(path, seeded)).headers
    assert headers["content-security-policy"] == CSP
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["cache-control"] == "no-store"
    assert headers["x-frame-options"] == "DENY"


def test_a_new_session_gets_a_new_csrf_token(app: object, seeded: Seeded) -> None:
    tokens = set()
    for _ in range(2):
        with TestClient(app, base_url="https://testserver") as c:  # type: ignore[arg-type]
            c.post("/login", data={"token": seeded.token})
            tokens.add(csrf_of(c))
    assert len(tokens) == 2
    assert timedelta(hours=12)  # sessions: see test_a_session_ends_after_12_hours


def test_a_new_admin_token_ends_the_sessions(client: TestClient, seeded: Seeded) -> None:
    assert client.get("/").status_code == 200
    new_admin_token(seeded.home)
    assert client.get("/").headers["location"] == "/login"


def test_static_assets_need_no_sign_in(anon: TestClient) -> None:
    css = anon.get("/static/console.css")
    assert css.headers["content-type"].startswith("text/css")
    assert anon.get("/static/live.js").headers["content-type"].startswith("text/javascript")
    assert anon.get("/static/../templates/base.html").status_code == 404
    assert anon.get("/static/base.html").status_code == 404
