"""Run directories (runner/rundir.py): private, atomically written records, the sandbox's
output kept as the bytes it was (hostile: huge lines, binary, past the cap), and only this
run's audit lines."""

from __future__ import annotations

import io
import json
import os
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runner.rundir import RunDir, RunRecord, Tee, audit_offset


def record(run_id: str = "r-0123456789abcdef", **kw: object) -> RunRecord:
    fields: dict[str, object] = {
        "id": run_id,
        "job": "smoke",
        "kind": "command",
        "status": "running",
        "started": datetime.now(UTC),
        "image": "coatcheck/sandbox:latest",
        "secrets": ("T",),
    }
    return RunRecord.model_validate({**fields, **kw})


@pytest.fixture
def run_dir(tmp_path: Path) -> RunDir:
    return RunDir.create(tmp_path / "home", "r-0123456789abcdef")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_directory_is_private_and_new(tmp_path: Path, run_dir: RunDir) -> None:
    assert run_dir.path == tmp_path / "home" / "runs" / "r-0123456789abcdef"
    assert mode(run_dir.path) == 0o700 and mode(run_dir.path.parent) == 0o700
    with pytest.raises(FileExistsError):
        RunDir.create(tmp_path / "home", "r-0123456789abcdef")


def test_run_json_is_replaced_atomically_and_reads_back(run_dir: RunDir) -> None:
    first = record()
    run_dir.write_record(first)
    inode = run_dir.run_json.stat().st_ino
    done = first.model_copy(
        update={
            "status": "failed",
            "exit_code": 3,
            "duration_s": 1.5,
            "finished": datetime.now(UTC),
        }
    )
    run_dir.write_record(done)
    assert run_dir.run_json.stat().st_ino != inode  # a new file renamed over the old one
    assert run_dir.read_record() == done
    assert sorted(p.name for p in run_dir.path.iterdir()) == ["run.json"]  # no temporary left
    assert mode(run_dir.run_json) == 0o600
    data = json.loads(run_dir.run_json.read_text())
    assert data["started"].endswith("Z") and data["secrets"] == ["T"]
    assert set(data) >= {
        "id",
        "job",
        "kind",
        "status",
        "exit_code",
        "started",
        "finished",
        "duration_s",
        "image",
        "secrets",
        "error",
    }


def test_a_run_record_refuses_unknown_statuses_and_fields() -> None:
    with pytest.raises(ValueError):
        record(status="exploded")
    with pytest.raises(ValueError):
        record(value="sk-should-never-be-here")


def test_hostile_output_is_kept_byte_for_byte(run_dir: RunDir) -> None:
    log = run_dir.open_output()
    terminal = io.BytesIO()
    out = Tee(terminal, log)
    huge_line = b"A" * (8 * 1024 * 1024)  # 8 MiB without a newline
    binary = bytes(range(256)) * 64 + b"\x1b[31m]]>\x00\xff\xfe"
    for chunk in (huge_line, binary, b"\r\n", b"\xed\xa0\x80"):
        out.write(chunk)
    out.flush()
    log.close()
    expected = huge_line + binary + b"\r\n" + b"\xed\xa0\x80"
    assert run_dir.output_log.read_bytes() == expected
    assert terminal.getvalue() == expected
    assert not log.capped and mode(run_dir.output_log) == 0o600


def test_output_past_the_cap_goes_to_the_terminal_only_with_a_note(run_dir: RunDir) -> None:
    log = run_dir.open_output(cap=1000)
    terminal = io.BytesIO()
    out = Tee(terminal, log)
    out.write(b"x" * 600)
    out.write(b"y" * 600)
    out.write(b"z" * 600)
    log.close()
    kept = run_dir.output_log.read_bytes()
    assert kept.startswith(b"x" * 600 + b"y" * 400 + b"\n[coatcheck: output.log stops here")
    assert kept.count(b"[coatcheck:") == 1 and b"z" not in kept
    assert log.capped and log.written == 1000
    assert terminal.getvalue() == b"x" * 600 + b"y" * 600 + b"z" * 600


