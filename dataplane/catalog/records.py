"""The immutable records the catalog hands to its callers.

Records are snapshots: they are read inside one transaction and never change after, and
no record holds a database connection. Every ``datetime`` is timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "LOCATION_STATES",
    "AliasChange",
    "AuditEntry",
    "LocationRecord",
    "NameRecord",
    "RouteOverride",
    "VersionRecord",
    "format_address",
]

LOCATION_STATES: tuple[str, ...] = ("active", "draining", "deleted")
"""A location's lifecycle: bytes readable, being moved away, gone (kept for the record)."""


def format_address(tenant: str, kind: str, name: str, ref: object) -> str:
    """The canonical ``dp://tenant/kind/name@ref`` string used in messages."""
    return f"dp://{tenant}/{kind}/{name}@{ref}"


@dataclass(frozen=True)
class NameRecord:
    """A name; ``latest_version`` is its highest non-deleted version, or ``None``."""

    tenant: str
    kind: str
    name: str
    created_at: datetime
    latest_version: int | None


@dataclass(frozen=True)
class LocationRecord:
    """Where one backend holds a version's bytes, and in what state (see LOCATION_STATES)."""

    backend: str
    uri: str
    state: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class VersionRecord:
    """One immutable version of a name, with all its locations (sorted by backend).

    ``deleted_at`` / ``deleted_by`` are set once the version is tombstoned.
    """

    id: int
    tenant: str
    kind: str
    name: str
    number: int
    digest: str
    manifest: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime
    created_by: str
    deleted_at: datetime | None
    locations: tuple[LocationRecord, ...]
    deleted_by: str | None = None

    @property
    def address(self) -> str:
        """``dp://tenant/kind/name@number``: the address that always means this version."""
        return format_address(self.tenant, self.kind, self.name, self.number)

    @property
    def deleted(self) -> bool:
        """Whether the version is tombstoned."""
        return self.deleted_at is not None


@dataclass(frozen=True)
class AliasChange:
    """One move of an alias: ``from_version`` is ``None`` when it was created,
    ``to_version`` is ``None`` when it was removed."""

    alias: str
    from_version: int | None
    to_version: int | None
    changed_at: datetime
    changed_by: str


@dataclass(frozen=True)
class AuditEntry:
    """One row of the append-only audit trail."""

    id: int
    at: datetime
    actor: str
    action: str
    tenant: str
    kind: str
    name: str
    version: int | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class RouteOverride:
    """New writes to names matching ``pattern`` (a ``tenant/kind/name`` glob) that the
    config routes to ``from_backend`` (any backend when ``None``) go to ``to_backend``."""

    id: int
    pattern: str
    from_backend: str | None
    to_backend: str
    migration_id: str | None
    created_at: datetime
