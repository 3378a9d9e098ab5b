"""The deployments, deployment, confirmation and vault pages: their hooks, and the actions."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from starlette.testclient import TestClient

from runner.console.vault_view import row
from tests.runner.console.conftest import T0, XSS, Seeded
from tests.runner.console.helpers import csrf_of, text_of
from vault.keystore import FileKeystore
from vault.secret import SecretValue
from vault.store import Vault


def test_deployments_page(client: TestClient, seeded: Seeded) -> None:
    html = client.get("/").text
    assert 'id="deployments"' in html
    for hook in ('id="nav-deployments"', 'id="nav-vault"', 'id="logout"'):
        assert hook in html
    nightly = html.split('data-deployment="nightly"')[1].split("</tr>")[0]
    assert '<td class="status">active</td>' in nightly
    assert "At 03:00 every day" in nightly
    assert "2025-03-10T02:00:00+00:00" in nightly and "2025-03-10T03:00:00+01:00" in nightly
    assert f'href="/runs/{seeded.running}"' in nightly
    held = html.split('data-deployment="held"')[1].split("</tr>")[0]
    assert "manual: until &lt;script&gt;" in held
    assert XSS not in html


def test_deployment_page(client: TestClient, seeded: Seeded) -> None:
    html = client.get("/deployments/nightly").text
    assert "<h1>nightly</h1>" in html
    assert len(re.findall(r"<li>", html.split('id="next-fires"')[1].split("</ul>")[0])) == 5
    for run_id in (seeded.ok, seeded.failed, seeded.running):
        assert f'<tr data-run="{run_id}"' in html
    ok_row = html.split(f'<tr data-run="{seeded.ok}"')[1].split("</tr>")[0]
    assert '<td class="duration">42.0 s</td>' in ok_row
    assert '<td class="exit-code">0</td>' in ok_row
    chart = html.split('<svg id="chart"')[1].split("</svg>")[0]
    assert chart.count("<rect") == 3
    assert 'class="bar succeeded"' in chart and 'class="bar failed"' in chart
    assert chart.count("<title>") == 3
    actions = set(re.findall(r'class="action[^"]*" data-action="(\w+)"', html))
    assert actions == {"pause", "run", "archive"}


def test_a_paused_deployment_offers_unpause(client: TestClient) -> None:
    html = client.get("/deployments/held").text
    assert set(re.findall(r'data-action="(\w+)"', html)) == {"unpause", "run", "archive"}
    assert "<li>" not in html.split('id="next-fires"')[1].split("</ul>")[0]


def test_unknown_deployment_is_404(client: TestClient) -> None:
    answer = client.get("/deployments/" + "%3Cscript%3E")
    assert answer.status_code == 404
    assert "<script>" not in answer.text


@pytest.mark.parametrize("action", ["pause", "unpause", "run", "archive"])
def test_confirmation_page(client: TestClient, action: str) -> None:
    html = client.get(f"/deployments/nightly/confirm/{action}").text
    assert f'<form id="confirm" method="post" action="/deployments/nightly/{action}">' in html
    assert 'name="csrf"' in html and 'id="confirm-button"' in html
    assert 'class="cancel" href="/deployments/nightly"' in html
    assert ('id="note"' in html) == (action == "pause")


def test_pause_then_unpause(client: TestClient, seeded: Seeded) -> None:
    token = csrf_of(client)
    done = client.post("/deployments/nightly/pause", data={"csrf": token, "note": "db " + XSS})
    assert (done.status_code, done.headers["location"]) == (303, "/deployments/nightly")
    page = client.get("/deployments/nightly").text
    assert '<p class="flash" role="status">nightly: paused</p>' in page
    assert "db &lt;script&gt;" in page and 'data-action="unpause"' in page
    assert seeded.history.deployments.get("nightly").note == "db " + XSS
    client.post("/deployments/nightly/unpause", data={"csrf": token})
    assert seeded.history.deployments.get("nightly").status == "active"
    assert 'class="flash"' not in client.get("/deployments/nightly").text.split("</main>")[1]


def test_run_now_names_the_new_run(client: TestClient, seeded: Seeded) -> None:
    client.post("/deployments/nightly/run", data={"csrf": csrf_of(client)})
    page = client.get("/deployments/nightly").text
    flash = text_of(page.replace('class="flash"', 'id="f" class="flash"'), "f")
    assert re.fullmatch(r"nightly: started run r-[0-9a-f]{16}", flash)


def test_a_refused_action_shows_why(client: TestClient, seeded: Seeded) -> None:
    seeded.history.deployments.archive("held")
    answer = client.post("/deployments/held/unpause", data={"csrf": csrf_of(client)})
    assert answer.status_code == 409
    assert '<p class="error" role="alert">held is archived' in answer.text
    assert 'id="confirm"' in answer.text


def test_an_unknown_action_is_404(client: TestClient, seeded: Seeded) -> None:
    assert client.get("/deployments/nightly/confirm/delete").status_code == 404
    assert (
        client.post("/deployments/nightly/delete", data={"csrf": csrf_of(client)}).status_code
        == 404
    )
    assert seeded.actions.calls == []


def test_vault_page_shows_metadata_never_values(client: TestClient, seeded: Seeded) -> None:
    vault = Vault.open(seeded.home, keystore=FileKeystore(seeded.home / "key"),
                       clock=lambda: T0 - timedelta(days=40))  # fmt: skip
    vault.set("API_KEY", SecretValue("sk-VERYSECRET"), ["api.example.com"], methods=["GET"],
              paths=["/v1/*"], rotate_after=30 * 86400)  # fmt: skip
    vault.set("FRESH", SecretValue("another-SECRET"), ["*.example.org"])
    html = client.get("/vault").text
    assert "VERYSECRET" not in html and "another-SECRET" not in html
    api = html.split('<tr data-secret="API_KEY"')[1].split("</tr>")[0]
    assert api.startswith(' class="overdue"')
    assert '<td class="domains">api.example.com</td>' in api
    assert "methods: GET; paths: /v1/*" in api
    assert '<td class="age">40 ' in api
    assert 'data-secret="FRESH">' in html


def test_vault_rows_work_without_rotate_after() -> None:
    meta = SimpleNamespace(updated=T0 - timedelta(days=3))
    assert row(meta, T0).overdue is False  # type: ignore[arg-type]
    assert row(meta, T0).age_days == 3  # type: ignore[arg-type]
