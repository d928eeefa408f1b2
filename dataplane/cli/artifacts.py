"""CLI commands over models and datasets: show, publish, fetch, alias, rm, gc.

A ref is ``name@ref`` within the current tenant (``--kind`` picks models or datasets,
models by default) or a full ``dp://tenant/kind/name@ref`` address, whose kind wins.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from ..artifacts import ArtifactStore, Version
from ..facade import DataPlane
from ..models import collect_sources
from .context import plane_of

console = Console(soft_wrap=True)
KIND_OPTION = click.option("--kind", type=click.Choice(["models", "datasets"]), default=None,
                           help="Kind of a short ref (default: models).")
LINEAGE_KEYS = ("datasets", "dataset", "checkpoint", "checkpoints", "parents")


def store_for(plane: DataPlane, ref: str, kind: str | None) -> ArtifactStore:
    """The store a ref belongs to: the kind of a full address, else ``--kind``."""
    if ref.startswith("dp://"):
        kind = ref[len("dp://"):].split("/", 2)[1] if ref.count("/") >= 4 else kind
    return plane.datasets if kind == "datasets" else plane.models


@contextmanager
def transfer_progress(store: ArtifactStore, label: str, total: int) -> Iterator[None]:
    """Show a rich progress bar (on a terminal) while ``store`` moves ``total`` bytes."""
    columns = (TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(label, total=total)
        store.progress = lambda n: progress.advance(task, n)
        try:
            yield
        finally:
            store.progress = None


@click.command("show")
@click.argument("ref")
@KIND_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show(ctx: click.Context, ref: str, kind: str | None, as_json: bool) -> None:
    """Show one version: digest, files, aliases, metadata and lineage."""
    plane = plane_of(ctx)
    store = store_for(plane, ref, kind)
    version = store.resolve(ref)
    aliases = sorted(a for a, n in store.aliases(version.name).items() if n == version.version)
    if as_json:
        click.echo(json.dumps(_version_json(version, aliases), indent=2, default=str))
        return
    console.print(f"[bold]{version.uri}[/bold]", highlight=False)
    console.print(f"digest:     {version.digest}")
    console.print(f"created:    {version.created_at:%Y-%m-%d %H:%M:%S} UTC by {version.created_by}")
    console.print(f"aliases:    {', '.join(aliases) or '-'}")
    console.print(f"size:       {version.size} bytes in {len(version.files)} file(s)")
    lineage = {k: v for k, v in version.metadata.items() if k in LINEAGE_KEYS}
    for key, value in lineage.items():
        console.print(f"lineage:    {key} = {value}", highlight=False)
    other = {k: v for k, v in version.metadata.items() if k not in LINEAGE_KEYS}
    if other:
        console.print(f"metadata:   {json.dumps(other, default=str)}", highlight=False)
    table = Table("path", "size", "digest")
    for file in version.files:
        table.add_row(file.path, str(file.size), file.digest[:23] + "...")
    console.print(table)


def _version_json(version: Version, aliases: list[str]) -> dict[str, Any]:
    return {"uri": version.uri, "name": version.name, "version": version.version,
            "digest": version.digest, "created_at": version.created_at.isoformat(),
            "created_by": version.created_by, "aliases": aliases,
            "metadata": dict(version.metadata),
            "files": [{"path": f.path, "size": f.size, "digest": f.digest}
                      for f in version.files]}


@click.command("publish")
@click.argument("name")
@click.argument("source", type=click.Path(exists=False))
@click.option("--alias", "aliases", multiple=True, help="Alias to point at the new version.")
@click.option("--meta", "meta", multiple=True, help="Metadata KEY=VALUE (repeatable).")
@click.option("--dataset", "datasets", multiple=True, help="Lineage: a dataset ref it used.")
@click.option("--checkpoint", default=None, help="Lineage: the checkpoint it came from.")
@click.pass_context
def publish(ctx: click.Context, name: str, source: str, aliases: tuple[str, ...],
            meta: tuple[str, ...], datasets: tuple[str, ...], checkpoint: str | None) -> None:
    """Publish SOURCE (a file or folder) as the next version of model NAME."""
    plane = plane_of(ctx)
    metadata: dict[str, Any] = dict(_pair(item) for item in meta)
    if datasets:
        metadata["datasets"] = [str(plane.datasets.resolve(ref).uri) for ref in datasets]
    if checkpoint:
        metadata["checkpoint"] = checkpoint
    total = sum(path.stat().st_size for _, path in collect_sources(Path(source)))
    with transfer_progress(plane.models, "publish", total):
        version = plane.models.publish(name, source, metadata=metadata, aliases=aliases)
    console.print(f"published {version.uri} ({version.digest})", highlight=False)


def _pair(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--meta")
    return key, value


@click.command("fetch")
@click.argument("ref")
@click.option("--dest", type=click.Path(file_okay=False), default=None,
              help="Folder to copy into (default: the node cache).")
@click.option("--file", "files", multiple=True, help="Only this file (repeatable).")
@KIND_OPTION
@click.pass_context
def fetch(ctx: click.Context, ref: str, dest: str | None, files: tuple[str, ...],
          kind: str | None) -> None:
    """Fetch a verified local copy of REF and print where it is."""
    plane = plane_of(ctx)
    store = store_for(plane, ref, kind)
    version = store.resolve(ref)
    selected = list(files) or None
    total = sum(f.size for f in version.files if selected is None or f.path in selected)
    with transfer_progress(store, "fetch", total):
        path = store.fetch(version.uri, dest, files=selected)
    click.echo(str(path))


@click.group("alias")
def alias() -> None:
    """Set, list and show the history of aliases."""


@alias.command("set")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@click.argument("version", type=int)
@KIND_OPTION
@click.pass_context
def alias_set(ctx: click.Context, name: str, alias_name: str, version: int,
              kind: str | None) -> None:
    """Point ALIAS of NAME at VERSION (one transaction, recorded in the history)."""
    change = store_for(plane_of(ctx), name, kind).set_alias(name, alias_name, version)
    console.print(f"{name}@{alias_name}: {change.from_version or '-'} -> {change.to_version}")


@alias.command("list")
@click.argument("name")
@KIND_OPTION
@click.pass_context
def alias_list(ctx: click.Context, name: str, kind: str | None) -> None:
    """List the aliases of NAME."""
    table = Table("alias", "version")
    for key, number in sorted(store_for(plane_of(ctx), name, kind).aliases(name).items()):
        table.add_row(key, str(number))
    console.print(table)


@alias.command("history")
@click.argument("name")
@click.option("--alias", "alias_name", default=None, help="Only this alias.")
@KIND_OPTION
@click.pass_context
def alias_history(ctx: click.Context, name: str, alias_name: str | None,
                  kind: str | None) -> None:
    """Every move of NAME's aliases, oldest first."""
    table = Table("when", "alias", "from", "to", "by")
    for change in store_for(plane_of(ctx), name, kind).alias_history(name, alias_name):
        table.add_row(f"{change.changed_at:%Y-%m-%d %H:%M:%S}", change.alias,
                      str(change.from_version or "-"), str(change.to_version or "-"),
                      change.changed_by)
    console.print(table)


@click.command("rm")
@click.argument("ref")
@KIND_OPTION
@click.pass_context
def rm(ctx: click.Context, ref: str, kind: str | None) -> None:
    """Tombstone a version; its bytes are removed by a later gc."""
    version = store_for(plane_of(ctx), ref, kind).delete(ref)
    console.print(f"deleted {version.uri} (bytes go at the next gc)", highlight=False)


@click.command("gc")
@click.option("--grace", "grace_s", type=float, default=3600.0, show_default=True,
              help="Only objects older than this many seconds.")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.pass_context
def gc(ctx: click.Context, grace_s: float, dry_run: bool) -> None:
    """Remove stored objects that no live model or dataset version references."""
    report = plane_of(ctx).gc(grace_period_s=grace_s, dry_run=dry_run)
    for backend, info in report.objects:
        click.echo(f"{'would remove' if dry_run else 'removed'} {backend}:{info.key} "
                   f"({info.size} bytes)")
    verb = "would free" if dry_run else "freed"
    click.echo(f"{len(report.objects)} object(s), {verb} {report.bytes} bytes")


COMMANDS = [show, publish, fetch, alias, rm, gc]
