"""``dataplane migrate plan|run|status|verify|rollback|cleanup`` and ``catalog migrate``.

Exit codes, beyond those of :mod:`dataplane.cli.main` (0 ok, 1 other error, 2 bad
usage/config, 3 not found — e.g. an empty selection or an unknown plan —, 4 integrity,
5 backend unavailable): ``run`` exits 6 when it finished but some objects failed (their
versions were not flipped; ``status`` lists the errors, and running again retries them);
``verify`` exits 4 when any object is missing or differs at the destination.
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

from ..migrate import Outcome, PlanStatus, RunSettings
from ..migrate.catalog_move import move_catalog
from .context import plane_of

console = Console(soft_wrap=True)
EXIT_INCOMPLETE = 6
EXIT_DIFFERENT = 4
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group("migrate")
def migrate() -> None:
    """Move versions to another backend: plan, run, status, verify, rollback, cleanup."""


@migrate.command("plan")
@click.argument("selectors", nargs=-1)
@click.option("--to", "destination", required=True, help="Backend to move to.")
@click.option("--from", "source", default=None, help="Only versions active on this backend.")
@click.option("--grace", "grace_s", type=float, default=86400.0, show_default=True,
              help="Seconds old copies are kept after the flip, before cleanup may drop them.")
@JSON_OPTION
@click.pass_context
def plan(ctx: click.Context, selectors: tuple[str, ...], destination: str, source: str | None,
         grace_s: float, as_json: bool) -> None:
    """Record a plan to move the versions SELECTORS match and print what would move.

    SELECTORS: tenant=T, kind=K (or models|datasets|checkpoints), name=GLOB (or GLOB),
    alias=A (or @A), versions=N..M; none means everything.
    """
    summary = plane_of(ctx).migrate.plan(destination, *selectors, source=source,
                                         grace_period_s=grace_s)
    if as_json:
        click.echo(json.dumps(summary.to_json(), indent=2))
        return
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(summary.versions.items()))
    console.print(f"plan [bold]{summary.plan_id}[/bold]: {summary.selector} "
                  f"{summary.source or '(any backend)'} -> {summary.destination}",
                  highlight=False)
    console.print(f"  versions: {kinds}\n  objects:  {summary.objects}\n"
                  f"  bytes:    {summary.bytes:,}\n  estimate: ~{summary.estimated_s:.0f} s")
    console.print(f"run it with: dataplane migrate run {summary.plan_id}", highlight=False)


class _Bar:
    """A rich progress bar over the bytes of a run (on stderr, only on a terminal)."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.task: Any = None

    def started(self, objects: int, nbytes: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task("migrate", total=nbytes, objects=objects)

    def advanced(self, outcome: Outcome) -> None:
        if self.task is not None:
            self.progress.advance(self.task, outcome.size)


@contextmanager
def _progress(enabled: bool) -> Iterator[_Bar | None]:
    if not enabled:
        yield None
        return
    columns = (TextColumn("migrate"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        yield _Bar(progress)


@migrate.command("run")
@click.argument("plan_id", metavar="PLAN")
@click.option("--workers", type=int, default=8, show_default=True,
              help="Objects copied in parallel.")
@JSON_OPTION
@click.pass_context
def run(ctx: click.Context, plan_id: str, workers: int, as_json: bool) -> None:
    """Copy, verify and flip PLAN; run it again to resume or to retry failures."""
    if workers < 1:
        raise click.BadParameter("must be at least 1", param_hint="--workers")
    plane = plane_of(ctx)
    with _progress(not as_json) as bar:
        report = plane.migrate.run(plan_id, settings=RunSettings(workers=workers), observer=bar)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        console.print(f"{report.plan_id}: {report.state}; {report.copied} object(s) copied "
                      f"({report.bytes:,} bytes in {report.seconds:.1f} s), "
                      f"{report.flipped} version(s) flipped, {report.failed} object(s) failed",
                      highlight=False)
        for error in report.errors:
            console.print(f"  failed: {error}", highlight=False, markup=False)
    if not report.complete:
        ctx.exit(EXIT_INCOMPLETE)


@migrate.command("status")
@click.argument("plan_id", metavar="[PLAN]", required=False)
@JSON_OPTION
@click.pass_context
def status(ctx: click.Context, plan_id: str | None, as_json: bool) -> None:
    """Progress of PLAN (objects, bytes, rate, errors), or a table of every plan."""
    migrations = plane_of(ctx).migrate
    ids = [plan_id] if plan_id else [p.id for p in migrations.plans()]
    found = [migrations.status(i) for i in ids]
    if as_json:
        payload: Any = found[0].to_json() if plan_id else [s.to_json() for s in found]
        click.echo(json.dumps(payload, indent=2, default=str))
        return
    if plan_id:
        _print_status(found[0])
        return
    table = Table("plan", "state", "to", "objects", "verified", "failed")
    for item in found:
        raw = item.to_json()
        table.add_row(raw["plan_id"], raw["state"], raw["destination"], str(raw["objects"]),
                      str(raw["matched"]), str(raw["differing"]))
    console.print(table)


def _print_status(item: PlanStatus) -> None:
    raw = item.to_json()
    console.print(f"[bold]{raw['plan_id']}[/bold] {raw['state']}"
                  f"{' (running)' if raw['running'] else ''}: {raw['selector']} "
                  f"{raw['source'] or '(any)'} -> {raw['destination']}", highlight=False)
    console.print(f"  objects: {raw['matched']}/{raw['objects']} verified, "
                  f"{raw['missing']} to do, {raw['differing']} failed; "
                  f"{raw['bytes_verified']:,}/{raw['bytes']:,} bytes", highlight=False)
    rate = raw["stats"].get("rate_bps")
    if rate:
        console.print(f"  last run: {raw['stats'].get('seconds')} s, {rate / 1e6:.1f} MB/s")
    console.print(f"  versions: {raw['versions']}", highlight=False)
    for error in raw["errors"]:
        console.print(f"  error: {error}", highlight=False, markup=False)


@migrate.command("verify")
@click.argument("plan_id", metavar="PLAN")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Write the combined listing (= matched, - missing, * differing, ! error).")
@JSON_OPTION
@click.pass_context
def verify(ctx: click.Context, plan_id: str, output: str | None, as_json: bool) -> None:
    """Re-read PLAN's destination copies against the recorded digests (exit 4 on any
    difference)."""
    report = plane_of(ctx).migrate.verify(plan_id)
    if output:
        Path(output).write_text("".join(f"{line}\n" for line in report.lines))
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        console.print(f"{plan_id}: {report.matched} matched, {report.missing} missing, "
                      f"{report.differing} differing, {report.errors} unreadable",
                      highlight=False)
        for line in report.lines:
            if not line.startswith("="):
                console.print(f"  {line}", highlight=False, markup=False)
    if not report.clean:
        ctx.exit(EXIT_DIFFERENT)


@migrate.command("rollback")
@click.argument("plan_id", metavar="PLAN")
@click.pass_context
def rollback(ctx: click.Context, plan_id: str) -> None:
    """Flip PLAN's versions back to their source (nothing is deleted)."""
    moved = plane_of(ctx).migrate.rollback(plan_id)
    console.print(f"{plan_id}: {moved} version(s) moved back", highlight=False)


@migrate.command("cleanup")
@click.argument("plan_id", metavar="PLAN")
@click.option("--grace", "grace_s", type=float, default=None,
              help="Override the plan's grace period (seconds).")
@JSON_OPTION
@click.pass_context
def cleanup(ctx: click.Context, plan_id: str, grace_s: float | None, as_json: bool) -> None:
    """Delete the old copies of PLAN's versions whose grace period is over."""
    report = plane_of(ctx).migrate.cleanup(plan_id, grace_period_s=grace_s)
    if as_json:
        click.echo(json.dumps({"plan_id": plan_id, "versions": report.versions,
                               "objects_deleted": report.objects,
                               "objects_kept_shared": report.kept_shared,
                               "waiting": [{"version": a, "seconds_left": round(s, 1)}
                                           for a, s in report.waiting],
                               "errors": report.errors}, indent=2))
    else:
        console.print(f"{plan_id}: {report.versions} version(s) cleaned, {report.objects} "
                      f"object(s) deleted, {report.kept_shared} kept (still used)",
                      highlight=False)
        for address, left in report.waiting:
            console.print(f"  waiting: {address} ({left:.0f} s of grace left)", highlight=False)
        for error in report.errors:
            console.print(f"  error: {error}", highlight=False, markup=False)
    if report.errors:
        ctx.exit(1)


@click.group("catalog")
def catalog() -> None:
    """Operations on the catalog database itself."""


@catalog.command("migrate")
@click.option("--to", "url", required=True,
              help="The new catalog database, e.g. postgresql+psycopg://user@host/db.")
@click.option("--no-switch", is_flag=True, help="Copy and verify only; leave the config.")
@JSON_OPTION
@click.pass_context
def catalog_migrate(ctx: click.Context, url: str, no_switch: bool, as_json: bool) -> None:
    """Copy every catalog row to URL, verify counts and digests, and switch the config."""
    report = move_catalog(plane_of(ctx), url, switch=not no_switch)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    for table, count in report.rows.items():
        console.print(f"  {table}: {count} row(s), digest ok", highlight=False)
    where = f"; config {report.config_file} now points at it" if report.config_file else ""
    console.print(f"catalog copied to {report.url}{where}", highlight=False)


COMMANDS = [migrate, catalog]
