from __future__ import annotations

import base64
import json
from collections.abc import Callable
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from proxy.forms import base64_cores, forms, paired_forms, same_form
from proxy.scrub import scrub_bytes

TOKEN = "sk-live_4f/x+y=é<&>"


def test_forms_of_a_plain_token_collapse_to_raw() -> None:
    assert forms("sk-ant-api03-AbC_123.xyz~") == (b"sk-ant-api03-AbC_123.xyz~",)


def test_forms_are_unique_and_raw_first() -> None:
    found = forms(TOKEN)
    assert found[0] == TOKEN.encode()
    assert len(set(found)) == len(found)


def _lower_hex(text: str) -> str:
    head, *escapes = text.split("%")
    return "%".join([head, *(e[:2].lower() + e[2:] for e in escapes)])


INCLUDED = {
    "json": json.dumps(TOKEN)[1:-1],
    "json unicode": json.dumps(TOKEN, ensure_ascii=False)[1:-1],
    "json slash": json.dumps(TOKEN)[1:-1].replace("/", "\\/"),
    "json upper hex": json.dumps(TOKEN)[1:-1].replace("\\u00e9", "\\u00E9"),
    "json html": json.dumps(TOKEN, ensure_ascii=False)[1:-1]
    .replace("<", "\\u003c")
    .replace(">", "\\u003e")
    .replace("&", "\\u0026"),
    "percent": quote(TOKEN, safe=""),
    "percent lower": _lower_hex(quote(TOKEN, safe="")),
    "percent keep slash": quote(TOKEN),
    "encodeURIComponent": quote("a!b*c'(d)~", safe="!'()*"),
    "form": quote_plus(TOKEN, safe=""),
    "form lower": _lower_hex(quote_plus(TOKEN, safe="")),
}


@pytest.mark.parametrize("expected", INCLUDED.values(), ids=INCLUDED.keys())
def test_forms_include(expected: str) -> None:
    text = "a!b*c'(d)~" if "!" in expected else TOKEN
    assert expected.encode() in forms(text)


def test_empty_text_has_no_forms() -> None:
    assert forms("") == ()
    assert base64_cores("") == ()
    assert paired_forms("", "PH") == ()


DECODERS: tuple[Callable[[bytes], str], ...] = (
    lambda f: f.decode("utf-8", "surrogatepass"),
    lambda f: unquote(f.decode("ascii"), errors="surrogatepass"),
    lambda f: unquote_plus(f.decode("ascii"), errors="surrogatepass"),
    lambda f: str(json.loads(b'"' + f + b'"')),
    lambda f: str(json.loads('"' + str(json.loads(b'"' + f + b'"')) + '"')),  # JSON in JSON
)


@given(st.text(min_size=1, max_size=30))
def test_every_form_decodes_back(text: str) -> None:
    for form in forms(text):
        assert text in (_try(decode, form) for decode in DECODERS), form


def _try(decode: Callable[[bytes], str], form: bytes) -> str | None:
    try:
        return decode(form)
    except ValueError:
        return None


# --- base64 -----------------------------------------------------------------------------------


def test_short_texts_have_no_base64_cores() -> None:
    assert base64_cores("12345") == ()
    assert len(base64_cores("123456")) >= 3


def test_basic_auth_echo_is_found() -> None:
    token = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
    for user in ("", "u", "us", "user", "x-access-token"):
        header = base64.b64encode(f"{user}:{token}".encode())
        assert any(core in header for core in base64_cores(token))


@given(st.text(min_size=6, max_size=40), st.binary(max_size=5), st.binary(max_size=5))
def test_some_core_is_inside_any_base64_embedding(text: str, before: bytes, after: bytes) -> None:
    raw = text.encode("utf-8", "surrogatepass")
    data = before + raw + after
    cores = base64_cores(text)
    assert any(c in base64.b64encode(data) for c in cores)
    assert any(c in base64.urlsafe_b64encode(data) for c in cores)
    assert any(c in base64.b64encode(data).rstrip(b"=") for c in cores)


@given(st.text(min_size=6, max_size=40), st.integers(0, 2))
def test_cores_depend_on_the_text_only(text: str, offset: int) -> None:
    raw = text.encode("utf-8", "surrogatepass")
    found = []
    for fill in (b"\x00", b"\xff", b"\x5a"):
        encoded = base64.b64encode(fill * offset + raw + fill * 2)
        found.append({core for core in base64_cores(text) if core in encoded})
    assert found[0] and found[0] == found[1] == found[2]


# --- pairs ------------------------------------------------------------------------------------


def test_paired_forms_is_the_value_and_its_placeholder() -> None:
    assert paired_forms("tok/en é", "PH") == (("tok/en é".encode(), b"PH"),)
    assert paired_forms("", "PH") == ()


