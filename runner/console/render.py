"""The console's Jinja2 environment: templates from the package, autoescape on for every
template (whatever its name), undefined names an error. Nothing is ever marked safe."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from runner.console.guard import SECURITY_HEADERS, Who


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else ""


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("runner.console", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["seconds"] = _seconds
    return env


class Pages:
    def __init__(self) -> None:
        self.env = environment()

    def render(self, request: Request, template: str, status: int = 200,
               **context: Any) -> HTMLResponse:  # fmt: skip
        who: Who | None = getattr(request.state, "who", None)
        session = who.session if who is not None else None
        context.setdefault("error", None)
        html = self.env.get_template(template).render(
            csrf=session.csrf if session is not None else "",
            flash=session.pop_flash() if session is not None else [],
            signed_in=who is not None,
            **context,
        )
        return HTMLResponse(html, status, headers=SECURITY_HEADERS)
