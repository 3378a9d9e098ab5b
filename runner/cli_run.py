"""``coatcheck run``: a command or a job file in a sandbox whose only route out is the proxy.

``coatcheck run [flags] -- CMD`` runs CMD; ``coatcheck run JOBFILE [flags]`` runs a job file
(a first argument ending in ``.toml``, with no ``--``), its flags adding to the file's lists and
overriding its scalars. Either way the run gets a run directory and, with ``--junit``, a JUnit
XML result.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from core.errors import UsageError
from core.home import coatcheck_home
from core.runids import RUN_ID
from runner.options import DURATION, allow_opaque_option, resolve_option, upstream_ca_option

JOB_SUFFIX = ".toml"


def _env_pairs(items: tuple[str, ...]) -> dict[str, str]:
    from sandbox.docker import RESERVED_ENV

    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--env {item!r}: use K=V, e.g. --env LOG_LEVEL=debug")
        if key in RESERVED_ENV:
            raise UsageError(f"--env {key}: coatcheck sets {key} itself (proxy and trust)")
        env[key] = value
    return env


def _first_argument(command: click.Command, args: list[str]) -> str | None:
    """The first positional argument of ``args`` (skipping options and their values)."""
    options = [p for p in command.params if isinstance(p, click.Option) and not p.is_flag]
    takes_value = {name for option in options for name in option.opts}
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--":
            return None
        elif arg in takes_value:
            skip = True
        elif not arg.startswith("-") or arg == "-":
            return arg
    return None


class RunCommand(click.Command):
    """A job file (first argument ``*.toml``, no ``--``) may be followed by flags; a command's
    own flags are never read as coatcheck's."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = _first_argument(self, args)
        job_mode = first is not None and first.endswith(JOB_SUFFIX) and "--" not in args
        ctx.meta["coatcheck.job_file"] = job_mode
        if job_mode:
            ctx.allow_interspersed_args = True
        return super().parse_args(ctx, args)


def _union(*lists: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for items in lists for item in items))


def job_request(job: Any, flags: dict[str, Any]) -> Any:
    """The RunRequest of a job file and the command line's flags: flags add to the lists
    (``--secret``, ``--allow[-opaque]``, ``--resolve``, ``--upstream-ca``, ``--env``) and override
    the scalars (``--image``, ``--timeout``, ``--on-leak``)."""
    from runner.run import DEFAULT_IMAGE, RunRequest
    from sandbox.docker import Limits

    given = job.resources.given()
    return RunRequest(
        command=job.command,
        secrets=_union(job.secrets, flags["secrets"]),
        allow=_union(job.allow, flags["allow"]),
        allow_opaque=_union(job.allow_opaque, flags["allow_opaque"]),
        resolve=_union(job.resolve, flags["resolve"]),
        allow_cidr=flags["allow_cidr"],
        upstream_ca=(*job.ca_paths, *(Path(p) for p in flags["upstream_ca"])),
        env={**job.env, **_env_pairs(flags["env"])},
        image=flags["image"] or job.image or DEFAULT_IMAGE,
        timeout=flags["timeout"] if flags["timeout"] is not None else job.timeout,
        on_leak=flags["on_leak"] or job.on_leak,
        limits=Limits(**given) if given else None,
    )


HISTORY_STATUS = {"timeout": "timed_out", "stopped": "cancelled"}


def _remember(done: Any) -> None:
    """A plain run lands in the run history too (trigger ``manual``, actor ``cli``). Best
    effort: a locked or broken history database never fails the run; it says so."""
    import sqlite3

    from core.errors import CoatcheckError
    from runner.history import History, history_path

    record = done.record
    try:
        with History.open(history_path(coatcheck_home()), new_id=lambda: record.id) as h:
            rid, _ = h.runs.create_triggered(None, "manual", actor="cli",
                                             run_dir=str(done.run_dir.path))  # fmt: skip
            h.runs.mark_running(rid, started_at=record.started)
            h.runs.finish(rid, HISTORY_STATUS.get(record.status, record.status),
                          exit_code=record.exit_code, reason=record.error)  # fmt: skip
            if record.warnings:
                h.runs.set_warnings(rid, record.warnings)
    except (CoatcheckError, OSError, sqlite3.Error) as exc:
        click.echo(f"coatcheck: warning: the run is not in the history: {exc}", err=True)


def _readable_copy(src: Path) -> Path:
    """A copy of the run's input that the sandbox user can read (mounted read-only), in a
    private directory of ours, removed after the run."""
    copy = Path(tempfile.mkdtemp(prefix="cc-in-")) / "input"
    shutil.copyfile(src, copy)
    os.chmod(copy, 0o644)
    return copy


def _load_job(path: Path, *, base: Path | None = None) -> Any:
    """A job file, checked against the vault too (``base``: where its relative paths start,
    when not beside it: a deployment's snapshot)."""
    from runner.jobcheck import check_vault
    from runner.jobfile import load_job

    job = load_job(path, base=base)
    check_vault(job, path, home=coatcheck_home())
    return job


