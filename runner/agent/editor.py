"""The ``text_editor_20250728`` client tool (``str_replace_based_edit_tool``), confined to the
workspace.

Commands: ``view`` (a file with line numbers, an optional 1-indexed ``view_range`` whose end may
be -1, or a directory listing), ``create``, ``str_replace`` (exactly one match, else an error
saying how many), ``insert`` (after line ``insert_line``, 0 = top; ``insert_text``, or
``new_str`` as older docs had it). Every path must resolve inside the workspace: ``..``, absolute
paths elsewhere and symlinks that lead out are refused. A failure is a ``ToolError``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.agent.bash import ToolError, cap

MAX_FILE_BYTES = 10 * 1024 * 1024
LISTING_LIMIT = 500


class Editor:
    def __init__(self, workspace: str | Path) -> None:
        self.root = Path(workspace).resolve()

    def call(self, tool_input: Mapping[str, Any]) -> str:
        command = tool_input.get("command")
        handler = {
            "view": self.view,
            "create": self.create,
            "str_replace": self.str_replace,
            "insert": self.insert,
        }.get(str(command))
        if handler is None:
            raise ToolError(f"unknown command {command!r}: use view, create, str_replace or insert")
        return handler(tool_input)

    # -- paths ------------------------------------------------------------------------------
    def path(self, raw: Any) -> Path:
        if not isinstance(raw, str) or not raw:
            raise ToolError("`path` is required: a file in the workspace, e.g. /workspace/a.txt")
        given = Path(raw)
        full = given if given.is_absolute() else self.root / given
        resolved = full.resolve()  # follows symlinks: one leading out is caught here
        if resolved != self.root and self.root not in resolved.parents:
            raise ToolError(f"{raw}: outside the workspace {self.root}; paths must stay inside it")
        return resolved

    def _read(self, path: Path) -> str:
        if not path.is_file():
            raise ToolError(f"{path}: no such file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ToolError(f"{path}: larger than {MAX_FILE_BYTES} bytes; view a range with bash")
        return path.read_text(encoding="utf-8", errors="replace")

    # -- commands ---------------------------------------------------------------------------
    def view(self, tool_input: Mapping[str, Any]) -> str:
        path = self.path(tool_input.get("path"))
        if path.is_dir():
            names = sorted(
                str(p.relative_to(path)) + ("/" if p.is_dir() else "")
                for p in path.rglob("*")
                if not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            shown = names[:LISTING_LIMIT]
            more = f"\n[... {len(names) - len(shown)} more]" if len(names) > len(shown) else ""
            return "\n".join(shown) + more
        lines = self._read(path).splitlines()
        start, end = 1, len(lines)
        rng = tool_input.get("view_range")
        if rng is not None:
            if not (
                isinstance(rng, list) and len(rng) == 2 and all(isinstance(n, int) for n in rng)
            ):
                raise ToolError("view_range must be [start, end] (1-indexed; end -1 = to the end)")
            start, end = rng[0], (len(lines) if rng[1] == -1 else rng[1])
            if not (1 <= start <= max(len(lines), 1) and start <= end <= len(lines)):
                raise ToolError(f"view_range {rng} is outside the file's {len(lines)} lines")
        numbered = (f"{n:6}\t{lines[n - 1]}" for n in range(start, end + 1))
        return cap("\n".join(numbered))

    def create(self, tool_input: Mapping[str, Any]) -> str:
        path = self.path(tool_input.get("path"))
        text = tool_input.get("file_text")
        if not isinstance(text, str):
            raise ToolError("create needs `file_text`, the whole content of the new file")
        if path.is_dir():
            raise ToolError(f"{path} is a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path(str(path.parent))  # the parent, once made, must still be inside
        tmp = path.with_name(f".{path.name}.coatcheck-tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        return f"created {path} ({len(text.encode())} bytes)"

    def str_replace(self, tool_input: Mapping[str, Any]) -> str:
        path = self.path(tool_input.get("path"))
        old, new = tool_input.get("old_str"), tool_input.get("new_str", "")
        if not isinstance(old, str) or not old:
            raise ToolError("str_replace needs a non-empty `old_str`")
        if not isinstance(new, str):
            raise ToolError("`new_str` must be a string")
        text = self._read(path)
        count = text.count(old)
        if count != 1:
            why = "no match" if count == 0 else f"{count} matches"
            raise ToolError(f"{why} for old_str in {path}; it must match exactly once")
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        return f"edited {path}"

    def insert(self, tool_input: Mapping[str, Any]) -> str:
        path = self.path(tool_input.get("path"))
        line = tool_input.get("insert_line")
        text = tool_input.get("insert_text", tool_input.get("new_str"))
        if not isinstance(line, int) or isinstance(line, bool):
            raise ToolError("insert needs `insert_line`, a line number (0 = top)")
        if not isinstance(text, str):
            raise ToolError("insert needs `insert_text`")
        lines = self._read(path).splitlines(keepends=True)
        if not 0 <= line <= len(lines):
            raise ToolError(f"insert_line {line} is outside 0..{len(lines)}")
        if lines and not lines[-1].endswith("\n") and line == len(lines):
            lines[-1] += "\n"
        lines.insert(line, text if text.endswith("\n") else text + "\n")
        path.write_text("".join(lines), encoding="utf-8")
        return f"inserted {len(text.splitlines()) or 1} line(s) after line {line} of {path}"
