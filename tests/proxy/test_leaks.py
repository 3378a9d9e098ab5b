"""Leak scanning: every encoded form of a placeholder, and other runs' placeholders."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from core.placeholders import mint
from proxy.leaks import FOREIGN, LeakScanner, StreamLeakScanner

PH = mint()
OWN = mint()


@pytest.mark.parametrize(
    "payload",
    [
        PH,
        quote(PH, safe=""),
        json.dumps({"k": PH}),
        base64.b64encode(f"user:{PH}".encode()).decode(),
        base64.b64encode(f"xx{PH}yy".encode()).decode(),
    ],
    ids=["raw", "percent", "json", "basic", "base64-offset"],
)
def test_forms_are_found(payload):
    assert LeakScanner([("T", PH)], own=[PH, OWN]).scan(payload.encode()) == {"T"}


def test_own_allowed_placeholder_is_not_a_leak():
    assert LeakScanner([("T", PH)], own=[PH, OWN]).scan(OWN.encode()) == set()


def test_other_runs_placeholder_is_flagged():
    assert LeakScanner([], own=[OWN]).scan(mint().encode()) == {FOREIGN}


def test_stream_scanner_sees_a_split_placeholder():
    s = StreamLeakScanner(LeakScanner([("T", PH)], own=[PH]))
    assert s.feed(b"prefix " + PH[:10].encode()) == set()
    assert s.feed(PH[10:].encode() + b" suffix") == {"T"}
