from __future__ import annotations

import dataclasses
import io
import json
import logging
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.logs import json_logger
from tests.vault.helpers import SENTINEL
from vault.secret import DEFAULT_SURFACES, Secret, SecretMeta, SecretValue

MASK = "SecretValue('**********')"
T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def make_meta(**overrides: object) -> SecretMeta:
    fields: dict[str, object] = {
        "name": "GITHUB_TOKEN",
        "domains": ("api.github.com",),
        "created": T0,
        "updated": T0,
    }
    fields.update(overrides)
    return SecretMeta(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "render",
    [
        pytest.param(repr, id="repr"),
        pytest.param(str, id="str"),
        pytest.param(lambda v: f"{v}", id="f-string"),
        pytest.param(lambda v: f"{v!r}", id="f-string-repr"),
        pytest.param(lambda v: f"{v:>40}", id="format-spec"),
        pytest.param(lambda v: "%s" % v, id="percent-s"),  # noqa: UP031
        pytest.param(lambda v: "%r" % (v,), id="percent-r"),  # noqa: UP031
        pytest.param(lambda v: "{}".format(v), id="str-format"),  # noqa: UP032
        pytest.param(lambda v: repr([v]), id="inside-list"),
        pytest.param(lambda v: repr({"token": v}), id="inside-dict"),
    ],
)
def test_secret_value_never_renders_its_value(render: object) -> None:
    rendered = render(SecretValue(SENTINEL))  # type: ignore[operator]
    assert SENTINEL not in rendered
    assert MASK in rendered


@given(st.text())
def test_repr_is_the_same_mask_for_every_value(text: str) -> None:
    value = SecretValue(text)
    assert repr(value) == str(value) == format(value, "") == MASK
    assert value.reveal() == text


def test_reveal_is_the_way_out() -> None:
    assert SecretValue(SENTINEL).reveal() == SENTINEL


def test_secret_value_wraps_only_str() -> None:
    with pytest.raises(TypeError):
        SecretValue(b"bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [("x", "x", True), ("x", "y", False), ("", "", True), ("ab", "abc", False)],
    ids=["same", "different", "empty", "prefix"],
)
def test_equality_compares_values(a: str, b: str, equal: bool) -> None:
    assert (SecretValue(a) == SecretValue(b)) is equal
    assert SecretValue(a) != a  # never equal to a bare str


def test_secret_repr_shows_metadata_but_not_value() -> None:
    secret = Secret(make_meta(), SecretValue(SENTINEL))
    assert SENTINEL not in repr(secret)
    assert "GITHUB_TOKEN" in repr(secret)
    assert secret.name == "GITHUB_TOKEN"
    assert SENTINEL not in repr(dataclasses.asdict(secret))


def test_meta_defaults() -> None:
    meta = make_meta()
    assert meta.surfaces == DEFAULT_SURFACES == ("header", "basic")
    assert meta.methods == ()
    assert meta.paths == ()
    assert meta.placeholder_format == "opaque"


def test_meta_and_secret_are_frozen() -> None:
    meta = make_meta()
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.domains = ("evil.example",)  # type: ignore[misc]
    secret = Secret(meta, SecretValue("v"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        secret.value = SecretValue("w")  # type: ignore[misc]


def test_stdlib_logging_shows_mask(caplog: pytest.LogCaptureFixture) -> None:
    value = SecretValue(SENTINEL)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("coatcheck.test").warning("value is %s / %r", value, value)
        logging.getLogger("coatcheck.test").info("secret %s", Secret(make_meta(), value))
    assert SENTINEL not in caplog.text
    assert MASK in caplog.text


def test_structlog_json_line_shows_mask() -> None:
    out = io.StringIO()
    log = json_logger(out)
    value = SecretValue(SENTINEL)
    log.info("event", value=value, secret=Secret(make_meta(), value))
    line = out.getvalue()
    assert SENTINEL not in line
    assert json.loads(line)["value"] == MASK
