"""Locations: which backend holds a version's bytes, and in what state.

A location's state is one of :data:`~.records.LOCATION_STATES`: ``active`` (readable),
``draining`` (being migrated away, still readable), ``deleted`` (bytes gone, row kept for
the record). Functions run in the caller's transaction; the caller holds the name lock.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from ..errors import AlreadyExistsError, NotFoundError
from .records import LOCATION_STATES, LocationRecord
from .schema import locations

__all__ = [
    "check_state",
    "get_location",
    "insert_location",
    "move_location",
    "remove_location",
    "update_state",
]


def check_state(state: str) -> str:
    """Return ``state`` if it is a valid location state; raise ``ValueError`` otherwise."""
    if state not in LOCATION_STATES:
        raise ValueError(
            f"invalid location state {state!r}: must be one of {', '.join(LOCATION_STATES)}"
        )
    return state


def get_location(conn: Connection, version_id: int, backend: str) -> LocationRecord | None:
    """The version's location on ``backend``, or ``None``."""
    row = conn.execute(
        select(locations).where(
            locations.c.version_id == version_id, locations.c.backend == backend
        )
    ).first()
    if row is None:
        return None
    return LocationRecord(row.backend, row.uri, row.state, row.created_at, row.updated_at)


def insert_location(
    conn: Connection, version_id: int, backend: str, uri: str, state: str, at: datetime, what: str
) -> LocationRecord:
    """Add a location; :class:`AlreadyExistsError` if the backend already has one."""
    if get_location(conn, version_id, backend) is not None:
        raise AlreadyExistsError(f"{what} already has a location on backend {backend!r}")
    conn.execute(
        insert(locations).values(
            version_id=version_id,
            backend=backend,
            uri=uri,
            state=check_state(state),
            created_at=at,
            updated_at=at,
        )
    )
    return LocationRecord(backend, uri, state, at, at)


def update_state(
    conn: Connection, version_id: int, backend: str, state: str, at: datetime, what: str
) -> tuple[LocationRecord, str]:
    """Set a location's state; return the new record and the previous state."""
    before = _require(conn, version_id, backend, what)
    conn.execute(
        update(locations)
        .where(locations.c.version_id == version_id, locations.c.backend == backend)
        .values(state=check_state(state), updated_at=at)
    )
    after = LocationRecord(before.backend, before.uri, state, before.created_at, at)
    return after, before.state


def move_location(
    conn: Connection, version_id: int, source: str, target: str, uri: str, at: datetime,
    what: str,
) -> LocationRecord:
    """Make ``target`` the active location and ``source`` a draining one.

    ``target``'s row is inserted, or (when a previous move left it) set back to active
    with ``uri``; ``source`` must have a row, which becomes ``draining``.
    """
    _require(conn, version_id, source, what)
    if get_location(conn, version_id, target) is None:
        insert_location(conn, version_id, target, uri, "active", at, what)
    else:
        conn.execute(
            update(locations)
            .where(locations.c.version_id == version_id, locations.c.backend == target)
            .values(state="active", uri=uri, updated_at=at)
        )
    update_state(conn, version_id, source, "draining", at, what)
    found = get_location(conn, version_id, target)
    assert found is not None
    return found


def remove_location(conn: Connection, version_id: int, backend: str, what: str) -> LocationRecord:
    """Delete a location row; return what it was."""
    before = _require(conn, version_id, backend, what)
    conn.execute(
        delete(locations).where(
            locations.c.version_id == version_id, locations.c.backend == backend
        )
    )
    return before


def _require(conn: Connection, version_id: int, backend: str, what: str) -> LocationRecord:
    found = get_location(conn, version_id, backend)
    if found is None:
        raise NotFoundError(f"{what} has no location on backend {backend!r}")
    return found
