"""``coatcheck proxy``: run the proxy as a shared service that runs reuse (the warm path)."""

from __future__ import annotations

import click

from runner.options import resolve_option, upstream_ca_option


@click.command("proxy")
@resolve_option
@upstream_ca_option
@click.option(
    "--audit-log",
    type=click.Path(dir_okay=False),
    help="Where audit lines go [default: $COATCHECK_HOME/proxy/audit.jsonl].",
)
def proxy_command(
    resolve: tuple[str, ...], upstream_ca: tuple[str, ...], audit_log: str | None
) -> None:
    """Run the egress proxy service in the foreground until interrupted.

    While it runs, `coatcheck run` registers with it instead of starting a proxy of its own.
    Upstream TLS is always verified. One JSON audit line per request goes to the audit log.
    """
    from runner import proxyd

    argv = [f"--resolve={r}" for r in resolve] + [f"--upstream-ca={c}" for c in upstream_ca]
    if audit_log:
        argv.append(f"--audit-log={audit_log}")
    raise SystemExit(proxyd.main(argv))
