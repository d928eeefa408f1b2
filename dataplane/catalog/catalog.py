"""The catalog: names, immutable versions, aliases, locations and the audit trail.

:class:`Catalog` is the repository every domain store uses. Each method runs in exactly
one database transaction, so a caller sees a change completely or not at all, and every
write appends its audit row in that same transaction. Callers validate tenants, kinds,
names and aliases (:mod:`dataplane.names`) before they call; the catalog trusts them.

Writes to one name are serialized by a lock on the name's row (PostgreSQL) or on the
database (SQLite, ``BEGIN IMMEDIATE``), so they are safe from any number of threads and
processes sharing one catalog URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

from ..errors import NotFoundError
from ..names import Ref
from . import _aliases, _lifecycle, _locations, _overrides
from ._versions import (
    find_owner,
    list_names,
    list_versions,
    lock_name,
    lock_owner,
    resolve_version,
)
from .audit import read_audit
from .engine import CatalogDatabase, open_database
from .records import (
    AliasChange,
    AuditEntry,
    LocationRecord,
    NameRecord,
    RouteOverride,
    VersionRecord,
)
from .schema import utcnow
from .upgrade import ensure_schema, read_schema_version

__all__ = ["DEFAULT_ACTOR", "Catalog", "open_catalog"]

DEFAULT_ACTOR = "dataplane"


def open_catalog(url: str) -> Catalog:
    """Open (creating or upgrading as needed) the catalog at ``url``.

    ``url`` is ``sqlite:///path/catalog.db`` or ``postgresql+psycopg://user@host/db``.
    Raises :class:`~dataplane.errors.ConfigError` for a bad URL or an unusable schema and
    :class:`~dataplane.errors.BackendUnavailableError` when the database cannot be reached.
    """
    db = open_database(url)
    try:
        return Catalog(db)
    except BaseException:
        db.dispose()
        raise


class Catalog:
    """Repository functions over one catalog database; safe to share between threads.

    Use as a context manager, or call :meth:`close` when done.
    """

    def __init__(self, db: CatalogDatabase) -> None:
        """Wrap ``db``, first bringing its schema to the current version."""
        ensure_schema(db)
        self._db = db

    @property
    def url(self) -> str:
        """The catalog's URL with any password masked."""
        return self._db.url

    @property
    def database(self) -> CatalogDatabase:
        """The database itself, for dataplane modules that keep their own tables in it
        (the migration journal); every other caller uses the methods below."""
        return self._db

    @property
    def schema_version(self) -> int:
        """The schema version recorded in the database."""
        with self._db.read() as conn:
            return read_schema_version(conn) or 0

    def close(self) -> None:
        """Release every connection; the catalog must not be used afterwards."""
        self._db.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({self.url!r})"

    # -- versions -------------------------------------------------------------------------

    def commit_version(
        self,
        tenant: str,
        kind: str,
        name: str,
        *,
        digest: str,
        manifest: dict[str, Any],
        metadata: dict[str, Any],
        created_by: str,
        locations: Sequence[tuple[str, str]],
        aliases: Sequence[str] = (),
    ) -> VersionRecord:
        """Record a new version in one transaction and return it.

        Creates the name if needed, takes the next number (1, 2, ... distinct and without
        gaps even across processes; a failed commit uses no number), inserts the version,
        its ``(backend, uri)`` locations as ``active``, points ``aliases`` at it (with
        history) and appends a ``commit`` audit row. Nothing is written if anything fails
        (e.g. :class:`~dataplane.errors.AlreadyExistsError` for two locations on one backend).
        """
        with self._db.write() as conn:
            return _lifecycle.commit(
                conn,
                tenant,
                kind,
                name,
                digest=digest,
                manifest=manifest,
                metadata=metadata,
                created_by=created_by,
                locations=locations,
                aliases=aliases,
                at=utcnow(),
            )

    def resolve(self, tenant: str, kind: str, name: str, ref: Ref) -> VersionRecord:
        """The live version ``ref`` names (number, alias, ``latest`` or digest).

        Raises :class:`~dataplane.errors.NotFoundError` naming ``dp://tenant/kind/name@ref``
        when the name, version or alias is missing, or the version was deleted.
        """
        with self._db.read() as conn:
            return resolve_version(conn, find_owner(conn, tenant, kind, name, ref), ref)

    def versions(
        self, tenant: str, kind: str, name: str, *, include_deleted: bool = False,
        manifests: bool = True,
    ) -> list[VersionRecord]:
        """The name's versions in ascending number order (live ones unless asked).

        ``manifests=False`` leaves every record's ``manifest`` empty, for listings that
        need only numbers and metadata (a checkpoint's manifest is large).
        """
        with self._db.read() as conn:
            owner = find_owner(conn, tenant, kind, name, "latest")
            return list_versions(conn, owner, include_deleted, manifests)

    def names(
        self, tenant: str, kind: str | None = None, prefix: str | None = None
    ) -> list[NameRecord]:
        """The tenant's names (of one kind, starting with ``prefix``), by (kind, name)."""
        with self._db.read() as conn:
            return list_names(conn, tenant, kind, prefix)

    def tombstone(
        self, tenant: str, kind: str, name: str, number: int, *, actor: str
    ) -> VersionRecord:
        """Mark version ``number`` deleted and remove the aliases that point at it.

        The version's bytes and locations are untouched (garbage collection comes later).
        Tombstoning a deleted version changes nothing and returns it as it is.
        """
        with self._db.write() as conn:
            return _lifecycle.tombstone(conn, tenant, kind, name, number, actor, utcnow())

    # -- aliases --------------------------------------------------------------------------

    def set_alias(
        self, tenant: str, kind: str, name: str, alias: str, number: int, *, actor: str
    ) -> AliasChange:
        """Point ``alias`` at version ``number`` in one transaction, with history and audit.

        The version must exist and be live, else :class:`~dataplane.errors.NotFoundError`
        and nothing changes. Setting an alias to where it already points records nothing
        and returns a change whose ``from_version`` equals ``to_version``.
        """
        at = utcnow()
        with self._db.write() as conn:
            owner = lock_name(conn, tenant, kind, name, number)
            resolve_version(conn, owner, Ref("version", number))
            change = _aliases.move_alias(conn, owner.name_id, alias, number, actor=actor, at=at)
            if change is None:  # it already points there: nothing to record
                current = _aliases.current_change(conn, owner.name_id, alias)
                return current or AliasChange(alias, number, number, at, actor)
            detail = {"alias": alias, "from": change.from_version, "to": number}
            _lifecycle.audit_change(conn, owner, actor, "set_alias", number, detail, at)
            return change

    def remove_alias(
        self, tenant: str, kind: str, name: str, alias: str, *, actor: str
    ) -> AliasChange:
        """Remove ``alias`` (with history and audit); NotFoundError if it does not exist."""
        at = utcnow()
        with self._db.write() as conn:
            owner = lock_name(conn, tenant, kind, name, alias)
            change = _aliases.move_alias(conn, owner.name_id, alias, None, actor=actor, at=at)
            if change is None:
                raise NotFoundError(f"{owner.address(alias)}: no such alias")
            detail = {"alias": alias, "from": change.from_version}
            _lifecycle.audit_change(
                conn, owner, actor, "remove_alias", change.from_version, detail, at
            )
            return change

    def aliases(self, tenant: str, kind: str, name: str) -> dict[str, int]:
        """Every alias of the name and the version number it points at, sorted by alias."""
        with self._db.read() as conn:
            return _aliases.aliases_of(conn, find_owner(conn, tenant, kind, name, "latest").name_id)

    def alias_history(
        self, tenant: str, kind: str, name: str, alias: str | None = None
    ) -> list[AliasChange]:
        """Every move of the name's aliases (or of one), oldest first."""
        with self._db.read() as conn:
            owner = find_owner(conn, tenant, kind, name, alias or "latest")
            return _aliases.history_of(conn, owner.name_id, alias)

    # -- locations ------------------------------------------------------------------------

    def add_location(
        self,
        version_id: int,
        backend: str,
        uri: str,
        state: str = "active",
        *,
        actor: str = DEFAULT_ACTOR,
    ) -> LocationRecord:
        """Record that ``backend`` holds the version's bytes at ``uri``.

        Raises ``ValueError`` for an invalid state, :class:`~dataplane.errors.NotFoundError`
        for an unknown version and :class:`~dataplane.errors.AlreadyExistsError` when the
        backend already has a location for this version.
        """
        _locations.check_state(state)
        at = utcnow()
        with self._db.write() as conn:
            owner, number = lock_owner(conn, version_id)
            where = owner.address(number)
            found = _locations.insert_location(conn, version_id, backend, uri, state, at, where)
            detail = {"backend": backend, "uri": uri, "state": state}
            _lifecycle.audit_change(conn, owner, actor, "add_location", number, detail, at)
            return found

    def set_location_state(
        self, version_id: int, backend: str, state: str, *, actor: str = DEFAULT_ACTOR
    ) -> LocationRecord:
        """Change a location's state (``active``, ``draining``, ``deleted``)."""
        _locations.check_state(state)
        at = utcnow()
        with self._db.write() as conn:
            owner, number = lock_owner(conn, version_id)
            where = owner.address(number)
            after, before = _locations.update_state(conn, version_id, backend, state, at, where)
            detail = {"backend": backend, "from": before, "to": state}
            _lifecycle.audit_change(conn, owner, actor, "set_location_state", number, detail, at)
            return after

    def remove_location(
        self, version_id: int, backend: str, *, actor: str = DEFAULT_ACTOR
    ) -> LocationRecord:
        """Delete a location row and return what it was; NotFoundError if there is none."""
        at = utcnow()
        with self._db.write() as conn:
            owner, number = lock_owner(conn, version_id)
            gone = _locations.remove_location(conn, version_id, backend, owner.address(number))
            detail = {"backend": backend, "uri": gone.uri, "state": gone.state}
            _lifecycle.audit_change(conn, owner, actor, "remove_location", number, detail, at)
            return gone

    def move_location(
        self, version_id: int, source: str, target: str, uri: str, *, actor: str = DEFAULT_ACTOR
    ) -> LocationRecord:
        """In one transaction: ``target`` becomes the version's active location (at ``uri``)
        and ``source`` a draining one, with one ``move_location`` audit row.

        A reader that resolves the version before this commits reads ``source``; one that
        resolves after reads ``target``. :class:`~dataplane.errors.NotFoundError` when the
        version or its ``source`` location is missing; nothing changes then.
        """
        at = utcnow()
        with self._db.write() as conn:
            owner, number = lock_owner(conn, version_id)
            where = owner.address(number)
            moved = _locations.move_location(conn, version_id, source, target, uri, at, where)
            detail = {"from": source, "to": target, "uri": uri}
            _lifecycle.audit_change(conn, owner, actor, "move_location", number, detail, at)
            return moved

    # -- route overrides ------------------------------------------------------------------

    def route_overrides(self) -> list[RouteOverride]:
        """Every route override, in the order they are tried (newest first)."""
        with self._db.read() as conn:
            return _overrides.list_overrides(conn)

    def add_route_override(
        self, pattern: str, to_backend: str, *, from_backend: str | None = None,
        migration_id: str | None = None,
    ) -> RouteOverride:
        """Redirect new writes of names matching ``pattern`` to ``to_backend``."""
        with self._db.write() as conn:
            return _overrides.add_override(conn, pattern, from_backend, to_backend,
                                           migration_id, utcnow())

    def remove_route_overrides(self, migration_id: str) -> int:
        """Remove the overrides a migration installed; returns how many were removed."""
        with self._db.write() as conn:
            return _overrides.remove_overrides(conn, migration_id)

    # -- audit ----------------------------------------------------------------------------

    def audit(
        self,
        *,
        tenant: str | None = None,
        kind: str | None = None,
        name: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """The newest ``limit`` audit rows matching the filters, oldest first."""
        with self._db.read() as conn:
            return read_audit(conn, tenant=tenant, kind=kind, name=name, limit=limit)
