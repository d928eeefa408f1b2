"""Route overrides: redirect new writes from one backend to another, kept in the catalog.

A migration redirects the names it moves (``tenant/kind/name`` globs) so that new bytes
go to its destination, without any config file being rewritten. An override applies when
its pattern matches and the configured route picks ``from_backend`` (or always, when
``from_backend`` is ``None``). Functions run in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from .records import RouteOverride
from .schema import route_overrides

__all__ = ["add_override", "list_overrides", "remove_overrides"]


def add_override(conn: Connection, pattern: str, from_backend: str | None, to_backend: str,
                 migration_id: str | None, at: datetime) -> RouteOverride:
    """Insert one override; it takes precedence over those inserted before it."""
    new_id = conn.execute(
        insert(route_overrides)
        .values(pattern=pattern, from_backend=from_backend, to_backend=to_backend,
                migration_id=migration_id, created_at=at)
        .returning(route_overrides.c.id)
    ).scalar_one()
    return RouteOverride(new_id, pattern, from_backend, to_backend, migration_id, at)


def list_overrides(conn: Connection) -> list[RouteOverride]:
    """Every override, newest first (the order they are tried in)."""
    stmt = select(route_overrides).order_by(route_overrides.c.id.desc())
    return [RouteOverride(r.id, r.pattern, r.from_backend, r.to_backend, r.migration_id,
                          r.created_at) for r in conn.execute(stmt)]


def remove_overrides(conn: Connection, migration_id: str) -> int:
    """Delete the overrides a migration installed; returns how many there were."""
    result = conn.execute(
        delete(route_overrides).where(route_overrides.c.migration_id == migration_id)
    )
    return int(result.rowcount or 0)