@click.command(cls=RunCommand, context_settings={"allow_interspersed_args": False})
@click.option(
    "--secret",
    "secrets",
    multiple=True,
    metavar="NAME",
    help="A vaulted secret; the sandbox sees NAME=<placeholder> (repeatable).",
)
@click.option(
    "--allow",
    multiple=True,
    metavar="DOMAIN",
    help="Also allow this host pattern, without any secret (repeatable).",
)
@allow_opaque_option
@resolve_option
@click.option(
    "--allow-cidr",
    multiple=True,
    metavar="CIDR",
    help="Allow IP-literal and resolved destinations in this range (repeatable).",
)
@upstream_ca_option
@click.option(
    "--image",
    default=None,
    help="Local image to run; coatcheck's own is built on first use. "
    "[default: coatcheck/sandbox:latest]",
)
@click.option(
    "--timeout",
    type=DURATION,
    default=None,
    metavar="DURATION",
    help="Stop the command after this long (90, 90s, 5m, 2h) and exit 124.",
)
@click.option("--env", "env", multiple=True, metavar="K=V", help="Set a variable (repeatable).")
@click.option(
    "--on-leak",
    type=click.Choice(["log", "block"]),
    default=None,
    help="What to do with a placeholder on its way to a host outside its domains. [default: log]",
)
@click.option(
    "--junit",
    "junit_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Also write the result as JUnit XML (for CI), with the run's output.",
)
@click.option("--log-json", is_flag=True, help="Print the run's JSON log line on stderr.")
@click.option(
    "--input",
    "input_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Hand FILE to the run as untrusted input: read-only at $COATCHECK_INPUT.",
)
# coatcheck serve's children: the service records the run, and the run dies with the service.
@click.option("--run-id", hidden=True, default=None)
@click.option("--job-base", hidden=True, default=None, type=click.Path(path_type=Path))
@click.option("--parent-pid", hidden=True, default=None, type=int)
@click.argument("command", nargs=-1, required=True, metavar="JOBFILE | -- COMMAND [ARG]...")
@click.pass_context
def run_command(
    ctx: click.Context,
    junit_file: Path | None,
    log_json: bool,
    input_file: Path | None,
    run_id: str | None,
    job_base: Path | None,
    parent_pid: int | None,
    command: tuple[str, ...],
    **flags: Any,
) -> None:
    """Run COMMAND, or the job file JOBFILE, in a sandbox; its only route out is the
    credential-injecting proxy.

    \b
    Examples:
      coatcheck run --secret GITHUB_TOKEN -- \\
          curl -H "Authorization: Bearer $GITHUB_TOKEN" https://api.github.com/user
      coatcheck run jobs/ci-smoke.toml --timeout 5m --junit smoke.xml

    Streams the output and exits with the command's exit code; 124 on timeout, 125 when the
    sandbox can't be set up, 2 for bad usage or a bad job file. Each run is recorded in
    $COATCHECK_HOME/runs/RUN_ID/ (run.json, output.log, audit.jsonl). Starts its own proxy
    unless `coatcheck proxy` is running.
    """
    from runner.recorded import run_recorded
    from runner.run import DEFAULT_IMAGE, RunRequest, stop_on_signals

    if run_id is not None and not RUN_ID.fullmatch(run_id):
        raise UsageError(f"--run-id {run_id!r}: coatcheck serve's run ids are r- and 16 hex digits")
    if parent_pid is not None:
        from runner.lifeline import die_with

        die_with(parent_pid)  # its parent, or (the warm path) the zygote's client
    if junit_file is not None and not junit_file.parent.is_dir():
        raise UsageError(
            f"--junit {junit_file}: no directory {junit_file.parent}; create it or write the "
            "file elsewhere"
        )
    job = None
    if ctx.meta.get("coatcheck.job_file"):
        if len(command) > 1:
            raise UsageError(
                f"{command[0]} is a job file: it runs its own command; flags go before or "
                "after it, and a command goes after `--` instead"
            )
        job = _load_job(Path(command[0]), base=job_base)
        req = job_request(job, flags)
    else:
        req = RunRequest(
            command=command,
            secrets=flags["secrets"],
            allow=flags["allow"],
            allow_opaque=flags["allow_opaque"],
            resolve=flags["resolve"],
            allow_cidr=flags["allow_cidr"],
            upstream_ca=tuple(Path(p) for p in flags["upstream_ca"]),
            env=_env_pairs(flags["env"]),
            image=flags["image"] or DEFAULT_IMAGE,
            timeout=flags["timeout"],
            on_leak=flags["on_leak"] or "log",
        )
    if input_file is not None:
        req = replace(req, input_file=_readable_copy(input_file))
    workspace = None
    terminal: Any = None
    if job is not None and job.agent is not None:
        from runner import agent_run
        from runner.progress import ProgressFilter

        workspace = agent_run.prepare_workspace(
            job.agent, req.timeout, has_input=input_file is not None, repo=job.repo
        )
        req = agent_run.agent_request(req, workspace, engine=job.agent.engine,
                                      repo_host=job.repo.host if job.repo else None)  # fmt: skip
        tty = sys.stderr.isatty() and not log_json
        terminal = ProgressFilter(sys.stderr.buffer, tty=tty)
    try:
        with stop_on_signals():
            done = run_recorded(
                req,
                home=coatcheck_home(),
                job=job.name if job else None,
                kind="agent" if workspace is not None else "command",
                junit_file=junit_file,
                stderr=terminal,
                log=sys.stderr if log_json else None,
                run_id=run_id,
            )
        if workspace is not None:
            from runner import agent_run

            result = agent_run.collect(workspace, done.run_dir.path)
            done.run_dir.write_record(done.record.model_copy(update=result))
    finally:
        if terminal is not None:
            terminal.close()
        if workspace is not None:
            from runner import agent_run

            agent_run.remove_workspace(workspace)
        if req.input_file is not None:
            shutil.rmtree(req.input_file.parent, ignore_errors=True)
    if run_id is None:  # coatcheck serve records its own runs
        _remember(done)
    if done.error is not None:
        click.echo(f"coatcheck: error: {done.error.message}", err=True)
    click.echo(done.closing_line(), err=True)
    raise SystemExit(done.exit_code)
