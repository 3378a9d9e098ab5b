"""A run's artifacts: the regular files under its ``out/`` directory, and nothing else.

The names came from the sandbox. A download path is checked part by part: no empty, ``.`` or
``..`` part, no symlink anywhere on the way (each directory and the file are opened with
``O_NOFOLLOW`` relative to the one before), and the file must be a regular file. So neither
``../run.json`` nor a link to ``/etc/passwd`` ever leaves the server.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

OUT: Final = "out"
MAX_LISTED: Final = 1000
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


@dataclass(frozen=True)
class Artifact:
    path: str  # relative to out/, with "/"
    size: int


def listing(run_dir: Path) -> list[Artifact]:
    """The regular files under out/ (symlinks neither listed nor followed), sorted."""
    out = run_dir / OUT
    if out.is_symlink() or not out.is_dir():
        return []
    found: list[Artifact] = []
    for root, dirs, files in os.walk(out, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            full = Path(root) / name
            try:
                info = full.lstat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                found.append(Artifact(full.relative_to(out).as_posix(), info.st_size))
            if len(found) >= MAX_LISTED:
                return found
    return found


def open_artifact(run_dir: Path, relative: str) -> tuple[int, int] | None:
    """A read-only descriptor of ``out/<relative>`` and its size, or None when the path is
    not a regular file inside out/ reached without a symlink."""
    parts = relative.split("/")
    if not parts or any(p in ("", ".", "..") or "\x00" in p for p in parts):
        return None
    try:
        fd = os.open(run_dir / OUT, _DIR_FLAGS)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
        leaf = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except OSError:
        os.close(fd)
        return None
    os.close(fd)
    info = os.fstat(leaf)
    if not stat.S_ISREG(info.st_mode):
        os.close(leaf)
        return None
    return leaf, info.st_size
