"""Reading names and versions inside a transaction, and resolving refs to versions.

Every function takes an open connection and runs in the caller's transaction. Missing
things raise :class:`~dataplane.errors.NotFoundError` whose message starts with the full
address (``dp://tenant/kind/name@ref``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, func, select, update

from ..errors import NotFoundError
from ..names import Ref
from ._dialect import insert_ignoring_conflict
from .records import LocationRecord, NameRecord, VersionRecord, format_address
from .schema import aliases, locations, names, versions

__all__ = [
    "Owner",
    "allocate_number",
    "find_owner",
    "list_names",
    "list_versions",
    "load_version",
    "lock_name",
    "lock_owner",
    "resolve_version",
]


@dataclass(frozen=True)
class Owner:
    """The name a version belongs to."""

    name_id: int
    tenant: str
    kind: str
    name: str

    def address(self, ref: object) -> str:
        """``dp://tenant/kind/name@ref``."""
        return format_address(self.tenant, self.kind, self.name, ref)


def find_owner(conn: Connection, tenant: str, kind: str, name: str, ref: object) -> Owner:
    """The name (without locking it); NotFoundError naming ``dp://...@ref`` if missing."""
    return _owner(conn, _name_query(tenant, kind, name), tenant, kind, name, ref)


def lock_name(conn: Connection, tenant: str, kind: str, name: str, ref: object) -> Owner:
    """Like :func:`find_owner`, and lock the name's row until the transaction ends.

    ``FOR UPDATE`` on PostgreSQL; on SQLite the write transaction already holds the
    database's write lock. Every write to a name's versions, aliases and locations takes
    this lock first, so writes to one name are serialized and never deadlock.
    """
    stmt = _name_query(tenant, kind, name).with_for_update()
    return _owner(conn, stmt, tenant, kind, name, ref)


def _owner(
    conn: Connection, stmt: Select[int], tenant: str, kind: str, name: str, ref: object
) -> Owner:
    name_id = conn.execute(stmt).scalar()
    if name_id is None:
        raise NotFoundError(f"{format_address(tenant, kind, name, ref)}: no such name")
    return Owner(name_id, tenant, kind, name)


def lock_owner(conn: Connection, version_id: int) -> tuple[Owner, int]:
    """Lock the name that owns version ``version_id``; return it and the version number."""
    stmt = (
        select(names.c.id, names.c.tenant, names.c.kind, names.c.name, versions.c.number)
        .join(versions, versions.c.name_id == names.c.id)
        .where(versions.c.id == version_id)
        .with_for_update(of=names)
    )
    row = conn.execute(stmt).first()
    if row is None:
        raise NotFoundError(f"catalog: no version with id {version_id}")
    return Owner(row.id, row.tenant, row.kind, row.name), row.number


def allocate_number(
    conn: Connection, tenant: str, kind: str, name: str, at: datetime
) -> tuple[Owner, int]:
    """Create the name if needed, lock it, and take its next version number.

    ``UPDATE ... next_version = next_version + 1 RETURNING`` locks the name's row, so
    concurrent committers are serialized and each gets a distinct number; if the
    transaction rolls back, so does the counter, which leaves no gap.
    """
    values = {"tenant": tenant, "kind": kind, "name": name, "next_version": 1, "created_at": at}
    conn.execute(insert_ignoring_conflict(conn, names, values, ["tenant", "kind", "name"]))
    stmt = (
        update(names)
        .where(names.c.tenant == tenant, names.c.kind == kind, names.c.name == name)
        .values(next_version=names.c.next_version + 1)
        .returning(names.c.id, names.c.next_version)
    )
    row = conn.execute(stmt).one()
    return Owner(row.id, tenant, kind, name), row.next_version - 1


def resolve_version(conn: Connection, owner: Owner, ref: Ref) -> VersionRecord:
    """The version ``ref`` names; tombstoned versions are never returned.

    ``latest`` is the highest live number; a digest that several live versions share
    resolves to the highest of them; an alias never points at a deleted version.
    """
    if ref.kind == "version":
        return _by_number(conn, owner, int(ref.value))
    stmt, missing = _live_query(owner, ref)
    row = conn.execute(stmt).first()
    if row is None:
        raise NotFoundError(f"{owner.address(ref)}: {missing}")
    return _records(conn, owner, [row])[0]


def _live_query(owner: Owner, ref: Ref) -> tuple[Select[Any], str]:
    """The query for a non-numeric ref, and what to say when it finds nothing."""
    live = _versions_of(owner).where(versions.c.deleted_at.is_(None))
    newest = versions.c.number.desc()
    if ref.kind == "latest":
        return live.order_by(newest).limit(1), "no live versions"
    if ref.kind == "digest":
        stmt = live.where(versions.c.digest == str(ref.value)).order_by(newest).limit(1)
        return stmt, "no live version has this digest"
    if ref.kind == "alias":
        return live.join(aliases, _alias_join(str(ref.value))), "no such alias"
    raise ValueError(f"unknown ref kind {ref.kind!r}")


