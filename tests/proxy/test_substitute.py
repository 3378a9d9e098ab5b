"""Swapping placeholders in each surface, with the right escaping."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

from hypothesis import given
from hypothesis import strategies as st

from proxy.substitute import Swap, swap_body, swap_header, swap_query

PH = "ccph_" + "Z" * 26


def sw(value: str, *surfaces: str) -> Swap:
    return Swap("T", PH, value, surfaces or ("header", "basic"))


def test_header_swap_reports_the_name():
    assert swap_header(f"Bearer {PH}", [sw("v")]) == ("Bearer v", {"T"})


def test_header_swap_needs_the_header_surface():
    assert swap_header(f"Bearer {PH}", [sw("v", "query")]) == (f"Bearer {PH}", set())


def test_basic_auth_is_decoded_swapped_and_reencoded():
    token = base64.b64encode(f"me:{PH}".encode()).decode()
    out, used = swap_header(f"Basic {token}", [sw("p@ss:word")])
    assert used == {"T"}
    assert base64.b64decode(out.split()[1]).decode() == "me:p@ss:word"


def test_basic_surface_off_leaves_basic_alone():
    token = base64.b64encode(f"me:{PH}".encode()).decode()
    assert swap_header(f"Basic {token}", [sw("v", "header")])[0] == f"Basic {token}"


def test_query_value_is_url_encoded():
    out, used = swap_query(f"a=1&key={PH}", [sw("a b&c=d/é", "query")])
    assert parse_qs(out)["key"] == ["a b&c=d/é"] and used == {"T"}


def test_json_body_value_is_json_escaped():
    body = json.dumps({"token": PH}).encode()
    out, used = swap_body(body, "application/json", [sw('q"uo\\te\n', "body")])
    assert json.loads(out)["token"] == 'q"uo\\te\n' and used == {"T"}


def test_form_body_value_is_form_encoded():
    out, _ = swap_body(
        f"a=1&t={PH}".encode(), "application/x-www-form-urlencoded", [sw("x y&z", "body")]
    )
    assert parse_qs(out.decode())["t"] == ["x y&z"]


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_json_body_round_trips_any_value(value):
    body = json.dumps({"t": PH, "o": 1}).encode()
    out, _ = swap_body(body, "application/json; charset=utf-8", [sw(value, "body")])
    assert json.loads(out) == {"t": value, "o": 1}


@given(st.text(max_size=60))
def test_no_swap_without_the_placeholder(text):
    value = "REAL-" + "x" * 10
    out, used = swap_header(text.replace(PH, ""), [sw(value)])
    assert value not in out or value in text
    assert used == set() or PH in text
