"""``coatcheck run``: a command in a sandbox whose only route out is the proxy."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from core.errors import UsageError
from core.home import coatcheck_home
from runner.options import resolve_option, upstream_ca_option


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


@click.command(context_settings={"allow_interspersed_args": False})
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
    default="coatcheck/sandbox:latest",
    show_default=True,
    help="Local image to run; coatcheck's own is built on first use.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=None,
    metavar="SECONDS",
    help="Stop the command after this long and exit 124.",
)
@click.option("--env", "env", multiple=True, metavar="K=V", help="Set a variable (repeatable).")
@click.option(
    "--on-leak",
    type=click.Choice(["log", "block"]),
    default="log",
    show_default=True,
    help="What to do with a placeholder on its way to a host outside its domains.",
)
@click.option("--log-json", is_flag=True, help="Print the run's JSON log line on stderr.")
@click.argument("command", nargs=-1, required=True)
def run_command(
    secrets: tuple[str, ...],
    allow: tuple[str, ...],
    resolve: tuple[str, ...],
    allow_cidr: tuple[str, ...],
    upstream_ca: tuple[str, ...],
    image: str,
    timeout: float | None,
    env: tuple[str, ...],
    on_leak: str,
    log_json: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND in a sandbox; its only route out is the credential-injecting proxy.

    \b
    Example:
      coatcheck run --secret GITHUB_TOKEN -- \\
          curl -H "Authorization: Bearer $GITHUB_TOKEN" https://api.github.com/user

    Streams the command's output and exits with its exit code; 124 on timeout, 125 when the
    sandbox can't be set up. Starts its own proxy unless `coatcheck proxy` is running.
    """
    from runner.run import RunRequest, execute, stop_on_signals

    req = RunRequest(
        command=command,
        secrets=secrets,
        allow=allow,
        resolve=resolve,
        allow_cidr=allow_cidr,
        upstream_ca=tuple(Path(p) for p in upstream_ca),
        env=_env_pairs(env),
        image=image,
        timeout=timeout,
        on_leak=on_leak,
    )
    with stop_on_signals():
        code = execute(req, home=coatcheck_home(), log=sys.stderr if log_json else None)
    raise SystemExit(code)