UNIFORM = {
    "raw": (b"a/b \xc3\xa9", "PH/1 ü".encode()),
    "json": (b"a/b \\u00e9", b"PH/1 \\u00fc"),
    "json slash": (b"a\\/b \\u00e9", b"PH\\/1 \\u00fc"),
    "json upper hex": (b"a/b \\u00E9", b"PH/1 \\u00FC"),
    "percent": (b"a%2Fb%20%C3%A9", b"PH%2F1%20%C3%BC"),
    "percent lower": (b"a%2fb%20%c3%a9", b"PH%2f1%20%c3%bc"),
    "form": (b"a%2Fb+%C3%A9", b"PH%2F1+%C3%BC"),
}


@pytest.mark.parametrize(("occurrence", "expected"), UNIFORM.values(), ids=UNIFORM.keys())
def test_a_uniform_form_is_replaced_in_the_same_form(occurrence: bytes, expected: bytes) -> None:
    assert same_form(occurrence, "a/b é", "PH/1 ü") == expected
    scrubbed = scrub_bytes(b"[" + occurrence + b"]", paired_forms("a/b é", "PH/1 ü"))
    assert scrubbed == b"[" + expected + b"]"


def test_same_form_is_none_for_a_mix() -> None:
    assert same_form(b"\\u0061/b \xc3\xa9", "a/b é", "PH") is None


placeholders = st.from_regex(r"cc_[A-Za-z0-9]{10,20}", fullmatch=True)
# Surroundings from an alphabet the real value never uses, so that no form of the real value can
# overlap them by coincidence (that would be a property of the test data, not of the scrubber).
SURROUNDING = "xyz-_"
reals = st.text(min_size=1, max_size=20).filter(lambda t: not set(t) & set(SURROUNDING + '[]"'))
around = st.text(alphabet=SURROUNDING, max_size=5)


@settings(deadline=None, max_examples=50)  # each example compiles a new value
@given(reals, placeholders, around, around)
def test_scrubbing_json_gives_the_placeholder_json(
    real: str, placeholder: str, before: str, after: str
) -> None:
    pairs = paired_forms(real, placeholder)
    for ascii_only in (True, False):
        body = json.dumps([before + real + after], ensure_ascii=ascii_only)
        scrubbed = scrub_bytes(body.encode("utf-8", "surrogatepass"), pairs)
        assert json.loads(scrubbed) == [before + placeholder + after]
    body = json.dumps([real]).replace("/", "\\/")
    assert json.loads(scrub_bytes(body.encode(), pairs)) == [placeholder]


@settings(deadline=None, max_examples=50)  # each example compiles a new value
@given(reals, placeholders, around, around)
def test_scrubbing_percent_gives_the_placeholder(
    real: str, placeholder: str, before: str, after: str
) -> None:
    pairs = paired_forms(real, placeholder)
    for encoded, decode in (
        (quote(before + real + after, safe=""), unquote),
        (_lower_hex(quote(before + real + after, safe="")), unquote),
        (quote_plus(before + real + after), unquote_plus),
    ):
        scrubbed = scrub_bytes(encoded.encode(), pairs).decode()
        assert decode(scrubbed, errors="surrogatepass") == before + placeholder + after


@settings(deadline=None)
@given(
    st.text(min_size=6, max_size=30),
    placeholders,
    st.sampled_from(["", "u", "us", "user"]),
)
def test_scrubbing_basic_auth_removes_the_real_core(real: str, placeholder: str, user: str) -> None:
    assume(real not in placeholder)
    raw = real.encode("utf-8", "surrogatepass")
    header = base64.b64encode(f"{user}:".encode() + raw)
    offset = (len(user) + 1) % 3
    aligned = base64.b64encode(bytes(offset) + raw)[
        -(-8 * offset // 6) : 8 * (offset + len(raw)) // 6
    ]
    assert aligned in header and aligned in base64_cores(real)
    assume(not any(aligned in c for c in base64_cores(placeholder)))  # no chance overlap
    scrubbed = scrub_bytes(header, paired_forms(real, placeholder))
    assert aligned not in scrubbed


@pytest.mark.parametrize("user", ["us", "x-access-token"])
def test_basic_auth_with_a_same_length_placeholder_decodes_to_it(user: str) -> None:
    real, placeholder = "ghp_realvalue123", "cc_placeholder45"
    header = base64.b64encode(f"{user}:{real}".encode())
    for pair in ((real, placeholder), (real[:-1], placeholder[:-1]), (real[:-2], placeholder[:-2])):
        header = base64.b64encode(f"{user}:{pair[0]}".encode())
        scrubbed = scrub_bytes(header, paired_forms(*pair))
        decoded = base64.b64decode(scrubbed)
        assert pair[0].encode() not in decoded
        if len(pair[0]) % 3 == 0:
            assert decoded == f"{user}:{pair[1]}".encode()