def load_version(conn: Connection, owner: Owner, number: int) -> VersionRecord:
    """The version by number, deleted or not."""
    row = conn.execute(_versions_of(owner).where(versions.c.number == number)).first()
    if row is None:
        raise NotFoundError(f"{owner.address(number)}: no such version")
    return _records(conn, owner, [row])[0]


def list_versions(conn: Connection, owner: Owner, include_deleted: bool,
                  manifests: bool = True) -> list[VersionRecord]:
    """The name's versions, ascending by number (with ``manifests=False``, each record's
    manifest is left empty: not read, not decoded)."""
    stmt = _versions_of(owner, manifests).order_by(versions.c.number)
    if not include_deleted:
        stmt = stmt.where(versions.c.deleted_at.is_(None))
    return _records(conn, owner, conn.execute(stmt).all())


def list_names(
    conn: Connection, tenant: str, kind: str | None, prefix: str | None
) -> list[NameRecord]:
    """The tenant's names, sorted by (kind, name) in code-point order on every dialect."""
    latest = (
        select(versions.c.name_id, func.max(versions.c.number).label("latest"))
        .where(versions.c.deleted_at.is_(None))
        .group_by(versions.c.name_id)
        .subquery()
    )
    stmt = (
        select(names.c.kind, names.c.name, names.c.created_at, latest.c.latest)
        .outerjoin(latest, latest.c.name_id == names.c.id)
        .where(names.c.tenant == tenant)
    )
    if kind is not None:
        stmt = stmt.where(names.c.kind == kind)
    if prefix:
        stmt = stmt.where(names.c.name.startswith(prefix, autoescape=True))
    records = [
        NameRecord(tenant, row.kind, row.name, row.created_at, row.latest)
        for row in conn.execute(stmt)
        if not prefix or row.name.startswith(prefix)  # SQLite's LIKE ignores case
    ]
    return sorted(records, key=lambda record: (record.kind, record.name))


def _by_number(conn: Connection, owner: Owner, number: int) -> VersionRecord:
    record = load_version(conn, owner, number)
    if record.deleted_at is not None:
        raise NotFoundError(
            f"{owner.address(number)}: version {number} was deleted at "
            f"{record.deleted_at.isoformat()} by {record.deleted_by}"
        )
    return record


def _name_query(tenant: str, kind: str, name: str) -> Select[int]:
    return select(names.c.id).where(
        names.c.tenant == tenant, names.c.kind == kind, names.c.name == name
    )


def _versions_of(owner: Owner, manifests: bool = True) -> Select[Any]:
    columns = versions.c if manifests else [c for c in versions.c if c.name != "manifest"]
    return select(*columns).where(versions.c.name_id == owner.name_id)


def _alias_join(alias: str) -> Any:
    return and_(
        aliases.c.name_id == versions.c.name_id,
        aliases.c.version_number == versions.c.number,
        aliases.c.alias == alias,
    )


def _records(conn: Connection, owner: Owner, rows: Sequence[Row[Any]]) -> list[VersionRecord]:
    found = _locations(conn, [row.id for row in rows])
    return [_record(owner, row, found.get(row.id, ())) for row in rows]


def _record(owner: Owner, row: Row[Any], where: tuple[LocationRecord, ...]) -> VersionRecord:
    return VersionRecord(
        id=row.id,
        tenant=owner.tenant,
        kind=owner.kind,
        name=owner.name,
        number=row.number,
        digest=row.digest,
        manifest=dict(row.manifest) if "manifest" in row._mapping else {},
        metadata=dict(row._mapping["metadata"]),
        created_at=row.created_at,
        created_by=row.created_by,
        deleted_at=row.deleted_at,
        locations=where,
        deleted_by=row.deleted_by,
    )


def _locations(conn: Connection, version_ids: list[int]) -> dict[int, tuple[LocationRecord, ...]]:
    if not version_ids:
        return {}
    stmt = select(locations).where(locations.c.version_id.in_(version_ids))
    grouped: dict[int, list[LocationRecord]] = defaultdict(list)
    for row in conn.execute(stmt):
        grouped[row.version_id].append(
            LocationRecord(row.backend, row.uri, row.state, row.created_at, row.updated_at)
        )
    return {
        key: tuple(sorted(found, key=lambda loc: loc.backend)) for key, found in grouped.items()
    }
