"""A local git smart-HTTP server with Basic auth, for the clone and push path: the host's own
``git http-backend`` (CGI) behind a TLS server on 127.0.0.1, its certificate signed by a trustme
CA for ``git.coatcheck.test`` and ``127.0.0.1``::

    with GitServer.start(test_ca, user="x-access-token", password=TOKEN) as git:
        git.create_repo("demo", {"README.md": "hi\\n"})
        # git clone https://127.0.0.1:{git.port}/demo.git  (GIT_SSL_CAINFO=<ca pem>)
        assert git.branches("demo") == {"main": ...}
        assert git.requests[-1].authorization == git.basic_header

Every request needs ``Authorization: Basic`` with the right user and password; anything else
gets a 401 with ``WWW-Authenticate: Basic realm=...`` (as GitHub answers), and the backend is
never started. Authenticated requests run with ``REMOTE_USER`` set, so pushes are allowed.
Each request is recorded: method, path (with the query), Authorization header, status.
"""

from __future__ import annotations

import base64
import hmac
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trustme

from tests.support.fake_anthropic_http import Server
from tests.support.http_body import read_body

REALM = "coatcheck test git"
BACKEND = "http-backend"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "Fixture",
    "GIT_AUTHOR_EMAIL": "fixture@coatcheck.test",
    "GIT_COMMITTER_NAME": "Fixture",
    "GIT_COMMITTER_EMAIL": "fixture@coatcheck.test",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}


@dataclass(frozen=True)
class GitRequest:
    method: str
    path: str  # with the query
    authorization: str | None
    status: int


def basic(user: str, password: str) -> str:
    """The ``Authorization`` header value for ``user``:``password``."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def git_env(home: Path | str) -> dict[str, str]:
    """An environment for running git that ignores the host's and the user's configuration."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
    }


class GitServer:
    def __init__(self, ca: trustme.CA, *, user: str, password: str, names: tuple[str, ...]) -> None:
        self.basic_header = basic(user, password)
        self.user = user
        self.requests: list[GitRequest] = []
        self.root = Path(tempfile.mkdtemp(prefix="coatcheck-git-"))
        self.projects = self.root / "projects"
        self.projects.mkdir()
        self._lock = threading.Lock()
        self._env = git_env(self.root) | _IDENTITY
        ctx = _server_context(ca, names)
        self._server = Server(("127.0.0.1", 0), _handler(self), ctx)
        self.port: int = self._server.server_address[1]

    @classmethod
    def start(
        cls,
        ca: trustme.CA,
        *,
        user: str,
        password: str,
        names: tuple[str, ...] = ("git.coatcheck.test", "127.0.0.1"),
    ) -> GitServer:
        server = cls(ca, user=user, password=password, names=names)
        threading.Thread(target=server._server.serve_forever, args=(0.02,), daemon=True).start()
        return server

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> GitServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, name: str, host: str = "127.0.0.1") -> str:
        """The clone URL of repository ``name`` (``https://host:port/name.git``)."""
        return f"https://{host}:{self.port}/{_dir(name)}"

    # -- repositories --------------------------------------------------------------------
    def create_repo(self, name: str, files: dict[str, str], branch: str = "main") -> str:
        """A bare repository ``name.git`` with one commit of ``files`` on ``branch``; returns
        the commit's sha."""
        bare = self.projects / _dir(name)
        self._git("init", "-q", "--bare", "-b", branch, str(bare))
        with tempfile.TemporaryDirectory(dir=self.root) as work:
            self._git("init", "-q", "-b", branch, work)
            for rel, text in files.items():
                path = Path(work, rel)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            self._git("-C", work, "add", "-A")
            self._git("-C", work, "commit", "-q", "-m", "initial commit")
            self._git("-C", work, "push", "-q", str(bare), f"{branch}:{branch}")
        return self.branches(name)[branch]

    def branches(self, name: str) -> dict[str, str]:
        """Branch name -> commit sha, of the bare repository ``name``."""
        out = self._repo_git(name, "for-each-ref", "--format=%(refname:short) %(objectname)")
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def log(self, name: str, branch: str) -> list[str]:
        """The subjects of ``branch``'s commits, newest first."""
        return self._repo_git(name, "log", "--format=%s", branch).splitlines()

    def show(self, name: str, branch: str, path: str) -> str:
        """The text of ``path`` at the tip of ``branch``."""
        return self._repo_git(name, "show", f"{branch}:{path}")

    def _repo_git(self, name: str, *args: str) -> str:
        return self._git("--git-dir", str(self.projects / _dir(name)), *args)

    def _git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", *args], env=self._env, capture_output=True, text=True, timeout=60
        )
        if done.returncode:
            raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    # -- serving -------------------------------------------------------------------------
    def authorized(self, header: str | None) -> bool:
        return header is not None and hmac.compare_digest(
            header.encode(), self.basic_header.encode()
        )

    def record(self, method: str, path: str, authorization: str | None, status: int) -> None:
        with self._lock:
            self.requests.append(GitRequest(method, path, authorization, status))

    def cgi(self, method: str, path: str, headers: Any, body: bytes) -> bytes:
        """Run ``git http-backend`` for one authenticated request; its raw CGI output."""
        split = urlsplit(path)
        env = git_env(self.root) | {
            "GIT_PROJECT_ROOT": str(self.projects),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": method,
            "PATH_INFO": split.path,
            "QUERY_STRING": split.query,
            "CONTENT_TYPE": headers.get("Content-Type") or "",
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": self.user,
            "REMOTE_ADDR": "127.0.0.1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        for key, value in headers.items():
            env["HTTP_" + key.upper().replace("-", "_")] = value
        env.pop("HTTP_AUTHORIZATION", None)
        done = subprocess.run(
            ["git", BACKEND], input=body, env=env, capture_output=True, timeout=120
        )
        return done.stdout


def _dir(name: str) -> str:
    return name if name.endswith(".git") else f"{name}.git"


def _server_context(ca: trustme.CA, names: tuple[str, ...]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(ctx)
    return ctx


def parse_cgi(raw: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """A CGI response: (status, headers, body). A backend that printed nothing is a 500."""
    if not raw:
        return 500, [], b""
    head, _, body = raw.partition(b"\r\n\r\n")  # http-backend ends its lines with CRLF
    status, headers = 200, []
    for line in head.decode("latin-1").splitlines():
        key, _, value = line.partition(":")
        if key.lower() == "status":
            status = int(value.split()[0])
        elif key:
            headers.append((key.strip(), value.strip()))
    return status, headers, body


def _handler(git: GitServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 60

        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            body = self._body()
            auth = self.headers.get("Authorization")
            if not git.authorized(auth):
                git.record(self.command, self.path, auth, 401)
                self._send(401, [("WWW-Authenticate", f'Basic realm="{REALM}"')], b"")
                return
            status, headers, out = parse_cgi(git.cgi(self.command, self.path, self.headers, body))
            git.record(self.command, self.path, auth, status)
            self._send(status, headers, out)

        do_GET = do_POST = _serve

        def _body(self) -> bytes:
            return read_body(self)

        def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
