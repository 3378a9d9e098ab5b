"""Where coatcheck keeps its state: ``COATCHECK_HOME`` or a per-user default."""

from __future__ import annotations

import os
from pathlib import Path


def coatcheck_home(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    explicit = env.get("COATCHECK_HOME")
    if explicit:
        return Path(explicit).expanduser()
    data = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "coatcheck"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) readable by this user only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def remove_tree(path: Path) -> None:
    """``shutil.rmtree(path, ignore_errors=True)``, imported only when there is something to
    remove: shutil brings bz2 and lzma along, which the proxy's coordinator does without."""
    if os.path.lexists(path):
        import shutil

        shutil.rmtree(path, ignore_errors=True)
