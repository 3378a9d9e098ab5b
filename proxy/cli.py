"""``coatcheck proxy``: run the proxy as a shared service that runs reuse (the warm path)."""

from __future__ import annotations

import click


@click.command("proxy")
@click.option(
    "--resolve",
    multiple=True,
    metavar="HOST:ADDR",
    help="Map a name to an address for every run (split DNS, air-gapped hosts). "
    "An explicit mapping may point at private addresses.",
)
@click.option(
    "--upstream-ca",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Also trust this CA when verifying upstream TLS (repeatable).",
)
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
    from proxy import service

    argv = [f"--resolve={r}" for r in resolve] + [f"--upstream-ca={c}" for c in upstream_ca]
    if audit_log:
        argv.append(f"--audit-log={audit_log}")
    raise SystemExit(service.main(argv))
