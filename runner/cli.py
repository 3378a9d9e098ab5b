"""The ``coatcheck`` command: ``run``, ``check``, ``vault``, ``proxy``, ``images``, ``runs``,
``serve``, ``deploy`` and ``deployments``.

Errors are ``CoatcheckError``s; they are printed as ``coatcheck: error: ...`` and exit with
their code (2 usage, 125 when a sandbox can't be set up). Each group lives in its own module.
"""

from __future__ import annotations

import sys

import click

from core.errors import CoatcheckError
from runner.cli_check import check_command
from runner.cli_deployments import deployments_group
from runner.cli_images import images_group
from runner.cli_proxy import proxy_command
from runner.cli_run import run_command
from runner.cli_runs import runs_group
from runner.cli_serve import deploy_command, serve_command
from vault.cli import vault_group


@click.group()
@click.version_option(package_name="coatcheck")
def cli() -> None:
    """coatcheck: run jobs in a sandbox whose only way out is a credential-injecting proxy.

    Secrets stay in the vault; a job sees placeholders, and the proxy swaps in the real value
    only on TLS requests to that secret's allowlisted domains.
    """


cli.add_command(run_command, "run")
cli.add_command(check_command, "check")
cli.add_command(vault_group, "vault")
cli.add_command(proxy_command, "proxy")
cli.add_command(images_group, "images")
cli.add_command(runs_group, "runs")
cli.add_command(serve_command, "serve")
cli.add_command(deploy_command, "deploy")
cli.add_command(deployments_group, "deployments")


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="coatcheck", standalone_mode=False)
    except CoatcheckError as exc:
        click.echo(f"coatcheck: error: {exc.message}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("coatcheck: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
