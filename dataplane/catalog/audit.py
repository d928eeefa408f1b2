"""The append-only audit trail.

Every catalog write appends exactly one row here, inside the same transaction as the
change it records, so the trail and the catalog never disagree: a rolled-back change
leaves no audit row. Nothing in dataplane updates or deletes an audit row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select

from .records import AuditEntry
from .schema import audit

__all__ = ["append_audit", "read_audit"]


def append_audit(
    conn: Connection,
    *,
    at: datetime,
    actor: str,
    action: str,
    tenant: str,
    kind: str,
    name: str,
    version: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Insert one audit row in ``conn``'s transaction (the caller commits it)."""
    conn.execute(
        insert(audit).values(
            at=at,
            actor=actor,
            action=action,
            tenant=tenant,
            kind=kind,
            name=name,
            version=version,
            detail=detail or {},
        )
    )


def read_audit(
    conn: Connection,
    *,
    tenant: str | None = None,
    kind: str | None = None,
    name: str | None = None,
    limit: int = 1000,
) -> list[AuditEntry]:
    """The newest ``limit`` rows matching the filters, returned oldest first."""
    stmt = select(audit).order_by(audit.c.id.desc()).limit(limit)
    for column, value in (("tenant", tenant), ("kind", kind), ("name", name)):
        if value is not None:
            stmt = stmt.where(audit.c[column] == value)
    return [_entry(row) for row in reversed(conn.execute(stmt).all())]


def _entry(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        tenant=row.tenant,
        kind=row.kind,
        name=row.name,
        version=row.version,
        detail=dict(row.detail),
    )
