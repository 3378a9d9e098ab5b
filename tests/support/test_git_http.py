"""The local git smart-HTTP server, driven by the host's real ``git``: clone with Basic auth,
push a new branch, and a wrong password refused with a 401."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.git_http import REALM, GitServer, basic, git_env

USER = "x-access-token"
PASSWORD = "ghp_" + "T3stT0ken" * 4


@pytest.fixture
def git_server(test_ca: trustme.CA) -> Iterator[GitServer]:
    with GitServer.start(test_ca, user=USER, password=PASSWORD) as server:
        yield server


def run_git(
    tmp_path: Path, ca_file: Path, *args: str, auth: str | None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The host's git as a client would run it: the test CA, no user config, an auth header."""
    home = tmp_path / "client-home"
    home.mkdir(exist_ok=True)
    env = git_env(home) | {
        "GIT_SSL_CAINFO": str(ca_file),
        "GIT_AUTHOR_NAME": "Agent",
        "GIT_AUTHOR_EMAIL": "agent@coatcheck.test",
        "GIT_COMMITTER_NAME": "Agent",
        "GIT_COMMITTER_EMAIL": "agent@coatcheck.test",
    }
    extra = ("-c", f"http.extraHeader=Authorization: {auth}") if auth else ()
    return subprocess.run(
        ["git", *extra, *args],
        cwd=cwd or tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_create_repo_makes_one_commit_on_the_branch(git_server):
    sha = git_server.create_repo("demo", {"README.md": "hello\n", "src/a.py": "x = 1\n"})
    assert git_server.branches("demo") == {"main": sha}
    assert git_server.log("demo", "main") == ["initial commit"]
    assert git_server.show("demo", "main", "src/a.py") == "x = 1\n"


def test_clone_and_push_a_branch_with_basic_auth(git_server, tmp_path, ca_file):
    base = git_server.create_repo("demo", {"bug.py": "return a - b\n"}, branch="main")
    auth = basic(USER, PASSWORD)
    clone = run_git(tmp_path, ca_file, "clone", git_server.url("demo"), "work", auth=auth)
    assert clone.returncode == 0, clone.stderr
    work = tmp_path / "work"
    assert (work / "bug.py").read_text() == "return a - b\n"

    (work / "bug.py").write_text("return a + b\n")
    for args in (("checkout", "-q", "-b", "fix/add"), ("commit", "-qam", "Fix add")):
        done = run_git(tmp_path, ca_file, *args, auth=None, cwd=work)
        assert done.returncode == 0, done.stderr
    push = run_git(tmp_path, ca_file, "push", "origin", "fix/add", auth=auth, cwd=work)
    assert push.returncode == 0, push.stderr

    branches = git_server.branches("demo")
    assert set(branches) == {"main", "fix/add"} and branches["main"] == base
    assert git_server.log("demo", "fix/add") == ["Fix add", "initial commit"]
    assert git_server.show("demo", "fix/add", "bug.py") == "return a + b\n"
    seen = git_server.requests
    assert all(r.authorization == auth and r.status == 200 for r in seen)
    paths = [(r.method, r.path) for r in seen]
    assert ("GET", "/demo.git/info/refs?service=git-upload-pack") in paths
    assert ("POST", "/demo.git/git-upload-pack") in paths
    assert ("GET", "/demo.git/info/refs?service=git-receive-pack") in paths
    assert ("POST", "/demo.git/git-receive-pack") in paths


@pytest.mark.parametrize("how", ["extra-header", "in-url"])
def test_a_wrong_password_is_refused_with_401(git_server, tmp_path, ca_file, how):
    git_server.create_repo("demo", {"README.md": "hello\n"})
    wrong = basic(USER, "not-the-token")
    url = git_server.url("demo")
    if how == "in-url":
        url = url.replace("https://", f"https://{USER}:not-the-token@")
    clone = run_git(
        tmp_path, ca_file, "clone", url, "work", auth=wrong if how == "extra-header" else None
    )
    assert clone.returncode != 0
    # git asks for a username after a 401 to a header it was told to send; with a user and
    # password in the URL it gives up at once
    why = "terminal prompts disabled" if how == "extra-header" else "Authentication failed"
    assert why in clone.stderr, clone.stderr
    assert not (tmp_path / "work" / "README.md").exists()
    assert git_server.requests and all(r.status == 401 for r in git_server.requests)
    assert wrong in [r.authorization for r in git_server.requests]


def test_no_credentials_get_a_basic_challenge(git_server, tmp_path, ca_file):
    git_server.create_repo("demo", {"README.md": "hello\n"})
    import http.client
    import ssl

    ctx = ssl.create_default_context(cafile=str(ca_file))
    conn = http.client.HTTPSConnection("127.0.0.1", git_server.port, context=ctx, timeout=10)
    try:
        conn.request("GET", "/demo.git/info/refs?service=git-upload-pack")
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 401
    assert response.getheader("WWW-Authenticate") == f'Basic realm="{REALM}"'
    assert git_server.requests[-1].authorization is None
