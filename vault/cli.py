"""``coatcheck vault``: store, list and remove secrets.

A value is read from stdin, or from a hidden prompt on a terminal; never from the command
line, where ``ps`` and shell history would see it. Errors are raised as ``CoatcheckError``;
the top-level ``coatcheck`` command prints them and exits with their exit code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

import click

from core.errors import InvalidValue, UsageError
from core.home import coatcheck_home
from vault import rotation
from vault.keystore import default_keystore
from vault.secret import DEFAULT_SURFACES, PLACEHOLDER_FORMATS, SURFACES, SecretMeta, SecretValue
from vault.store import KEEP, Vault
from vault.validate import (
    MAX_VALUE_BYTES,
    validate_domains,
    validate_methods,
    validate_name,
    validate_paths,
    validate_surfaces,
)

EXAMPLE_SET: Final = "coatcheck vault set GITHUB_TOKEN --domains api.github.com < token.txt"


@click.group("vault")
def vault_group() -> None:
    """Store secrets that the proxy injects for sandboxed jobs.

    Values are encrypted at rest with a key kept in the OS keyring, or in the file named by
    COATCHECK_VAULT_KEY_FILE. They are never printed.
    """


@vault_group.command("set")
@click.argument("name")
@click.option(
    "--domains",
    "domains",
    multiple=True,
    required=True,
    metavar="PATTERNS",
    help="Comma-separated hosts the secret may be sent to (repeatable): api.example.com, or "
    "*.example.com for its subdomains (not example.com itself).",
)
@click.option(
    "--surfaces",
    multiple=True,
    metavar="LIST",
    help=f"Where the placeholder may be replaced: {', '.join(SURFACES)} "
    f"[default: {','.join(DEFAULT_SURFACES)}].",
)
@click.option(
    "--methods", multiple=True, metavar="LIST", help="Only for these HTTP methods, e.g. GET,HEAD."
)
@click.option(
    "--paths", multiple=True, metavar="LIST", help="Only for these path prefixes, e.g. /v1/*."
)
@click.option(
    "--placeholder-format",
    type=click.Choice(PLACEHOLDER_FORMATS),
    default="opaque",
    show_default=True,
    help="'shaped' placeholders keep the real token's prefix and length.",
)
@click.option(
    "--rotate-after",
    metavar="PERIOD",
    default=None,
    help="Flag the secret as overdue, and warn the runs that use it, once it is older than "
    "this: 30d, 12w, 720h (1h to 5 years), or never. [default: keep the secret's current "
    "policy; none for a new secret]",
)
def set_command(
    name: str,
    domains: tuple[str, ...],
    surfaces: tuple[str, ...],
    methods: tuple[str, ...],
    paths: tuple[str, ...],
    placeholder_format: str,
    rotate_after: str | None,
) -> None:
    """Store secret NAME, replacing any value it had.

    The value is read from stdin (one trailing newline is stripped), or from a hidden
    prompt when stdin is a terminal:

        coatcheck vault set GITHUB_TOKEN --domains api.github.com < token.txt
    """
    validate_name(name)
    canonical_domains = validate_domains(_split(domains))
    surface_list = validate_surfaces(_split(surfaces) or DEFAULT_SURFACES)
    method_list = validate_methods(_split(methods))
    path_list = validate_paths(_split(paths))
    policy = KEEP if rotate_after is None else _rotate_after(rotate_after)
    vault = Vault.open(coatcheck_home(), keystore=default_keystore())
    meta = vault.set(
        name,
        _read_value(name),
        canonical_domains,
        surfaces=surface_list,
        methods=method_list,
        paths=path_list,
        placeholder_format=placeholder_format,
        rotate_after=policy,
    )
    every = f"; rotate every {rotation.format_period(p)}" if (p := meta.rotate_after) else ""
    click.echo(f"stored {meta.name} for {', '.join(meta.domains)}{every}")


@vault_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_command(as_json: bool) -> None:
    """List stored secrets (names and rules, never values). Needs no key.

    AGE is the days since the value was last set; ROTATE its --rotate-after period; DUE the
    day it is due for rotation, or OVERDUE.
    """
    vault = Vault.open(coatcheck_home())
    metas = vault.list()
    now = datetime.now(UTC)
    if as_json:
        click.echo(json.dumps([_as_dict(meta, now) for meta in metas], indent=2))
        return
    if not metas:
        click.echo(f"the vault is empty ({vault.path}); add a secret with:\n  {EXAMPLE_SET}")
        return
    click.echo(_table(metas, now))
    overdue = [m.name for m in metas if rotation.is_overdue(m, now)]
    if overdue:
        click.echo(
            f"\n{len(overdue)} overdue for rotation ({', '.join(overdue)}): store a new value "
            "with `coatcheck vault set NAME --domains ...`, giving the same rules"
        )


@vault_group.command("rm")
@click.argument("name")
def rm_command(name: str) -> None:
    """Remove secret NAME. Running sandboxes stop getting it on their next request."""
    Vault.open(coatcheck_home()).remove(name)
    click.echo(f"removed {name}")


def _rotate_after(text: str) -> int | None:
    try:
        return rotation.parse_policy(text)
    except UsageError as exc:
        raise UsageError(f"--rotate-after: {exc.message}; nothing was stored") from None


def _split(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def _stdin_is_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _read_value(name: str) -> SecretValue:
    if _stdin_is_terminal():
        text = click.prompt(
            f"Value for {name}", hide_input=True, confirmation_prompt=True, type=str
        )
        return SecretValue(text)
    raw = sys.stdin.buffer.read(MAX_VALUE_BYTES + 3) if sys.stdin is not None else b""
    if len(raw) > MAX_VALUE_BYTES + 2:
        raise InvalidValue(
            f"the value on stdin is over {MAX_VALUE_BYTES} bytes; nothing was stored"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidValue("the value on stdin is not UTF-8 text; nothing was stored") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise InvalidValue(
            f"no value on stdin; nothing was stored. Pipe it in, e.g. `{EXAMPLE_SET}`, "
            "or run in a terminal to be prompted"
        )
    return SecretValue(text)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_dict(meta: SecretMeta, now: datetime) -> dict[str, object]:
    return {
        "name": meta.name,
        "domains": list(meta.domains),
        "surfaces": list(meta.surfaces),
        "methods": list(meta.methods),
        "paths": list(meta.paths),
        "placeholder_format": meta.placeholder_format,
        "created": _when(meta.created),
        "updated": _when(meta.updated),
        "age_days": rotation.age_days(meta, now),
        "rotate_after_s": meta.rotate_after,
        "overdue": rotation.is_overdue(meta, now),
    }


def _due(meta: SecretMeta, now: datetime) -> str:
    """DUE: OVERDUE, the day the value is due for rotation, or - without a policy."""
    if meta.rotate_after is None:
        return "-"
    if rotation.is_overdue(meta, now):
        return "OVERDUE"
    return (meta.updated + timedelta(seconds=meta.rotate_after)).strftime("%Y-%m-%d")


def _table(metas: list[SecretMeta], now: datetime) -> str:
    header = ("NAME", "DOMAINS", "SURFACES", "CREATED", "UPDATED", "AGE", "ROTATE", "DUE")
    rows = [header] + [
        (m.name, ",".join(m.domains), ",".join(m.surfaces), _when(m.created), _when(m.updated),
         f"{rotation.age_days(m, now)}d",
         rotation.format_period(m.rotate_after) if m.rotate_after else "-", _due(m, now))
        for m in metas
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
