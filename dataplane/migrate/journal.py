"""The migration journal: a plan, its versions and every object's state, in the catalog.

Everything a run learns is written here before it acts on it, so a run killed at any
point (Ctrl-C, ``kill -9``, a lost network) resumes where it stopped:

- an object is marked ``copying`` (and its ``copies`` counter bumped) in a committed
  transaction *before* its bytes are written to the destination; a resumed run checks
  such an object at the destination first and copies it only if the check fails;
- an object is marked ``verified`` only after its destination copy matched the recorded
  digest; a resumed run never copies or re-reads it again;
- a version is marked ``flipped`` right after the catalog transaction that moved its
  location (see :mod:`.flip`); moving a location is idempotent, so a run killed between
  the two simply moves it again.

Object states: ``pending`` -> ``copying`` -> ``verified`` | ``failed`` (``skipped`` when
the version was deleted meanwhile). Version states: ``pending`` -> ``flipped`` ->
``cleaned``, or ``failed`` (an object of it failed), ``rolled_back``, ``skipped``.
Writes are batched by :class:`~.executor.Executor`; every method here is one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update

from ..catalog import VersionRecord
from ..catalog.engine import CatalogDatabase
from ..catalog.schema import migration_objects, migration_versions, migrations, utcnow
from ..errors import NotFoundError
from .objects import PlannedObject

__all__ = ["Journal", "ObjectRow", "PlanRecord", "VersionRow"]


@dataclass(frozen=True)
class PlanRecord:
    """A migration plan as the journal holds it."""

    id: str
    tenant: str
    source: str | None
    destination: str
    selectors: dict[str, Any]
    state: str
    grace_s: float
    created_at: datetime
    created_by: str
    updated_at: datetime
    lease_owner: str | None
    lease_until: datetime | None
    stats: dict[str, Any]
    report: dict[str, Any] | None


@dataclass(frozen=True)
class ObjectRow:
    """One object of a plan and where its copy stands."""

    key: str
    source: str
    size: int
    expected: dict[str, Any]
    state: str
    copies: int
    error: str | None


@dataclass(frozen=True)
class VersionRow:
    """One version of a plan: where it comes from, its objects, and its state."""

    version_id: int
    kind: str
    name: str
    number: int
    source: str
    uri: str
    state: str
    keys: tuple[str, ...]
    flipped_at: datetime | None
    error: str | None


class Journal:
    """The journal rows of one plan, in the catalog database ``db``."""

    def __init__(self, db: CatalogDatabase, plan_id: str):
        self.db = db
        self.plan_id = plan_id

    # --------------------------------------------------------------------- plans
    @staticmethod
    def create(db: CatalogDatabase, plan: PlanRecord) -> Journal:
        """Insert a new plan (no versions yet)."""
        with db.write() as conn:
            conn.execute(insert(migrations).values(
                id=plan.id, tenant=plan.tenant, source=plan.source,
                destination=plan.destination, selectors=plan.selectors, state=plan.state,
                grace_s=plan.grace_s, created_at=plan.created_at, created_by=plan.created_by,
                updated_at=plan.created_at, stats=plan.stats, report=None))
        return Journal(db, plan.id)

    @staticmethod
    def plans(db: CatalogDatabase) -> list[PlanRecord]:
        """Every plan, oldest first."""
        with db.read() as conn:
            rows = conn.execute(select(migrations).order_by(migrations.c.created_at)).all()
        return [_plan(row) for row in rows]

    def plan(self) -> PlanRecord:
        """This plan; :class:`~dataplane.errors.NotFoundError` if there is no such plan."""
        with self.db.read() as conn:
            row = conn.execute(select(migrations).where(migrations.c.id == self.plan_id)).first()
        if row is None:
            raise NotFoundError(f"no migration plan {self.plan_id!r} "
                                "(dataplane migrate status lists them)")
        return _plan(row)

    def set_state(self, state: str, **values: Any) -> None:
        """Move the plan to ``state`` (and set ``stats``/``report`` if given)."""
        with self.db.write() as conn:
            conn.execute(update(migrations).where(migrations.c.id == self.plan_id)
                         .values(state=state, updated_at=utcnow(), **values))

    def update(self, **values: Any) -> None:
        """Set columns of the plan's row (``stats``, ``report``, lease columns)."""
        with self.db.write() as conn:
            conn.execute(update(migrations).where(migrations.c.id == self.plan_id)
                         .values(updated_at=utcnow(), **values))

    # ------------------------------------------------------------------ versions
    def add_versions(self, entries: Sequence[tuple[VersionRecord, str, Sequence[PlannedObject]]]
                     ) -> int:
        """Add ``(version, source backend, objects)`` not in the plan yet, with their
        objects (an object already planned keeps its row); returns how many were added."""
        at = utcnow()
        with self.db.write() as conn:
            known = set(conn.execute(select(migration_versions.c.version_id).where(
                migration_versions.c.migration_id == self.plan_id)).scalars())
            keys = set(conn.execute(select(migration_objects.c.key).where(
                migration_objects.c.migration_id == self.plan_id)).scalars())
            fresh = [e for e in entries if e[0].id not in known]
            version_rows = [{"migration_id": self.plan_id, "version_id": v.id, "kind": v.kind,
                             "name": v.name, "number": v.number, "source": src,
                             "uri": _uri_on(v, src), "state": "pending",
                             "keys": [o.key for o in objs]}
                            for v, src, objs in fresh]
            object_rows: dict[str, dict[str, Any]] = {}
            for _v, src, objs in fresh:
                for obj in objs:
                    if obj.key not in keys and obj.key not in object_rows:
                        object_rows[obj.key] = {
                            "migration_id": self.plan_id, "key": obj.key, "source": src,
                            "size": obj.size, "expected": obj.expected, "state": "pending",
                            "copies": 0, "updated_at": at}
            if version_rows:
                conn.execute(insert(migration_versions), version_rows)
            if object_rows:
                conn.execute(insert(migration_objects), list(object_rows.values()))
        return len(fresh)

    def versions(self) -> list[VersionRow]:
        """The plan's versions, by version id."""
        stmt = (select(migration_versions)
                .where(migration_versions.c.migration_id == self.plan_id)
                .order_by(migration_versions.c.version_id))
        with self.db.read() as conn:
            return [VersionRow(r.version_id, r.kind, r.name, r.number, r.source, r.uri,
                               r.state, tuple(r.keys), r.flipped_at, r.error)
                    for r in conn.execute(stmt)]

    def set_version(self, version_id: int, state: str, *, error: str | None = None,
                    flipped_at: datetime | None = None) -> None:
        """Record a version's new state."""
        values: dict[str, Any] = {"state": state, "error": error}
        if flipped_at is not None:
            values["flipped_at"] = flipped_at
        with self.db.write() as conn:
            conn.execute(update(migration_versions).where(
                migration_versions.c.migration_id == self.plan_id,
                migration_versions.c.version_id == version_id).values(**values))

    # ------------------------------------------------------------------- objects
    def objects(self, states: Iterable[str] | None = None) -> list[ObjectRow]:
        """The plan's objects (in these states), by key."""
        stmt = (select(migration_objects)
                .where(migration_objects.c.migration_id == self.plan_id)
                .order_by(migration_objects.c.key))
        if states is not None:
            stmt = stmt.where(migration_objects.c.state.in_(list(states)))
        with self.db.read() as conn:
            return [ObjectRow(r.key, r.source, r.size, dict(r.expected), r.state, r.copies,
                              r.error) for r in conn.execute(stmt)]

    def counts(self) -> dict[str, tuple[int, int]]:
        """``state -> (objects, bytes)``."""
        stmt = (select(migration_objects.c.state, func.count(), func.sum(migration_objects.c.size))
                .where(migration_objects.c.migration_id == self.plan_id)
                .group_by(migration_objects.c.state))
        with self.db.read() as conn:
            return {row[0]: (int(row[1]), int(row[2] or 0)) for row in conn.execute(stmt)}

    def mark_copying(self, keys: Sequence[str]) -> None:
        """Durably record that these objects are about to be written (``copies`` + 1)."""
        if not keys:
            return
        stmt = (update(migration_objects)
                .where(migration_objects.c.migration_id == self.plan_id,
                       migration_objects.c.key == bindparam("k"))
                .values(state="copying", copies=migration_objects.c.copies + 1,
                        updated_at=bindparam("at")))
        at = utcnow()
        with self.db.write() as conn:
            conn.execute(stmt, [{"k": key, "at": at} for key in keys])

    def record(self, results: Sequence[tuple[str, str, str | None, dict[str, Any]]]) -> None:
        """Store ``(key, state, error, expected)`` outcomes in one transaction."""
        if not results:
            return
        stmt = (update(migration_objects)
                .where(migration_objects.c.migration_id == self.plan_id,
                       migration_objects.c.key == bindparam("k"))
                .values(state=bindparam("s"), error=bindparam("e"),
                        expected=bindparam("x"), updated_at=bindparam("at")))
        at = utcnow()
        with self.db.write() as conn:
            conn.execute(stmt, [{"k": k, "s": s, "e": e, "x": x, "at": at}
                                for k, s, e, x in results])

    def reset_failed(self) -> int:
        """Put failed objects back to ``pending`` (a new run retries them)."""
        with self.db.write() as conn:
            result = conn.execute(update(migration_objects).where(
                migration_objects.c.migration_id == self.plan_id,
                migration_objects.c.state == "failed").values(state="pending"))
            conn.execute(update(migration_versions).where(
                migration_versions.c.migration_id == self.plan_id,
                migration_versions.c.state == "failed").values(state="pending", error=None))
            return int(result.rowcount or 0)


def _uri_on(record: VersionRecord, backend: str) -> str:
    return next(loc.uri for loc in record.locations if loc.backend == backend)


def _plan(row: Any) -> PlanRecord:
    return PlanRecord(row.id, row.tenant, row.source, row.destination, dict(row.selectors),
                      row.state, row.grace_s, row.created_at, row.created_by, row.updated_at,
                      row.lease_owner, row.lease_until, dict(row.stats or {}),
                      dict(row.report) if row.report is not None else None)
