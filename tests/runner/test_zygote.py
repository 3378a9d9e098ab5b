"""The zygote and its launch socket, with a fake ``coatcheck`` main in each child (no Docker).

What a warm run's process takes from its client (stdin, stdout, stderr, the working directory,
the environment), what it sends back (its pid, its exit code), signals passed on, the client's
death stopping it, and what makes the client run it itself (nothing answers, a stale socket,
another user, a request the zygote does not take).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.launch import hand_over
from runner.launch_wire import LaunchRequest, LineReader, WireError, line, send_with_fds
from runner.zygote import answers

ROOT = Path(__file__).resolve().parents[2]
STREAMS = (("utf-8", "strict"),) * 3


def start_zygote(path: Path, *, uid: int | None = None) -> subprocess.Popen[str]:
    code = "from tests.runner.zygote_fakes import serve; serve()"
    args = [str(path)] if uid is None else [str(path), str(uid)]
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    return proc


def stop_zygote(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Unix socket paths are limited to 108 bytes: pytest's tmp_path may be longer."""
    path = Path(tempfile.mkdtemp(prefix="cc-z-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def zygote(short_dir: Path) -> Iterator[Path]:
    path = short_dir / "launch.sock"
    proc = start_zygote(path)
    yield path
    stop_zygote(proc)


class Stdio:
    """Pipes standing in for a client's stdin, stdout and stderr."""

    def __init__(self) -> None:
        self.in_r, self.in_w = os.pipe()
        self.out_r, self.out_w = os.pipe()
        self.err_r, self.err_w = os.pipe()

    @property
    def fds(self) -> tuple[int, int, int]:
        return self.in_r, self.out_w, self.err_w

    def handed(self) -> None:
        """The child has its copies: close ours, so EOF comes when it is done."""
        for fd in (self.in_r, self.out_w, self.err_w, self.in_w):
            os.close(fd)

    def read(self) -> tuple[str, str]:
        with open(self.out_r, encoding="utf-8") as out, open(self.err_r, encoding="utf-8") as err:
            return out.read(), err.read()

    def readline(self) -> str:
        """One line of stdout, leaving the rest (for a child that says where it is)."""
        got = b""
        while not got.endswith(b"\n"):
            chunk = os.read(self.out_r, 1)
            if not chunk:
                break
            got += chunk
        return got.decode()


def launch(path: Path, io: Stdio, *argv: str, env: dict[str, str] | None = None,
           cwd: str = "/") -> object:  # fmt: skip
    launched = hand_over(["run", *argv], path=path, fds=io.fds, env=env or {"LANG": "C.UTF-8"},
                         cwd=cwd, streams=STREAMS)  # fmt: skip
    return launched


# -- the request line -----------------------------------------------------------------------
def test_a_request_round_trips() -> None:
    req = LaunchRequest("run", ("run", "--", "true"), "/work", {"K": "v=1\n"}, STREAMS)
    assert LaunchRequest.decode(req.encode().rstrip(b"\n")) == req


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        line(op="exec", argv=["run"]),
        line(op="run", argv="run -- true"),
        line(op="run", argv=["run"], cwd="relative/dir"),
        line(op="run", argv=["run"], env={"K": 1}),
        line(op="run", argv=["run"], streams=[["utf-8"]]),
    ],
    ids=["not-json", "not-an-object", "unknown-op", "argv-a-string", "relative-cwd",
         "env-not-strings", "streams-not-pairs"],
)  # fmt: skip
def test_a_malformed_request_is_refused(raw: bytes) -> None:
    with pytest.raises(WireError):
        LaunchRequest.decode(raw.rstrip(b"\n"))


# -- a run handed over ------------------------------------------------------------------------
def test_output_goes_to_the_clients_fds_apart_and_the_exit_code_comes_back(zygote: Path) -> None:
    io = Stdio()
    launched = launch(zygote, io, "echo")
    assert launched is not None
    io.handed()
    assert launched.pid != os.getpid()  # type: ignore[attr-defined]
    assert launched.wait() == 7  # type: ignore[attr-defined]
    assert io.read() == ("out\n", "err\n")


def test_the_run_has_the_clients_working_directory_umask_and_environment(
    zygote: Path, tmp_path: Path
) -> None:
    (tmp_path / "job.toml").write_text("")
    io = Stdio()
    old = os.umask(0o027)
    try:
        launched = launch(zygote, io, "where", "MY_VAR", "job.toml", cwd=str(tmp_path),
                          env={"MY_VAR": "from-the-client"})  # fmt: skip
    finally:
        os.umask(old)
    assert launched is not None
    io.handed()
    assert launched.wait() == 0  # type: ignore[attr-defined]
    out, err = io.read()
    assert out.splitlines() == [str(tmp_path), "from-the-client", str(tmp_path / "job.toml")]
    assert "stdout_tty=False encoding=utf-8 umask=027" in err


