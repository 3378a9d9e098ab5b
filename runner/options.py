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

upstream_ca_option = click.option(
    "--upstream-ca",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Also trust this CA when verifying upstream TLS; verification is never off (repeatable).",
)
