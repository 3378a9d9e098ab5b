"""The agent engines a job file can choose (``[agent] engine``): the built-in loop
(``runner/agent``, the Anthropic SDK with the model's own bash and editor tools) and Claude Code
headless (``claude -p``, with its own tool set). Pure: names, images, entry points, tools.
"""

from __future__ import annotations

from typing import Final, Literal

Engine = Literal["builtin", "claude-code"]
ENGINES: Final = ("builtin", "claude-code")
IMAGES: Final = {"builtin": "coatcheck/agent:latest", "claude-code": "coatcheck/claude-code:latest"}
COMMANDS: Final = {
    "builtin": ("python3", "-I", "/opt/coatcheck/agent/main.py"),
    "claude-code": ("python3", "-I", "/opt/coatcheck/agent/cc_main.py"),
}
BUILTIN_TOOLS: Final = ("bash", "editor")
# Claude Code's own tools (its --allowedTools names); the built-in names work as aliases.
CLAUDE_CODE_TOOLS: Final = (
    "Bash", "Read", "Edit", "MultiEdit", "Write", "Glob", "Grep", "LS", "NotebookEdit",
    "TodoWrite", "WebFetch", "WebSearch", "Task",
)  # fmt: skip
ALIASES: Final = {"bash": ("Bash",), "editor": ("Read", "Edit", "Write")}


def tool_problem(engine: str, tool: str) -> str | None:
    """Why ``tool`` is not a tool of ``engine`` (with the fix), or None."""
    known = BUILTIN_TOOLS if engine == "builtin" else BUILTIN_TOOLS + CLAUDE_CODE_TOOLS
    if tool in known:
        return None
    listed = ", ".join(known)
    example = '["bash", "editor"]' if engine == "builtin" else '["Bash", "Read", "Edit"]'
    where = "" if engine == "builtin" else " for Claude Code"
    return f'unknown tool "{tool}"{where}; known tools: {listed}, e.g. tools = {example}'


def claude_code_tools(tools: tuple[str, ...]) -> tuple[str, ...]:
    """``tools`` as Claude Code's --allowedTools names (aliases expanded, in order, once)."""
    out: list[str] = []
    for tool in tools:
        for name in ALIASES.get(tool, (tool,)):
            if name not in out:
                out.append(name)
    return tuple(out)
