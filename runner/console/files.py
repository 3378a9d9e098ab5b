"""Reading a run's files for the console: never following a symlink, never more than a cap.

A run's directory is written by the runner, but what is in its files (output, transcript,
audit, artifacts) came from the sandbox or an upstream: only ever bytes to show as text.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

OUTPUT_TAIL: Final = 256 * 1024
TRANSCRIPT_CAP: Final = 8 * 1024 * 1024
AUDIT_LINES: Final = 5000
REPORT_CAP: Final = 1024 * 1024


def open_plain(path: Path) -> int | None:
    """A read-only descriptor of ``path`` when it is a regular file (not a symlink), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def read_capped(path: Path, cap: int) -> tuple[bytes, bool]:
    """The first ``cap`` bytes and whether there was more."""
    fd = open_plain(path)
    if fd is None:
        return b"", False
    with os.fdopen(fd, "rb") as f:
        data = f.read(cap + 1)
    return data[:cap], len(data) > cap


def read_from(path: Path, offset: int, cap: int) -> bytes:
    """Up to ``cap`` bytes from ``offset`` (none when the file is gone or shorter)."""
    fd = open_plain(path)
    if fd is None:
        return b""
    with os.fdopen(fd, "rb") as f:
        f.seek(offset)
        return f.read(cap)


def tail(path: Path, limit: int = OUTPUT_TAIL) -> tuple[bytes, int]:
    """The last ``limit`` bytes and the offset where they start."""
    fd = open_plain(path)
    if fd is None:
        return b"", 0
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        start = max(0, size - limit)
        f.seek(start)
        return f.read(limit), start


def lines(path: Path, cap: int, *, complete: bool = False) -> list[str]:
    """The lines (decoded, bad bytes replaced) of the first ``cap`` bytes; with ``complete``,
    only those that end in a newline (a live file's last line may be half written)."""
    data, _ = read_capped(path, cap)
    if complete:
        data = data[: data.rfind(b"\n") + 1]
    return data.decode("utf-8", "replace").splitlines()
