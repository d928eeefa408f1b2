"""``dataplane checkpoints ls|show|rm|verify``: inspect and prune training checkpoints."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from ..config import mask_url
from .context import plane_of

console = Console(soft_wrap=True)


@click.group("checkpoints")
def checkpoints() -> None:
    """List, show, delete and verify checkpoints of a run."""


@checkpoints.command("ls")
@click.argument("run")
@click.pass_context
def ls(ctx: click.Context, run: str) -> None:
    """Committed steps of RUN, newest last."""
    store = plane_of(ctx).checkpoints
    table = Table("step", "arrays", "created", "by")
    for step in store.steps(run):
        checkpoint = store.checkpoint(run, step)
        table.add_row(str(step), str(len(checkpoint.keys)),
                      f"{checkpoint.created_at:%Y-%m-%d %H:%M:%S}", checkpoint.record.created_by)
    console.print(table)


@checkpoints.command("show")
@click.argument("run")
@click.argument("step", default="latest")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show(ctx: click.Context, run: str, step: str, as_json: bool) -> None:
    """Arrays (shape, dtype, chunks), metadata and location of one checkpoint."""
    checkpoint = plane_of(ctx).checkpoints.checkpoint(run, _step(step))
    arrays = checkpoint.record.manifest["arrays"]
    if as_json:
        click.echo(json.dumps({"run": checkpoint.run, "step": checkpoint.step,
                               "url": mask_url(checkpoint.url),
                               "metadata": dict(checkpoint.metadata),
                               "arrays": {k: {f: v[f] for f in ("shape", "dtype", "chunks")}
                                          for k, v in arrays.items()}}, indent=2))
        return
    console.print(f"[bold]{checkpoint.run} step {checkpoint.step}[/bold] at "
                  f"{mask_url(checkpoint.url)}", highlight=False)
    console.print(f"metadata: {json.dumps(dict(checkpoint.metadata), default=str)}",
                  highlight=False)
    table = Table("key", "shape", "dtype", "chunks")
    for key, info in arrays.items():
        table.add_row(key, str(tuple(info["shape"])), info["dtype"], str(tuple(info["chunks"])))
    console.print(table)


@checkpoints.command("rm")
@click.argument("run")
@click.argument("step", type=int)
@click.pass_context
def rm(ctx: click.Context, run: str, step: int) -> None:
    """Delete one checkpoint (hidden at once, then its objects removed)."""
    plane_of(ctx).checkpoints.delete(run, step)
    console.print(f"deleted {run} step {step}")


@checkpoints.command("verify")
@click.argument("run")
@click.argument("step", default="latest")
@click.pass_context
def verify(ctx: click.Context, run: str, step: str) -> None:
    """Re-read every chunk of a checkpoint and check every checksum (exit 4 if one fails)."""
    checkpoint = plane_of(ctx).checkpoints.verify(run, _step(step))
    chunks = sum(len(a["crc32"]) for a in checkpoint.record.manifest["arrays"].values())
    console.print(f"ok: {run} step {checkpoint.step}, {len(checkpoint.keys)} arrays, "
                  f"{chunks} chunks verified")


def _step(text: str) -> int | str:
    if text == "latest":
        return text
    try:
        return int(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a step number or 'latest'") from None
