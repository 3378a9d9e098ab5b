"""A run as a JUnit XML result, for CI systems: one testsuite with one testcase. Pure.

The output is the sandbox's (hostile) bytes: decoded as UTF-8 with replacement, characters XML
1.0 can't hold (control characters, lone surrogates) written as ``\\xNN`` escapes, and ``<``,
``&`` and ``]]>`` escaped by the serializer, so the file parses whatever the job printed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: S405 - we write XML, we parse none
from dataclasses import dataclass
from typing import Final

MAX_OUTPUT_BYTES: Final = 1024 * 1024
_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class Result:
    """What the JUnit file says about one run."""

    name: str
    run_id: str
    status: str  # succeeded | failed | timeout | error | stopped
    exit_code: int
    duration_s: float
    timestamp: str  # UTC ISO
    output: bytes  # the (tail of the) run's output
    omitted: int = 0  # output bytes before ``output`` that are left out
    error: str | None = None
    record_dir: str = ""


def xml_text(data: bytes) -> str:
    """``data`` as text any XML 1.0 parser accepts."""
    text = data.decode("utf-8", "replace")
    return _NOT_XML.sub(
        lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 256 else f"\\u{ord(m[0]):04x}", text
    )


def junit_xml(result: Result) -> bytes:
    """The JUnit XML document for ``result`` (UTF-8, with its declaration)."""
    failed = result.status != "succeeded"
    is_error = result.status == "error"
    suite = ET.Element(
        "testsuite",
        name="coatcheck",
        tests="1",
        failures=str(int(failed and not is_error)),
        errors=str(int(is_error)),
        skipped="0",
        time=f"{result.duration_s:.3f}",
        timestamp=result.timestamp,
    )
    case = ET.SubElement(
        suite,
        "testcase",
        name=xml_text(result.name.encode()),
        classname="coatcheck",
        time=f"{result.duration_s:.3f}",
    )
    props = ET.SubElement(case, "properties")
    for key, value in (
        ("run_id", result.run_id),
        ("status", result.status),
        ("exit_code", str(result.exit_code)),
        ("run_dir", result.record_dir),
    ):
        ET.SubElement(props, "property", name=key, value=xml_text(value.encode()))
    if failed:
        message = _message(result)
        tag = "error" if is_error else "failure"
        ET.SubElement(case, tag, message=message, type=result.status).text = message
    out = ET.SubElement(case, "system-out")
    out.text = _note(result) + xml_text(result.output)
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def _message(result: Result) -> str:
    if result.status == "timeout":
        return f"timed out after {result.duration_s:.1f}s (exit code {result.exit_code})"
    if result.error:
        return xml_text(f"{result.error} (exit code {result.exit_code})".encode())
    return f"exit code {result.exit_code}"


def _note(result: Result) -> str:
    if not result.omitted:
        return ""
    where = f" (all of it is in {result.record_dir}/output.log)" if result.record_dir else ""
    return f"[coatcheck: the first {result.omitted} bytes of output are left out{where}]\n"
