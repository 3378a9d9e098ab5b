"""A zygote's child taking its client's place (``runner/zygote.py`` forks it).

It takes the client's fds as 0, 1, 2 (``sys.std*`` rebuilt on them, so terminal detection and
encodings are the client's), its working directory, umask and environment, default signal
handling, a session of its own (the service's terminal is not the run's) and SIGTERM when the
zygote dies; says its pid and waits for the client's go; runs ``main(argv)``; sends the exit
code back. A thread delivers the signals the client passes on; the client's end closing (it
died) SIGTERMs the run, so it stops and cleans up. Anything that fails before the pid is sent
is a refusal: the client then runs the command itself; so is a client that does not say go (it
gave up waiting and runs the command itself). Nothing runs twice.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import signal
import socket
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from core.pids import die_with_parent
from runner.launch_wire import FORWARDED, STDIO, LaunchRequest, LineReader, WireError, line, parse

_KEPT: list[Any] = []  # the zygote's own sys.std* objects: never finalized (they own fds 0-2)


def take_over(
    conn: socket.socket,
    reader: LineReader,
    req: LaunchRequest,
    fds: list[int],
    *,
    zygote: int,
    mask: set[int | signal.Signals],
    main: Callable[[list[str]], int],
) -> NoReturn:
    """Run ``req`` in this (just forked) process and exit with its code."""
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.setsid()
        die_with_parent(zygote)
        conn.settimeout(None)
        adopt_stdio(fds, req.streams)
        os.chdir(req.cwd)
        os.umask(req.umask)
        os.environ.clear()
        os.environ.update(req.env)
        tempfile.tempdir = None  # computed again from this environment's TMPDIR
        sys.argv = ["coatcheck", *req.argv]
    except BaseException as exc:  # noqa: BLE001 - refused: the client runs it itself
        with contextlib.suppress(OSError):
            conn.sendall(line(refused=f"could not take the run: {type(exc).__name__}"))
        os._exit(1)
    try:  # the client commits (or, too late, has gone its own way: then nothing runs here)
        conn.sendall(line(pid=os.getpid()))
        go = parse(reader.read()).get("go") is True
    except (OSError, WireError):
        go = False
    if not go:
        os._exit(1)
    finished = threading.Event()
    threading.Thread(target=_listen, args=(reader, finished), daemon=True).start()
    code = 1
    try:
        code = main(list(req.argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported as Python would, then exit 1
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    finished.set()
    with contextlib.suppress(OSError):
        conn.sendall(line(exit=code))
    os._exit(code & 0xFF)


def _listen(reader: LineReader, finished: threading.Event) -> None:
    """Deliver the client's forwarded signals; when it is gone, stop the run (SIGTERM). Each
    goes to the main thread itself: a signal taken by this thread would not interrupt the call
    the main thread is blocked in."""
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    main = threading.main_thread().ident
    assert main is not None
    try:
        while raw := reader.read():
            signum = parse(raw).get("signal")
            if signum in FORWARDED:
                signal.pthread_kill(main, signum)
    except (OSError, WireError):
        pass
    if not finished.is_set():
        signal.pthread_kill(main, signal.SIGTERM)


def adopt_stdio(fds: list[int], streams: tuple[tuple[str, str], ...]) -> None:
    """``fds`` become 0, 1, 2 and ``sys.stdin``, ``sys.stdout``, ``sys.stderr`` are rebuilt on
    them, with the client's encodings, buffered as Python buffers its own."""
    _KEPT.extend((sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__,
                  sys.__stderr__))  # fmt: skip
    for fd, target in zip(fds, STDIO, strict=True):
        os.dup2(fd, target)
    for fd in fds:
        if fd not in STDIO:
            os.close(fd)
    fds.clear()
    made = []
    for target in STDIO:
        encoding, errors = streams[target] if target < len(streams) else ("utf-8", "strict")
        try:
            codecs.lookup(encoding)
            codecs.lookup_error(errors)
        except LookupError:
            encoding, errors = "utf-8", "strict"
        made.append(_text_stream(target, encoding, errors))
    sys.stdin, sys.stdout, sys.stderr = made
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = made  # type: ignore[misc]


def _text_stream(fd: int, encoding: str, errors: str) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "rb" if fd == 0 else "wb", closefd=False)
    tty = raw.isatty()
    buffered = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
    return io.TextIOWrapper(
        buffered, encoding=encoding, errors=errors, newline=None if fd == 0 else "\n",
        line_buffering=tty or fd == 2,
    )  # fmt: skip
