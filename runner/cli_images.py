"""``coatcheck images``: build and list coatcheck's images (no registry is ever asked)."""

from __future__ import annotations

import json

import click

from core.errors import UsageError


def _engine():  # type: ignore[no-untyped-def]
    from sandbox.docker import Sandboxes

    return Sandboxes()


@click.group("images")
def images_group() -> None:
    """Build and list coatcheck's images (base, sandbox, agent, claude-code), built locally."""


@images_group.command("build")
@click.argument("names", nargs=-1)
@click.option("--force", is_flag=True, help="Rebuild even what is up to date.")
def build_command(names: tuple[str, ...], force: bool) -> None:
    """Build NAMES (default: base, sandbox and agent) from the recipes shipped with coatcheck.

    The base image is a minimal Debian trixie made with debootstrap (needs root and the
    debootstrap package; it fetches Debian packages) and `docker import`; the sandbox image is
    built FROM it, the agent image FROM the sandbox. claude-code (the Claude Code executable,
    about 400 MB, fetched with pip and checked by its pinned digest) is built only when named.
    Images that are up to date are left alone unless --force is given. `coatcheck run` builds
    a missing sandbox or agent image by itself on first use.
    """
    from images import build

    wanted = names or build.NAMES
    if bad := [n for n in wanted if n not in build.ALL]:
        raise UsageError(f"no image named {', '.join(bad)}; the images are {', '.join(build.ALL)}")

    def progress(line: str) -> None:
        click.echo(f"coatcheck images: {line}", err=True)

    build.build(wanted, engine=_engine(), progress=progress, force=force)


@images_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image.")
def list_command(as_json: bool) -> None:
    """Show each image and whether it is missing, stale (built by another version) or current."""
    from images import build

    states = build.status(_engine())
    if as_json:
        click.echo(json.dumps([s.as_json() for s in states], indent=2))
        return
    for s in states:
        click.echo(f"{s.name:<12} {s.image:<29} {s.state}")
