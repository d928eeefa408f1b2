"""Aliases and their history, inside the caller's transaction.

Every change to an alias (create, move, remove) writes one ``alias_history`` row in the
same transaction, so the history is complete: replaying it gives the current aliases.
Callers hold the name's lock (:func:`._versions.lock_name`) before calling
:func:`move_alias`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from .records import AliasChange
from .schema import alias_history, aliases

__all__ = ["aliases_of", "current_change", "history_of", "move_alias", "pointing_at"]


def move_alias(
    conn: Connection, name_id: int, alias: str, to: int | None, *, actor: str, at: datetime
) -> AliasChange | None:
    """Point ``alias`` at version ``to`` (``None`` removes it) and record the move.

    Returns the change, or ``None`` when nothing changed (the alias already pointed
    there, or a removed alias did not exist); no history row is written then.
    """
    key = (aliases.c.name_id == name_id, aliases.c.alias == alias)
    current = conn.execute(select(aliases.c.version_number).where(*key)).scalar()
    if current == to:
        return None
    if to is None:
        conn.execute(delete(aliases).where(*key))
    elif current is None:
        conn.execute(
            insert(aliases).values(
                name_id=name_id, alias=alias, version_number=to, updated_at=at, updated_by=actor
            )
        )
    else:
        conn.execute(
            update(aliases).where(*key).values(version_number=to, updated_at=at, updated_by=actor)
        )
    conn.execute(
        insert(alias_history).values(
            name_id=name_id,
            alias=alias,
            from_version=current,
            to_version=to,
            changed_at=at,
            changed_by=actor,
        )
    )
    return AliasChange(alias, current, to, at, actor)


def current_change(conn: Connection, name_id: int, alias: str) -> AliasChange | None:
    """The alias's current target as an :class:`AliasChange` from and to that version."""
    row = conn.execute(
        select(aliases).where(aliases.c.name_id == name_id, aliases.c.alias == alias)
    ).first()
    if row is None:
        return None
    return AliasChange(
        alias, row.version_number, row.version_number, row.updated_at, row.updated_by
    )


def pointing_at(conn: Connection, name_id: int, number: int) -> list[str]:
    """The aliases that point at version ``number``, sorted."""
    stmt = select(aliases.c.alias).where(
        aliases.c.name_id == name_id, aliases.c.version_number == number
    )
    return sorted(conn.execute(stmt).scalars())


def aliases_of(conn: Connection, name_id: int) -> dict[str, int]:
    """Every alias of the name and the version it points at, sorted by alias."""
    stmt = select(aliases.c.alias, aliases.c.version_number).where(aliases.c.name_id == name_id)
    return dict(sorted((row.alias, row.version_number) for row in conn.execute(stmt)))


def history_of(conn: Connection, name_id: int, alias: str | None) -> list[AliasChange]:
    """Every recorded move of the name's aliases (or of one alias), oldest first."""
    stmt = select(alias_history).where(alias_history.c.name_id == name_id)
    if alias is not None:
        stmt = stmt.where(alias_history.c.alias == alias)
    return [_change(row) for row in conn.execute(stmt.order_by(alias_history.c.id))]


def _change(row: Row[Any]) -> AliasChange:
    return AliasChange(row.alias, row.from_version, row.to_version, row.changed_at, row.changed_by)
