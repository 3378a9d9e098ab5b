"""JUnit XML results (runner/junit.py): one suite, one case, parsed back whatever the job
printed."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.junit import Result, junit_xml, xml_text


def result(**kw: object) -> Result:
    fields: dict[str, object] = {
        "name": "ci-smoke",
        "run_id": "r-0123456789abcdef",
        "status": "succeeded",
        "exit_code": 0,
        "duration_s": 1.25,
        "timestamp": "2026-11-30T02:14:02+00:00",
        "output": b"ok\n",
        "record_dir": "/home/u/runs/r-0123456789abcdef",
    }
    return Result(**{**fields, **kw})  # type: ignore[arg-type]


def parse(res: Result) -> ET.Element:
    return ET.fromstring(junit_xml(res))  # noqa: S314 - our own output


def test_a_passing_run() -> None:
    suite = parse(result())
    assert suite.tag == "testsuite"
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "time")} == {
        "tests": "1",
        "failures": "0",
        "errors": "0",
        "time": "1.250",
    }
    [case] = suite.findall("testcase")
    assert (case.get("name"), case.get("time")) == ("ci-smoke", "1.250")
    assert case.find("failure") is None and case.find("error") is None
    assert case.findtext("system-out") == "ok\n"
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props == {
        "run_id": "r-0123456789abcdef",
        "status": "succeeded",
        "exit_code": "0",
        "run_dir": "/home/u/runs/r-0123456789abcdef",
    }


@pytest.mark.parametrize(
    ("status", "code", "error", "tag", "message"),
    [
        ("failed", 3, None, "failure", "exit code 3"),
        ("timeout", 124, None, "failure", "timed out after 1.2s (exit code 124)"),
        ("stopped", 143, "stopped by SIGTERM", "failure", "stopped by SIGTERM (exit code 143)"),
        (
            "error",
            125,
            "no Docker engine answers",
            "error",
            "no Docker engine answers (exit code 125)",
        ),
    ],
    ids=["failed", "timeout", "stopped", "setup-error"],
)
def test_a_run_that_did_not_succeed(
    status: str, code: int, error: str | None, tag: str, message: str
) -> None:
    suite = parse(result(status=status, exit_code=code, error=error))
    case = suite.find("testcase")
    assert case is not None
    element = case.find(tag)
    assert element is not None, ET.tostring(suite)
    assert (element.get("message"), element.get("type")) == (message, status)
    assert suite.get("failures") == str(int(tag == "failure"))
    assert suite.get("errors") == str(int(tag == "error"))


def test_hostile_output_still_parses() -> None:
    nasty = (
        b"]]></system-out><injected/>\x00\x01\x07\x1b[31mred\x1b[0m\x0b\x0c"
        b"\xff\xfe not utf-8 & <tags> \xed\xa0\x80 \xef\xbf\xbe end"
    )
    text = parse(result(name="x]]>\x00<y>", output=nasty, status="failed", exit_code=1)).findtext(
        "testcase/system-out"
    )
    assert text is not None
    assert "]]></system-out><injected/>" in text  # as text, not as markup
    assert "\\x00\\x01\\x07\\x1b[31mred\\x1b[0m\\x0b\\x0c" in text
    assert "\ufffd\ufffd not utf-8 & <tags>" in text and "\\ufffe end" in text


def test_capped_output_says_so() -> None:
    text = parse(result(output=b"the tail\n", omitted=5000)).findtext("testcase/system-out")
    assert text == (
        "[coatcheck: the first 5000 bytes of output are left out (all of it is in "
        "/home/u/runs/r-0123456789abcdef/output.log)]\nthe tail\n"
    )


@given(st.binary(max_size=300), st.text(max_size=40))
def test_any_output_and_name_give_valid_xml(output: bytes, name: str) -> None:
    suite = parse(result(output=output, name=name or "x", status="failed", exit_code=1))
    assert suite.find("testcase") is not None


def test_xml_text_keeps_what_xml_can_hold() -> None:
    assert xml_text("tab\tnl\ncr\r é 😀".encode()) == "tab\tnl\ncr\r é 😀"
