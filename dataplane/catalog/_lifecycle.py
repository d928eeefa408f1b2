"""Writing versions: commit a new one, tombstone an old one; and the audit row for both.

Functions run in the caller's write transaction and leave nothing behind if it rolls
back: the version number, the rows and the audit entry all go together.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, update

from . import _aliases, _locations
from ._versions import Owner, allocate_number, load_version, lock_name
from .audit import append_audit
from .records import VersionRecord
from .schema import versions

__all__ = ["audit_change", "commit", "tombstone"]


def commit(
    conn: Connection,
    tenant: str,
    kind: str,
    name: str,
    *,
    digest: str,
    manifest: dict[str, Any],
    metadata: dict[str, Any],
    created_by: str,
    locations: Sequence[tuple[str, str]],
    aliases: Sequence[str],
    at: datetime,
) -> VersionRecord:
    """Allocate the next number and write the version, locations, aliases and audit row."""
    owner, number = allocate_number(conn, tenant, kind, name, at)
    version_id = conn.execute(
        insert(versions)
        .values(name_id=owner.name_id, number=number, digest=digest, manifest=manifest)
        .values({"metadata": metadata, "created_at": at, "created_by": created_by})
        .returning(versions.c.id)
    ).scalar_one()
    for backend, uri in locations:
        where = owner.address(number)
        _locations.insert_location(conn, version_id, backend, uri, "active", at, where)
    unique_aliases = list(dict.fromkeys(aliases))
    for alias in unique_aliases:
        _aliases.move_alias(conn, owner.name_id, alias, number, actor=created_by, at=at)
    backends = [backend for backend, _ in locations]
    detail = {"digest": digest, "aliases": unique_aliases, "backends": backends}
    audit_change(conn, owner, created_by, "commit", number, detail, at)
    return load_version(conn, owner, number)


def tombstone(
    conn: Connection, tenant: str, kind: str, name: str, number: int, actor: str, at: datetime
) -> VersionRecord:
    """Mark the version deleted and remove its aliases; a deleted one is left as it is."""
    owner = lock_name(conn, tenant, kind, name, number)
    record = load_version(conn, owner, number)
    if record.deleted_at is not None:
        return record
    conn.execute(
        update(versions).where(versions.c.id == record.id).values(deleted_at=at, deleted_by=actor)
    )
    removed = _aliases.pointing_at(conn, owner.name_id, number)
    for alias in removed:
        _aliases.move_alias(conn, owner.name_id, alias, None, actor=actor, at=at)
    audit_change(conn, owner, actor, "tombstone", number, {"aliases_removed": removed}, at)
    return load_version(conn, owner, number)


def audit_change(
    conn: Connection,
    owner: Owner,
    actor: str,
    action: str,
    version: int | None,
    detail: dict[str, Any],
    at: datetime,
) -> None:
    """Append the audit row for a change to ``owner``'s name."""
    append_audit(
        conn,
        at=at,
        actor=actor,
        action=action,
        tenant=owner.tenant,
        kind=owner.kind,
        name=owner.name,
        version=version,
        detail=detail,
    )
