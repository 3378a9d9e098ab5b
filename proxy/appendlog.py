"""The audit log as a file every process of the service appends to: one ``write()`` a line.

The shared service's workers (and its coordinator) all append to the one audit log. Each
process opens it ``O_APPEND`` and hands the kernel a whole line in one ``write(2)``: on a
regular file Linux appends each such write at the end under the file's lock, so lines of
different processes never interleave, however long they are. No buffer of Python's in between
(a ``TextIOWrapper`` may split a long line into several writes).
"""

from __future__ import annotations

import os
from pathlib import Path


class AppendLog:
    """A text stream (``write``/``flush``/``close``) that appends each complete line to ``path``
    with one ``os.write``; a partial line waits for its newline."""

    def __init__(self, path: Path, *, mode: int = 0o600) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, mode)
        self._pending = ""

    def write(self, text: str) -> int:
        data = self._pending + text
        cut = data.rfind("\n") + 1
        self._pending = data[cut:]
        if cut:
            self._write_all(data[:cut].encode("utf-8", "surrogateescape"))
        return len(text)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # one write for a regular file; the loop only for a short write (disk full)
            view = view[os.write(self._fd, view) :]

    def flush(self) -> None:
        """Lines are written as they complete: nothing is held but a partial line."""

    def close(self) -> None:
        if self._fd >= 0:
            if self._pending:
                self._write_all(self._pending.encode("utf-8", "surrogateescape"))
                self._pending = ""
            os.close(self._fd)
            self._fd = -1

    @property
    def closed(self) -> bool:
        return self._fd < 0
