"""``dataplane features apply|plan|materialize|get``: feature definitions and look-ups.

Definitions come from a TOML file (see :func:`dataplane.features.load_definitions`).
Times are ISO 8601 (``2026-01-01T00:00:00Z``); naive times are UTC.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ..features import load_definitions
from .context import plane_of

console = Console(soft_wrap=True)


@click.group("features")
def features() -> None:
    """Apply feature definitions, materialize them, and look features up."""


@features.command("plan")
@click.argument("definitions", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def plan(ctx: click.Context, definitions: str) -> None:
    """Show what `apply` would change; changes nothing."""
    console.print(str(plane_of(ctx).features.plan(load_definitions(definitions))),
                  highlight=False, markup=False)


@features.command("apply")
@click.argument("definitions", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Only show the plan.")
@click.pass_context
def apply(ctx: click.Context, definitions: str, dry_run: bool) -> None:
    """Make the definitions in a TOML file the applied ones (idempotent)."""
    result = plane_of(ctx).features.apply(load_definitions(definitions), dry_run=dry_run)
    console.print(str(result), highlight=False, markup=False)
    if result and not dry_run:
        console.print(f"applied: {result.summary()}", highlight=False)


@features.command("materialize")
@click.option("--start", default=None, help="Window start (ISO 8601); omit with --incremental.")
@click.option("--end", default=None, help="Window end (ISO 8601, default now).")
@click.option("--incremental", is_flag=True, help="From each view's previous end.")
@click.option("--view", "views", multiple=True, help="Only these views (repeatable).")
@click.pass_context
def materialize(ctx: click.Context, start: str | None, end: str | None, incremental: bool,
                views: tuple[str, ...]) -> None:
    """Copy the latest values in a time window from the sources to the online store."""
    store = plane_of(ctx).features
    until = _time(end) if end else datetime.now(UTC)
    chosen = list(views) or None
    if incremental:
        if start:
            raise click.UsageError("--start and --incremental exclude each other")
        store.materialize_incremental(until, chosen)
    else:
        if not start:
            raise click.UsageError("give --start (or --incremental)")
        store.materialize(_time(start), until, chosen)
    console.print(f"materialized {', '.join(views) or 'all online views'} up to "
                  f"{until.isoformat()}", highlight=False)


@features.command("get")
@click.argument("refs", nargs=-1, required=True)
@click.option("--row", "rows", multiple=True, required=True,
              help="One entity row: key=value[,key=value] (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON columns.")
@click.pass_context
def get(ctx: click.Context, refs: tuple[str, ...], rows: tuple[str, ...],
        as_json: bool) -> None:
    """Online values of REFS (view:feature, view, or a service name) for entity rows."""
    store = plane_of(ctx).features
    request = store.request(list(refs))
    kinds = request.join_keys
    entity_rows = [_row(text, kinds) for text in rows]
    result = store.get_online(list(refs), entity_rows)
    if as_json:
        click.echo(json.dumps(result, default=str, indent=2))
        return
    table = Table(*result)
    for values in zip(*result.values(), strict=True):
        table.add_row(*("-" if v is None else str(v) for v in values))
    console.print(table)


def _row(text: str, kinds: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise click.BadParameter(f"{part!r} is not key=value", param_hint="--row")
        key = key.strip()
        row[key] = int(value) if kinds.get(key) == "int64" and _is_int(value) else value
    return row


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
