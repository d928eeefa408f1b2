"""The catalog: the source of truth for names, versions, aliases, locations and audit.

Open one with :func:`open_catalog` (``sqlite:///path/catalog.db`` or
``postgresql+psycopg://user@host/db``); every :class:`Catalog` method runs in one
transaction and returns immutable records.
"""

from __future__ import annotations

from .catalog import Catalog, open_catalog
from .records import (
    LOCATION_STATES,
    AliasChange,
    AuditEntry,
    LocationRecord,
    NameRecord,
    RouteOverride,
    VersionRecord,
)
from .schema import SCHEMA_VERSION

__all__ = [
    "LOCATION_STATES",
    "SCHEMA_VERSION",
    "AliasChange",
    "AuditEntry",
    "Catalog",
    "LocationRecord",
    "NameRecord",
    "RouteOverride",
    "VersionRecord",
    "open_catalog",
]
