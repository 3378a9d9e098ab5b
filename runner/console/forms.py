"""The console's forms: ``application/x-www-form-urlencoded`` bodies only (no files, no
multipart), capped, parsed by the standard library. A field given twice keeps its first value."""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl

from starlette.requests import Request

MAX_BODY: Final = 16 * 1024
MAX_FIELDS: Final = 20


async def read_form(request: Request) -> dict[str, str] | None:
    """The form's fields, or None when the body is too large or not a urlencoded form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    if not body:
        return {}
    if kind != "application/x-www-form-urlencoded":
        return None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                          max_num_fields=MAX_FIELDS, strict_parsing=False)  # fmt: skip
    except (UnicodeDecodeError, ValueError):
        return None
    fields: dict[str, str] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    return fields