def test_stdout_and_stderr_share_the_log_from_two_threads(run_dir: RunDir) -> None:
    log = run_dir.open_output()
    streams = [Tee(io.BytesIO(), log), Tee(io.BytesIO(), log)]

    def pump(tee: Tee, mark: bytes) -> None:
        for _ in range(2000):
            tee.write(mark * 50 + b"\n")

    threads = [
        threading.Thread(target=pump, args=(s, m))
        for s, m in zip(streams, (b"a", b"b"), strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    lines = run_dir.output_log.read_bytes().splitlines()
    assert sorted(set(lines)) == [b"a" * 50, b"b" * 50] and len(lines) == 4000


class ClosedPipe(io.BytesIO):
    def write(self, data: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_terminal_does_not_stop_the_log(run_dir: RunDir) -> None:
    log = run_dir.open_output()
    out = Tee(ClosedPipe(), log)
    assert out.write(b"first\n") == 6
    out.write(b"second\n")
    out.flush()
    log.close()
    assert run_dir.output_log.read_bytes() == b"first\nsecond\n"


def test_late_writes_after_close_are_dropped(run_dir: RunDir) -> None:
    log = run_dir.open_output()
    log.close()
    Tee(io.BytesIO(), log).write(b"a pump thread that outlived the run\n")
    assert run_dir.output_log.read_bytes() == b""


def audit_line(run_id: str, **kw: object) -> bytes:
    return json.dumps({"run_id": run_id, "host": "evil.test", "status": 403, **kw}).encode()


def test_only_this_runs_audit_lines_are_copied(tmp_path: Path, run_dir: RunDir) -> None:
    audit = tmp_path / "audit.jsonl"
    mine = "r-0123456789abcdef"
    audit.write_bytes(audit_line(mine, n=0) + b"\n")  # before the run: not ours to copy
    offset = audit_offset(audit)
    lines = [
        audit_line("r-other", n=1),
        audit_line(mine, n=2),
        b"not json {",
        b'["a", "list"]',
        audit_line(mine + "0", n=3),
        b"\xff\xfe",
        audit_line(mine, n=4),
    ]
    with audit.open("ab") as f:
        f.write(b"\n".join(lines))  # the last line has no newline yet
    assert run_dir.copy_audit(audit, mine, offset=offset) == 2
    copied = [json.loads(x) for x in run_dir.audit_jsonl.read_bytes().splitlines()]
    assert [e["n"] for e in copied] == [2, 4]
    assert run_dir.audit_jsonl.read_bytes().endswith(b"\n")
    assert mode(run_dir.audit_jsonl) == 0o600


def test_a_rotated_or_missing_audit_log(tmp_path: Path, run_dir: RunDir) -> None:
    audit = tmp_path / "audit.jsonl"
    assert audit_offset(audit) == 0
    assert run_dir.copy_audit(audit, "r-0123456789abcdef") == 0
    assert run_dir.audit_jsonl.read_bytes() == b""
    audit.write_bytes(audit_line("r-0123456789abcdef") + b"\n")  # shorter than the offset
    assert run_dir.copy_audit(audit, "r-0123456789abcdef", offset=10**6) == 1


def test_output_tail(run_dir: RunDir) -> None:
    assert run_dir.output_tail(10) == (b"", 0)
    log = run_dir.open_output()
    log.write(b"0123456789abcdef")
    log.close()
    assert run_dir.output_tail(6) == (b"abcdef", 10)
    assert run_dir.output_tail(100) == (b"0123456789abcdef", 0)


def test_files_are_not_followed_through_a_planted_symlink(run_dir: RunDir, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep me")
    os.symlink(target, run_dir.output_log)
    with pytest.raises(OSError):
        run_dir.open_output()
    assert target.read_text() == "keep me"
