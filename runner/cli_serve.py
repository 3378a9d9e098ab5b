"""``coatcheck serve`` (the long-running service) and ``coatcheck deploy JOBFILE``.

``deploy`` checks the job file here (so a mistake is reported with its fix before anything
changes), then hands its text and directory to the running service, which checks it again and
creates the deployment, or updates the one of that name: its history stays, its config version
goes up, and its schedule is re-armed from now (no backfill).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from core.errors import UsageError
from core.home import coatcheck_home

DEFAULT_LISTEN = "127.0.0.1:8750"


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {text!r}: use HOST:PORT, e.g. --listen {DEFAULT_LISTEN}")
    return host, int(port)


@click.group("serve", invoke_without_command=True)
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help="Where the HTTP API (run triggers, GitHub webhooks) and the web console listen.",
)
@click.pass_context
def serve_command(ctx: click.Context, listen: str) -> None:
    """Run the scheduler, the proxy and the HTTP API until SIGTERM or Ctrl-C.

    \b
    Deployments (`coatcheck deploy JOBFILE`) fire on their cron schedule, on
    `coatcheck deployments run NAME`, on POST /v1/deployments/NAME/run with the
    deployment's token, and on GitHub webhooks (POST /v1/deployments/NAME/github).
    Logs are JSON lines on stderr. SIGTERM stops running sandboxes (recorded as
    cancelled); after kill -9, the next start records the cut runs as interrupted.
    The web console is at http://HOST:PORT/ (log in with `coatcheck serve token`).
    """
    if ctx.invoked_subcommand is not None:
        return
    from runner.serve.service import serve

    raise SystemExit(serve(coatcheck_home(), parse_listen(listen)))


@click.command("deploy")
@click.argument("jobfile", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def deploy_command(jobfile: Path, as_json: bool) -> None:
    """Create or update the deployment of JOBFILE (its `name`), on the running service.

    \b
    A [schedule] table makes it fire on cron (5 fields; when both day-of-month and
    day-of-week are restricted, either matching fires it, as in Vixie and Debian cron):
      [schedule]
      cron = "30 2 * * *"          # 02:30 every day
      timezone = "Europe/Berlin"   # IANA name; default UTC
      overlap = "skip"             # or queue_one, allow
      max_runtime = "1h"           # mandatory limit; default 1 hour
    Without one, it fires only by hand, API or webhook. Updating never backfills.
    """
    from runner.cli_run import _load_job
    from runner.serve.launcher import ServePaths
    from runner.serve.wire import Request, call

    _load_job(jobfile)  # every problem, with its fix, before the service is asked
    text = jobfile.read_text(encoding="utf-8")
    reply = call(
        ServePaths(coatcheck_home()).control,
        Request("deploy", name=jobfile.stem, job_toml=text,
                job_base=str(jobfile.resolve().parent), source=str(jobfile)),
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps({k: v for k, v in reply.items() if k != "ok"}))
        return
    verb = "created" if reply["created"] else f"updated (config version {reply['config_version']})"
    click.echo(f"deployment {reply['deployment']} {verb}; status {reply['status']}")
    if reply["next"]:
        click.echo(f"next run: {reply['next'][0]}")
    else:
        click.echo("no schedule: it runs on `coatcheck deployments run`, the API or a webhook")


@serve_command.command("token")
def token_command() -> None:
    """Print a new login token for the web console and the console API, once.

    The previous one stops working, and so do the sessions it opened. Only its SHA-256 is
    kept ($COATCHECK_HOME/serve/console-token.sha256). Scripts may send it as
    `Authorization: Bearer <token>`.
    """
    from runner.console.admin_token import new_admin_token

    click.echo(new_admin_token(coatcheck_home()))
