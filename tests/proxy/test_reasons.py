"""Every allow or deny names one Reason: stable, unique snake_case words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.addresses import REFUSAL_REASONS, refusal_reason
from proxy.policy import decide_address, deny
from proxy.reasons import Reason
from proxy.runs import parse_run

ROOT = Path(__file__).resolve().parents[2]
SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


@pytest.mark.parametrize("reason", list(Reason), ids=str)
def test_reason_is_snake_case_and_named_after_its_value(reason):
    assert SNAKE.fullmatch(reason.value)
    assert reason.name.lower() == reason.value
    assert reason == reason.value and f"{reason}" == reason.value  # headers, bodies, logs


def test_reasons_are_unique():
    values = [member.value for member in Reason.__members__.values()]
    assert len(values) == len(set(values))


@pytest.mark.parametrize("why", sorted(REFUSAL_REASONS))
def test_every_refused_address_class_has_its_reason(why):
    assert Reason.for_address(why) == f"address_{why}"


def test_an_unknown_address_class_is_still_refused():
    assert Reason.for_address("something_new") is Reason.ADDRESS_REFUSED


def test_decide_address_gives_the_address_reason():
    run = parse_run({"run_id": "r-reasons1", "allow": ["x.test"]})
    decision = decide_address(run, "x.test", "169.254.169.254")
    assert refusal_reason("169.254.169.254") == "cloud_metadata"
    assert decision.reason is Reason.ADDRESS_CLOUD_METADATA and not decision.allowed


def test_a_decision_compares_and_renders_as_its_word():
    decision = deny(Reason.HOST_MISMATCH, "detail")
    assert decision.reason == "host_mismatch"
    assert f"({decision.reason})" == "(host_mismatch)"


@pytest.mark.parametrize(
    "path", sorted([*ROOT.glob("proxy/*.py"), *ROOT.glob("core/*.py")]), ids=lambda p: p.name
)
def test_no_decision_is_made_with_a_bare_string(path):
    assert not re.search(r"\b(?:deny|allow)\(\s*f?[\"']", path.read_text())
