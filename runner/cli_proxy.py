"""``coatcheck proxy``: run the proxy as a shared service that runs reuse (the warm path)."""

from __future__ import annotations

import click

from runner.options import resolve_option, upstream_ca_option

# What one run may take of a shared proxy (defaults in proxy/limits.py), passed straight on.
LIMITS = (
    ("--max-connections-per-run", int, 256, "N", "Open connections one run may hold."),
    ("--idle-timeout", float, 30.0, "SECONDS", "Close a new connection that sends nothing."),
    ("--body-timeout", float, 60.0, "SECONDS", "Time for a body held for inspection (408)."),
    ("--buffer-per-run", int, 64, "MIB", "Bodies held for inspection, per run (429 above)."),
    ("--buffer-total", int, 256, "MIB", "Bodies held for inspection, all runs (429 above)."),
)


def _limit_options(f):  # type: ignore[no-untyped-def]
    for flag, kind, default, metavar, text in reversed(LIMITS):
        f = click.option(flag, type=kind, default=default, show_default=True, metavar=metavar,
                         help=text)(f)  # fmt: skip
    return f


@click.command("proxy")
@resolve_option
@upstream_ca_option
@click.option(
    "--audit-log",
    type=click.Path(dir_okay=False),
    help="Where audit lines go [default: $COATCHECK_HOME/proxy/audit.jsonl].",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    metavar="N",
    help="Processes to spread runs over, each run on one [default: one per core]. With more "
    "than one, a coordinator places runs and restarts a worker that dies (its runs are cut "
    "off, never left open); --buffer-total is shared among them.",
)
@_limit_options
def proxy_command(
    resolve: tuple[str, ...],
    upstream_ca: tuple[str, ...],
    audit_log: str | None,
    workers: int | None,
    **limits: float,
) -> None:
    """Run the egress proxy service in the foreground until interrupted.

    While it runs, `coatcheck run` registers with it instead of starting a proxy of its own.
    Upstream TLS is always verified. One JSON audit line per request goes to the audit log.
    """
    from runner import proxyd

    argv = [f"--resolve={r}" for r in resolve] + [f"--upstream-ca={c}" for c in upstream_ca]
    if audit_log:
        argv.append(f"--audit-log={audit_log}")
    if workers is not None:
        argv.append(f"--workers={workers}")
    argv += [f"--{name.replace('_', '-')}={value}" for name, value in limits.items()]
    raise SystemExit(proxyd.main(argv))
