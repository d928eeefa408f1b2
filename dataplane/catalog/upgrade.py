"""Versioned schema: create a fresh catalog, or bring an older one up to date.

``schema_info.version`` records the schema a catalog was written with. Opening a catalog
(:func:`ensure_schema`) does exactly one of these, under a lock that serializes concurrent
openers (``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on PostgreSQL):

- no tables at all: create every table at :data:`SCHEMA_VERSION`;
- an older version N: run ``UPGRADES[N]``, ``UPGRADES[N + 1]``, ... in order, then record
  :data:`SCHEMA_VERSION`, all in one transaction (both dialects have transactional DDL, so
  a failed step leaves the catalog exactly as it was);
- a newer version: raise :class:`~dataplane.errors.ConfigError` (upgrade dataplane);
- tables but no ``schema_info``: raise :class:`~dataplane.errors.ConfigError` (this is
  not a dataplane catalog).

Adding a schema version means: change :mod:`.schema`, bump ``SCHEMA_VERSION``, add the
step from the previous version here, and freeze the previous DDL as a test fixture.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, DateTime, insert, inspect, select, text, update
from sqlalchemy.exc import DBAPIError

from ..errors import ConfigError
from .engine import CatalogDatabase
from .schema import MIGRATION_TABLES, SCHEMA_VERSION, metadata, schema_info

__all__ = ["UPGRADES", "ensure_schema", "read_schema_version"]

_POSTGRES_SCHEMA_LOCK = 0x64617461706C616E  # "dataplan": any constant shared by all openers


def _v1_to_v2(conn: Connection) -> None:
    """v2 gives each location a ``state`` (every v1 location was active) and ``updated_at``."""
    timestamp = DateTime(timezone=True).compile(dialect=conn.dialect)
    conn.execute(
        text("ALTER TABLE locations ADD COLUMN state VARCHAR(16) NOT NULL DEFAULT 'active'")
    )
    conn.execute(text(f"ALTER TABLE locations ADD COLUMN updated_at {timestamp}"))
    conn.execute(text("UPDATE locations SET updated_at = created_at"))
    if conn.dialect.name == "postgresql":
        # SQLite cannot add NOT NULL to an existing column; the catalog always writes it.
        conn.execute(text("ALTER TABLE locations ALTER COLUMN updated_at SET NOT NULL"))


def _v2_to_v3(conn: Connection) -> None:
    """v3 adds the migration journal and the route overrides; no existing table changes."""
    metadata.create_all(conn, tables=list(MIGRATION_TABLES), checkfirst=False)


UPGRADES: dict[int, Callable[[Connection], None]] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
}
"""From-version -> the step that brings a catalog from that version to the next."""


def ensure_schema(db: CatalogDatabase) -> int:
    """Make the catalog's schema :data:`SCHEMA_VERSION` (see the module docstring).

    Returns the version found before any upgrade (``0`` for a fresh database).
    """
    with db.read() as conn:
        found = read_schema_version(conn)
    if found == SCHEMA_VERSION:
        return found
    with db.write() as conn:
        if db.dialect == "postgresql":
            conn.execute(text(f"SELECT pg_advisory_xact_lock({_POSTGRES_SCHEMA_LOCK})"))
        return _create_or_upgrade(conn, db.url)


def read_schema_version(conn: Connection) -> int | None:
    """The recorded schema version, or ``None`` when there is no ``schema_info`` table."""
    if not inspect(conn).has_table(schema_info.name):
        return None
    return conn.execute(select(schema_info.c.version)).scalar()


def _create_or_upgrade(conn: Connection, url: str) -> int:
    tables = set(inspect(conn).get_table_names())
    if not tables:
        metadata.create_all(conn)
        conn.execute(insert(schema_info).values(version=SCHEMA_VERSION))
        return 0
    if schema_info.name not in tables:
        listed = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise ConfigError(
            f"{url} is not a dataplane catalog: it has tables ({listed}) but no schema_info; "
            "point the catalog at an empty database or an existing dataplane catalog"
        )
    found = read_schema_version(conn)
    if found is None:
        raise ConfigError(f"{url}: the catalog's schema_info table is empty")
    _check_supported(found, url)
    for version in range(found, SCHEMA_VERSION):
        _run_step(conn, version, url)
    conn.execute(update(schema_info).values(version=SCHEMA_VERSION))
    return found


def _check_supported(found: int, url: str) -> None:
    if found > SCHEMA_VERSION:
        raise ConfigError(
            f"the catalog schema v{found} at {url} is newer than this release of dataplane "
            f"supports (v{SCHEMA_VERSION}); upgrade dataplane to open it"
        )
    if found < 1:
        raise ConfigError(f"{url}: the catalog records an invalid schema version {found}")


def _run_step(conn: Connection, version: int, url: str) -> None:
    step = UPGRADES.get(version)
    if step is None:
        raise ConfigError(f"{url}: no upgrade from catalog schema v{version} to v{version + 1}")
    try:
        step(conn)
    except DBAPIError as error:
        raise ConfigError(
            f"{url}: upgrading the catalog schema from v{version} to v{version + 1} failed, "
            f"so nothing was changed: {str(error.orig).strip()}"
        ) from error
