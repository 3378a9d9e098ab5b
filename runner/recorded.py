"""One run with its record: the run directory, an optional JUnit file, and the closing line.

``run_recorded`` wraps ``runner.run.execute``: it makes ``$COATCHECK_HOME/runs/<run-id>/`` (the
run id the proxy knows), tees the sandbox's output into output.log, copies the run's audit lines
once the proxy is done with the run, and writes run.json when the run starts and when it ends,
however it ends (a setup error, a signal, Ctrl-C).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, cast

from core.errors import CoatcheckError, Stopped
from proxy.paths import ProxyPaths
from runner import junit
from runner.durations import format_duration
from runner.run import (
    DEFAULT_IMAGE,
    RunRequest,
    check_flags,
    execute,
    new_run_id,
    rotation_warnings,
)
from runner.rundir import RunDir, RunRecord, Status, Tee, audit_offset

TIMEOUT_EXIT = 124  # sandbox/docker.py's; imported there with docker, so repeated here


@dataclass(frozen=True)
class Finished:
    """How a recorded run ended: its record, where it lives, and the error that ended it."""

    record: RunRecord
    run_dir: RunDir
    error: CoatcheckError | None = None

    @property
    def exit_code(self) -> int:
        return self.record.exit_code if self.record.exit_code is not None else 125

    def closing_line(self) -> str:
        r = self.record
        took = format_duration(r.duration_s or 0.0)
        return (
            f"coatcheck: run {r.id} {r.status} (exit {self.exit_code}) in {took}; "
            f"record: {self.run_dir.path}"
        )


def utc_now() -> datetime:
    return datetime.now(UTC)


def status_of(code: int, elapsed: float, timeout: float | None) -> Status:
    """A command's exit code as a status; 124 is a timeout only when the timeout was reached
    (a command may exit 124 by itself)."""
    if code == 0:
        return "succeeded"
    if code == TIMEOUT_EXIT and timeout is not None and elapsed >= timeout:
        return "timeout"
    return "failed"


def run_recorded(
    req: RunRequest,
    *,
    home: Path,
    job: str | None = None,
    kind: Literal["command", "agent"] = "command",
    junit_file: Path | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
    log: IO[str] | None = None,
    run: Callable[..., int] = execute,
    clock: Callable[[], datetime] = utc_now,
    run_id: str | None = None,
) -> Finished:
    """Run ``req`` and record it. A CoatcheckError that ends the run is returned in
    ``Finished.error`` (the run has a record by then); bad flags raise before a run exists."""
    check_flags(req)
    run_id = run_id or new_run_id()
    run_dir = RunDir.create(home, run_id)
    audit = ProxyPaths.for_home(home).audit_log
    offset = audit_offset(audit)
    record = RunRecord(
        id=run_id,
        job=job,
        kind=kind,
        status="running",
        started=clock(),
        image=req.image or DEFAULT_IMAGE,
        secrets=req.secrets,
    )
    run_dir.write_record(record)
    output = run_dir.open_output()
    out = Tee(stdout or sys.stdout.buffer, output)
    err = Tee(stderr or sys.stderr.buffer, output)
    began = time.monotonic()
    update: dict[str, Any] = {"status": "error", "exit_code": 125}
    error: CoatcheckError | None = None
    interrupted = False
    try:
        if warnings := rotation_warnings(home, req.secrets, now=clock()):
            record = _warn(record, warnings, run_dir, err)
        code = run(
            req,
            home=home,
            run_id=run_id,
            stdout=cast(IO[bytes], out),
            stderr=cast(IO[bytes], err),
            log=log,
        )
        elapsed = time.monotonic() - began
        update = {"status": status_of(code, elapsed, req.timeout), "exit_code": code}
    except Stopped as exc:
        error = exc
        update = {"status": "stopped", "exit_code": exc.exit_code, "error": exc.message}
    except CoatcheckError as exc:
        error = exc
        update = {"status": "error", "exit_code": exc.exit_code, "error": exc.message}
    except KeyboardInterrupt:
        update = {"status": "stopped", "exit_code": 130, "error": "interrupted (Ctrl-C)"}
        interrupted = True
        raise
    finally:
        output.close()
        run_dir.copy_audit(audit, run_id, offset=offset)
        finished = clock()
        duration = round(time.monotonic() - began, 3)
        record = record.model_copy(
            update={
                **update,
                "finished": finished,
                "duration_s": duration,
                "output_capped": output.capped,
            }
        )
        run_dir.write_record(record)
        done = Finished(record, run_dir, error)
        if junit_file is not None:
            write_junit(junit_file, done, name=job or _command_name(req))
        if interrupted:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(done.closing_line() + "\n")
    return done


def _warn(record: RunRecord, warnings: tuple[str, ...], run_dir: RunDir, err: Tee) -> RunRecord:
    """Say each warning on stderr (and in output.log) and keep them in run.json."""
    for warning in warnings:
        err.write(f"coatcheck: warning: {warning}\n".encode())
    err.flush()
    record = record.model_copy(update={"warnings": warnings})
    run_dir.write_record(record)
    return record


def write_junit(path: Path, done: Finished, *, name: str) -> None:
    """The run as a JUnit XML file at ``path`` (written atomically), with the tail of its
    output."""
    r = done.record
    tail, omitted = done.run_dir.output_tail(junit.MAX_OUTPUT_BYTES)
    result = junit.Result(
        name=name,
        run_id=r.id,
        status=r.status,
        exit_code=done.exit_code,
        duration_s=r.duration_s or 0.0,
        timestamp=r.started.isoformat(timespec="seconds"),
        output=tail,
        omitted=omitted,
        error=r.error,
        record_dir=str(done.run_dir.path),
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(junit.junit_xml(result))
        os.replace(tmp, path)
    except OSError as exc:  # the run is over and recorded: say so, don't hide its outcome
        with contextlib.suppress(OSError):
            tmp.unlink()
        sys.stderr.write(f"coatcheck: warning: could not write --junit {path}: {exc.strerror}\n")


def _command_name(req: RunRequest) -> str:
    text = shlex.join(req.command)
    return text if len(text) <= 120 else text[:119] + "…"
