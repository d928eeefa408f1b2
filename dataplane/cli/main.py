"""The ``dataplane`` command line. Each command is a thin layer over the facade.

Exit codes: 0 success; 1 any other dataplane error; 2 bad usage, config or name;
3 not found; 4 integrity failure; 5 backend unavailable after retries.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from ..config import load_config, mask_url
from ..errors import (
    BackendUnavailableError,
    ConfigError,
    DataplaneError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
)
from ..names import KINDS
from .artifacts import COMMANDS
from .checkpoints import checkpoints
from .context import plane_of
from .features import features
from .migrate import COMMANDS as MIGRATE_COMMANDS

console = Console(soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])
EXIT_CODES: list[tuple[type[DataplaneError], int]] = [
    (ConfigError, 2), (InvalidNameError, 2), (NotFoundError, 3),
    (IntegrityError, 4), (BackendUnavailableError, 5),
]


def exit_code_for(error: DataplaneError) -> int:
    """The process exit code for a dataplane error (see the module docstring)."""
    return next((code for cls, code in EXIT_CODES if isinstance(error, cls)), 1)


class _Group(click.Group):
    """Turns dataplane errors into one red line on stderr and a meaningful exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DataplaneError as error:
            errors = Console(stderr=True, soft_wrap=True)
            errors.print("error:", style="red", end=" ")
            errors.print(str(error), markup=False, highlight=False)
            sys.exit(exit_code_for(error))


@click.group(cls=_Group)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Config file (default: $DATAPLANE_CONFIG, ./dataplane.toml, embedded).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """dataplane: one address and one API for models, datasets, features, checkpoints."""
    ctx.obj = config_path


@cli.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the effective configuration (secrets masked)."""
    loaded = load_config(ctx.obj)
    console.print(f"source:   {loaded.source or '(embedded default)'}")
    console.print(f"catalog:  {mask_url(loaded.catalog_url)}")
    console.print(f"tenant:   {loaded.tenant}")
    console.print(f"default backend: {loaded.default_backend}")
    for backend in loaded.backends.values():
        console.print(f"backend {backend.name}: {mask_url(backend.url)} "
                      f"{backend.masked_options() or ''}", highlight=False)
    for route in loaded.routes:
        console.print(f"route {route.match} -> {route.backend}")
    console.print(f"features: {loaded.features!r}", highlight=False)


@config.command("check")
@click.pass_context
def config_check(ctx: click.Context) -> None:
    """Validate the config and open the catalog; exit 2 with the reason if it is invalid."""
    plane = plane_of(ctx)
    plane.check_backends()
    console.print(f"ok: catalog schema v{plane.catalog.schema_version}, "
                  f"{len(plane.config.backends)} backend(s)")


@cli.command("ls")
@click.option("--kind", type=click.Choice(KINDS), default=None)
@click.option("--prefix", default=None, help="Only names starting with this.")
@click.pass_context
def ls(ctx: click.Context, kind: str | None, prefix: str | None) -> None:
    """List names in the catalog with their latest version."""
    plane = plane_of(ctx)
    table = Table("kind", "name", "latest")
    for record in plane.catalog.names(plane.tenant, kind, prefix):
        table.add_row(record.kind, record.name, str(record.latest_version or "-"))
    console.print(table)


@cli.command("route")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("name")
@click.pass_context
def route(ctx: click.Context, kind: str, name: str) -> None:
    """Show which backend new versions of KIND/NAME are written to."""
    plane = plane_of(ctx)
    backend = plane.route(kind, name)
    console.print(f"{plane.tenant}/{kind}/{name} -> {backend} "
                  f"({mask_url(plane.config.backends[backend].url)})", highlight=False)


for command in [*COMMANDS, checkpoints, features, *MIGRATE_COMMANDS]:
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="dataplane")