def test_a_terminal_stays_a_terminal(zygote: Path) -> None:
    """The child's sys.stdout is rebuilt on the client's fd: isatty() is the client's."""
    primary, tty = os.openpty()
    io = Stdio()
    os.close(io.out_w)
    io.out_w = tty
    launched = launch(zygote, io, "where", "X")
    assert launched is not None
    io.handed()
    assert launched.wait() == 0  # type: ignore[attr-defined]
    os.close(primary)
    _, err = io.read()
    assert "stdout_tty=True" in err


@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [(signal.SIGINT, 130, "stopped by SIGINT"), (signal.SIGTERM, 143, "stopped by SIGTERM"),
     (signal.SIGHUP, 129, "stopped by SIGHUP")],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)  # fmt: skip
def test_a_forwarded_signal_reaches_the_run(
    zygote: Path, signum: int, code: int, said: str
) -> None:
    io = Stdio()
    launched = launch(zygote, io, "wait")
    assert launched is not None
    io.handed()
    assert io.readline() == "waiting\n"
    launched.signal(signum)  # type: ignore[attr-defined]
    assert launched.wait() == code  # type: ignore[attr-defined]
    assert said in io.read()[1]


def test_the_client_dying_stops_the_run_with_sigterm(zygote: Path) -> None:
    io = Stdio()
    launched = launch(zygote, io, "wait")
    assert launched is not None
    io.handed()
    assert io.readline() == "waiting\n"
    launched.sock.close()  # type: ignore[attr-defined]  # what the kernel does when it dies
    out, err = io.read()  # EOF: the run's process has exited
    assert "stopped by SIGTERM" in err


def test_a_client_that_gave_up_before_its_go_gets_nothing_run(zygote: Path) -> None:
    """It waited too long for the pid and runs the command itself: the child must not."""
    io = Stdio()
    req = LaunchRequest("run", ("run", "echo"), "/", {}, STREAMS)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(zygote))
        send_with_fds(sock, req.encode(), io.fds)
        io.handed()
        assert b'"pid"' in LineReader(sock).read()
    assert io.read() == ("", "")  # EOF: the child has exited without running anything


def test_a_ping_is_answered(zygote: Path) -> None:
    assert answers(zygote)


# -- when the client runs it itself ------------------------------------------------------------
def test_no_socket_means_no_handover(short_dir: Path) -> None:
    io = Stdio()
    assert launch(short_dir / "launch.sock", io, "echo") is None
    assert not answers(short_dir / "launch.sock")


def test_a_stale_socket_file_means_no_handover(short_dir: Path) -> None:
    path = short_dir / "launch.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays; nothing listens (a zygote killed with -9)
    assert path.exists()
    assert launch(path, Stdio(), "echo") is None


def test_another_users_connection_is_refused(short_dir: Path) -> None:
    """SO_PEERCRED: the zygote serves its own user only (here it is told it is someone else)."""
    path = short_dir / "launch.sock"
    proc = start_zygote(path, uid=os.getuid() + 1)
    try:
        io = Stdio()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(path))
            reply = sock.makefile("rb").readline()
        assert b"refused" in reply and b"uid" in reply
        assert launch(path, io, "echo") is None
        io.handed()
        assert io.read() == ("", "")  # nothing ran
    finally:
        stop_zygote(proc)


def test_only_run_is_taken(zygote: Path) -> None:
    io = Stdio()
    assert hand_over(["vault", "list"], path=zygote, fds=io.fds, env={}, cwd="/",
                     streams=STREAMS) is None  # fmt: skip
    io.handed()
    assert io.read() == ("", "")


def test_the_zygote_reaps_each_child_and_then_cleans_up_after_it(short_dir: Path) -> None:
    path = short_dir / "launch.sock"
    proc = start_zygote(path)
    try:
        for _ in range(2):
            io = Stdio()
            launched = launch(path, io, "echo")
            assert launched is not None
            io.handed()
            assert launched.wait() == 7  # type: ignore[attr-defined]
            assert proc.stdout is not None
            assert proc.stdout.readline() == "a child ended\n"
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert children == []  # no zombie left
    finally:
        stop_zygote(proc)


def test_the_zygote_removes_its_socket_when_stopped(short_dir: Path) -> None:
    path = short_dir / "launch.sock"
    proc = start_zygote(path)
    assert path.exists()
    stop_zygote(proc)
    assert proc.returncode == 0
    assert not path.exists()
