"""What every command shares: the facade, opened once per invocation and closed after."""

from __future__ import annotations

import click

from ..facade import DataPlane, connect

__all__ = ["plane_of"]


def plane_of(ctx: click.Context) -> DataPlane:
    """Connect with the ``--config`` given to the root command; closed when the command ends."""
    root = ctx.find_root()
    plane = root.meta.get("dataplane.plane")
    if plane is None:
        plane = connect(root.obj)
        root.meta["dataplane.plane"] = plane
        root.call_on_close(plane.close)
    return plane
