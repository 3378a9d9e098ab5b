"""Reading the console's HTML in tests: the CSRF token of a page, an element's text."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from starlette.testclient import TestClient


def csrf_of(client: TestClient, path: str = "/") -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found, f"no CSRF field on {path}"
    return found.group(1)


class _Finder(HTMLParser):
    """The text inside the first element with ``id``; the tags seen anywhere."""

    def __init__(self, element_id: str) -> None:
        super().__init__()
        self.id = element_id
        self.depth = 0
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if self.depth:
            self.depth += 1
        elif dict(attrs).get("id") == self.id:
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.text.append(data)


def text_of(html: str, element_id: str) -> str:
    finder = _Finder(element_id)
    finder.feed(html)
    return "".join(finder.text)


def tags_of(html: str) -> list[str]:
    finder = _Finder("")
    finder.feed(html)
    return finder.tags
