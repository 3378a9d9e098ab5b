"""The audit log shared by the service's processes: each line is written whole, by one write()
on an O_APPEND file, so lines of concurrent writers never interleave, however long."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from proxy.appendlog import AppendLog
from proxy.audit import Audit
from proxy.policy import deny
from proxy.reasons import Reason

WRITER = """
import json, sys
from pathlib import Path
from proxy.appendlog import AppendLog
name, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
log = AppendLog(Path(sys.argv[4]))
for i in range(n):
    text = json.dumps({"writer": name, "i": i, "fill": name * size}) + "\\n"
    for part in (text[:7], text[7:size], text[size:]):  # a line may come in pieces
        log.write(part)
log.close()
"""


def test_concurrent_writers_never_interleave_lines(tmp_path):
    path = tmp_path / "audit.jsonl"
    n, size = 60, 96 * 1024  # lines far over PIPE_BUF and any stdio buffer
    procs = [
        subprocess.Popen([sys.executable, "-I", "-c", WRITER, name, str(n), str(size), str(path)])
        for name in "abcd"
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    seen: dict[str, list[int]] = {}
    for raw in lines[:-1]:
        entry = json.loads(raw)  # a torn line would not parse
        assert entry["fill"] == entry["writer"] * size
        seen.setdefault(entry["writer"], []).append(entry["i"])
    assert seen == {name: list(range(n)) for name in "abcd"}


def test_a_partial_line_waits_for_its_newline(tmp_path):
    path = tmp_path / "log"
    log = AppendLog(path)
    log.write('{"a":')
    assert path.read_text() == ""
    log.write(' 1}\n{"b": 2}\n{"c"')
    assert path.read_text() == '{"a": 1}\n{"b": 2}\n'
    log.close()
    assert path.read_text().endswith('{"c"')
    assert log.closed


def test_appends_to_an_existing_log_and_keeps_it_private(tmp_path):
    path = tmp_path / "log"
    path.write_text("earlier\n")
    log = AppendLog(path)
    log.write("later\n")
    log.close()
    assert path.read_text() == "earlier\nlater\n"
    fresh = AppendLog(tmp_path / "new")
    fresh.close()
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o600


def test_audit_lines_through_the_append_log_are_json_lines(tmp_path):
    path = tmp_path / "audit.jsonl"
    stream = AppendLog(path)
    audit = Audit(stream)  # type: ignore[arg-type]
    audit.failure("r-0123456789abcdef", deny(Reason.WORKER_LOST, "gone"), host=None, port=None)
    audit.failure("r-0123456789abcdef", deny(Reason.INTERNAL_ERROR, "x" * 70000), host="h",
                  port=1)  # fmt: skip
    stream.close()
    first, second = (json.loads(line) for line in Path(path).read_text().splitlines())
    assert first["reason"] == "worker_lost" and second["error"] == "x" * 70000
