"""Command-line options shared by several commands, defined once."""

from __future__ import annotations

import click

resolve_option = click.option(
    "--resolve",
    multiple=True,
    metavar="HOST:ADDR",
    help="Dial ADDR for HOST (split DNS, air-gapped hosts, tests); an explicit mapping may "
    "point at private addresses (repeatable).",
)

allow_opaque_option = click.option(
    "--allow-opaque",
    multiple=True,
    metavar="DOMAIN",
    help="Allow this host pattern without interception: its TLS goes to the host untouched "
    "(no secret, no scrubbing, no per-request audit; bytes and duration are audited). For "
    "package registries and bulk downloads (repeatable).",
)

upstream_ca_option = click.option(
    "--upstream-ca",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Also trust this CA when verifying upstream TLS; verification is never off (repeatable).",
)


class Duration(click.ParamType):
    """Seconds (``90``) or a number with a unit (``90s``, ``5m``, ``2h``, ``1h30m``)."""

    name = "duration"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        from runner.durations import parse_duration

        if isinstance(value, float):
            return value
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc).replace("timeout = ", "--timeout "), param, ctx)


DURATION = Duration()
