"""Path rules: a path that any of several real servers' routing rules reads differently from us
matches no rule. Table of named attacks, then a property against models of those servers."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.pathrules import canonical_path, path_matches


@pytest.mark.parametrize(
    ("path", "matches"),
    [
        ("/v1/", True),
        ("/v1/users/42", True),
        ("/v1/users?x=/../admin", True),
        ("/v1/%75sers", True),  # %75 = u: every server decodes it alike
        ("/v2/users", False),
        ("/v1", False),
        ("/v1/../admin", False),
        ("/v1/./users", False),
        ("/v1/.../admin", False),
        ("/v1/admin./x", False),
        ("/v1/file.json", True),
        ("/v1/%2e%2e;/admin", False),
        ("/v1/%2e%2e/admin", False),
        ("/v1/%2E%2E/admin", False),
        ("/v1/%252e%252e/admin", False),
        ("/v1/%c0%ae%c0%ae/admin", False),
        ("/v1/%u002e%u002e/admin", False),
        ("/v1/..%00/admin", False),
        ("/v1/..%09/admin", False),
        ("/v1/..%2f..%2fadmin", False),
        ("/v1/..\\admin", False),
        ("/v1/%5c../admin", False),
        ("/v1//admin", False),
        ("/v1/.../admin", False),
        ("/v1/admin./x", False),
        ("/v1/file.json", True),
        ("/v1/;x=1/admin", False),
        ("/v1/\u00e9", False),
        ("/v1/a b", False),
        ("/v1/%", False),
        ("/v1/%zz", False),
        ("v1/users", False),
        ("/v1/users#frag", False),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_prefix_rule(path, matches):
    assert path_matches("/v1/*", path) is matches


@pytest.mark.parametrize(
    ("rule", "path", "matches"),
    [
        ("/user", "/user", True),
        ("/user", "/user/", False),
        ("/user", "/user/../user", False),
        ("/user", "/%75ser", True),
        ("/user", "/user;x", False),
    ],
)
def test_exact_rule(rule, path, matches):
    assert path_matches(rule, path) is matches


# -- models of how servers route a request path ---------------------------------------------
def _remove_dots(path: str) -> str:
    out: list[str] = []
    for seg in path.split("/")[1:]:
        if seg == "..":
            if out:
                out.pop()
        elif seg != ".":
            out.append(seg)
    tail = "/" if path.endswith(("/", "/.", "/..")) and out else ""
    return "/" + "/".join(out) + (tail if not (out and out[-1] == "") else "")


def _decode_unreserved(path: str) -> str:
    return re.sub(
        r"%([0-9A-Fa-f]{2})",
        lambda m: chr(int(m[1], 16)) if re.fullmatch(r"[A-Za-z0-9\-._~]", chr(int(m[1], 16)))
        else m[0].upper(),
        path,
    )  # fmt: skip


def rfc3986(path: str) -> str:
    return _remove_dots(_decode_unreserved(path))


def nginx(path: str) -> str:
    return _remove_dots(re.sub("/+", "/", unquote(path)))


def tomcat(path: str) -> str:
    stripped = "/".join(seg.split(";", 1)[0] for seg in path.split("/"))
    return _remove_dots(unquote(stripped))


def iis(path: str) -> str:
    p = re.sub(r"%u([0-9A-Fa-f]{4})", lambda m: chr(int(m[1], 16)), path)
    p = p.replace("%c0%ae", ".").replace("%C0%AE", ".").replace("%c0%af", "/")
    p = unquote(p).replace("\\", "/")
    p = "/".join(seg.rstrip(". ") if seg.strip(".") else seg for seg in p.split("/"))
    p = "/".join(".." if seg and set(seg) == {"."} else seg for seg in p.split("/"))
    return _remove_dots(p)


def double_decoder(path: str) -> str:
    return _remove_dots(unquote(unquote(path)))


def nul_truncating(path: str) -> str:
    p = unquote(path).split("\x00", 1)[0]
    return _remove_dots(re.sub(r"[\t\r\n]", "", p))


SERVERS: dict[str, Callable[[str], str]] = {
    "rfc3986": rfc3986,
    "nginx": nginx,
    "tomcat": tomcat,
    "iis": iis,
    "double-decoder": double_decoder,
    "nul-truncating": nul_truncating,
}

PIECES = st.sampled_from(
    ["/", "v1", "admin", ".", "..", "...", ";", ";x=1", "%2e", "%2E", "%2f", "%5c", "%25",
     "%252e", "%c0%ae", "%u002e", "%00", "%09", "%75", "%41", "\\", "a", "-", "~", "%"]
)  # fmt: skip
PATHS = st.lists(PIECES, max_size=10).map(lambda parts: "/v1/" + "".join(parts))


@settings(max_examples=3000, deadline=None)
@given(PATHS)
def test_every_server_routes_a_matching_path_where_the_rule_says(path):
    if not path_matches("/v1/*", path):
        return
    canonical = canonical_path(path)
    for name, route in SERVERS.items():
        assert route(path) == canonical, (name, path)
        assert route(path).startswith("/v1/"), (name, path)


def test_the_models_do_disagree_on_what_we_refuse():
    """The property above is not vacuous: on refused paths the servers route elsewhere."""
    routed = {name: route("/v1/..;/admin") for name, route in SERVERS.items()}
    assert routed["tomcat"] == "/admin" and routed["rfc3986"] != "/admin"
    assert iis("/v1/%c0%ae%c0%ae/admin") == "/admin"
    assert double_decoder("/v1/%252e%252e/admin") == "/admin"
