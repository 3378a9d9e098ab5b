"""The run page: its facts, the transcript as a conversation (escaped), output, audit with the
refusals marked, the report, and artifacts that never leave out/."""

from __future__ import annotations

import os

import pytest
from starlette.testclient import TestClient

from runner.console.artifacts import open_artifact
from tests.runner.console.conftest import IMG, XSS, Seeded, write_run_dir
from tests.runner.console.helpers import tags_of, text_of


@pytest.fixture
def html(client: TestClient, seeded: Seeded) -> str:
    return client.get(f"/runs/{seeded.ok}").text


@pytest.mark.parametrize(
    ("element", "text"),
    [("status", "succeeded"), ("trigger", "api (api)"), ("scheduled", "2025-03-09T06:00:00"),
     ("started", "2025-03-09T06:00:00"), ("finished", "2025-03-09T06:00:42"),
     ("duration", "42.0 s"), ("exit-code", "0"), ("cost", "$0.0123")],
)  # fmt: skip
def test_facts(html: str, element: str, text: str) -> None:
    assert text in text_of(html, element)


def test_usage(html: str) -> None:
    usage = text_of(html, "usage")
    for words in ("input tokens: 1200", "output tokens: 340", "cache read input tokens: 77"):
        assert words in usage


def test_attacker_text_stays_text(html: str) -> None:
    assert XSS not in html and IMG not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "img" not in tags_of(html)
    assert "script" not in tags_of(html)  # a finished run needs no live.js
    assert XSS in text_of(html, "transcript") and IMG in text_of(html, "transcript")
    assert XSS in text_of(html, "output") and XSS in text_of(html, "report")


def test_transcript_is_a_conversation(html: str) -> None:
    conversation = html.split('id="transcript"')[1]
    assert conversation.index('class="message user"') < conversation.index(
        'class="message assistant"'
    )
    assert '<details class="tool-call"><summary>bash</summary>' in conversation
    assert '<details class="tool-result"><summary>bash</summary><pre>out &lt;img' in conversation


def test_output_bad_bytes_are_replaced(html: str) -> None:
    assert "\ufffd\ufffd end" in text_of(html, "output")


def test_audit_rows_mark_refusals(html: str) -> None:
    table = html.split('id="audit"')[1].split("</table>")[0]
    rows = table.split("<tr")[2:]
    assert len(rows) == 2
    assert not rows[0].startswith(' class="refused"')
    assert rows[1].startswith(' class="refused"')
    for cell in ('<td class="host">evil.test</td>', '<td class="method">POST</td>',
                 '<td class="path">/steal</td>', '<td class="decision">deny</td>',
                 '<td class="reason">domain_not_allowed</td>'):  # fmt: skip
        assert cell in rows[1]


def test_artifacts_are_listed_without_symlinks(html: str, seeded: Seeded) -> None:
    listed = html.split('id="artifacts"')[1].split("</ul>")[0]
    assert f'class="artifact" href="/runs/{seeded.ok}/artifacts/result.txt"' in listed
    assert f'href="/runs/{seeded.ok}/artifacts/sub/deep.bin"' in listed
    assert "link.txt" not in listed


def test_an_artifact_downloads_as_an_attachment(client: TestClient, seeded: Seeded) -> None:
    answer = client.get(f"/runs/{seeded.ok}/artifacts/sub/deep.bin")
    assert answer.status_code == 200
    assert answer.content == b"\0\1"
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["content-disposition"].startswith('attachment; filename="deep.bin"')
    assert answer.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    ["link.txt", "..%2Frun.json", "../run.json", "sub/../../run.json", "%2E%2E/run.json",
     "sub", "missing", "sub//deep.bin", "%2Fetc%2Fpasswd", "sub%2F..%2F..%2Frun.json"],
)  # fmt: skip
def test_nothing_outside_out_is_served(client: TestClient, seeded: Seeded, path: str) -> None:
    answer = client.get(f"/runs/{seeded.ok}/artifacts/{path}")
    assert answer.status_code == 404
    assert b"do not serve" not in answer.content and b'"status"' not in answer.content


def test_a_symlinked_directory_is_not_followed(client: TestClient, seeded: Seeded) -> None:
    out = seeded.home / "runs" / seeded.ok / "out"
    os.symlink(seeded.home, out / "up")
    assert client.get(f"/runs/{seeded.ok}/artifacts/up/secret.txt").status_code == 404


def test_claude_code_transcript(client: TestClient, seeded: Seeded) -> None:
    from tests.runner.console.conftest import lines

    write_run_dir(seeded.home, seeded.failed, transcript__jsonl=lines(
        {"type": "system", "subtype": "init", "model": "claude-x"},
        {"type": "assistant", "message": {"role": "assistant", "content": [
            {"type": "tool_use", "id": "u1", "name": "Bash", "input": {"command": XSS}}]}},
        {"type": "user", "message": {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "u1", "content": [{"type": "text",
                                                                      "text": IMG}]}]}},
        {"type": "result", "subtype": "success", "result": "done " + XSS},
    ))  # fmt: skip
    html = client.get(f"/runs/{seeded.failed}").text
    assert '<details class="tool-call"><summary>Bash</summary>' in html
    assert '<details class="tool-result"><summary>Bash</summary>' in html
    assert "result (success): done &lt;script&gt;" in html
    assert XSS not in html and IMG not in html


def test_a_running_run_loads_live_js(client: TestClient, seeded: Seeded) -> None:
    html = client.get(f"/runs/{seeded.running}").text
    assert '<script src="/static/live.js" defer></script>' in html
    assert f'id="live" data-run="{seeded.running}" data-output-offset="9"' in html


def test_unknown_run_is_404(client: TestClient) -> None:
    assert client.get("/runs/r-0000000000000000").status_code == 404


@pytest.mark.parametrize(
    "relative",
    ["", ".", "..", "../run.json", "./result.txt", "sub/./deep.bin", "sub/", "/etc/passwd",
     "link.txt", "sub", "result.txt\x00"],
)  # fmt: skip
def test_open_artifact_refuses(seeded: Seeded, relative: str) -> None:
    assert open_artifact(seeded.home / "runs" / seeded.ok, relative) is None


def test_open_artifact_opens_a_file_inside(seeded: Seeded) -> None:
    opened = open_artifact(seeded.home / "runs" / seeded.ok, "sub/deep.bin")
    assert opened is not None
    fd, size = opened
    os.close(fd)
    assert size == 2
