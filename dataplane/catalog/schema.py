"""The catalog's tables, as SQLAlchemy Core metadata, at :data:`SCHEMA_VERSION`.

Guarantees the tables keep, whatever the dialect (SQLite or PostgreSQL):

- a name is unique per (tenant, kind, name); ``names.next_version`` is the number the
  next committed version of that name gets (it starts at 1);
- a version number is unique per name, and versions are never rewritten, only
  tombstoned (``deleted_at`` / ``deleted_by``);
- an alias points at one version of its own name (a composite foreign key);
- a location is unique per (version, backend) and carries a ``state``;
- ``audit`` rows are only ever inserted;
- every timestamp is stored and returned as a timezone-aware UTC ``datetime``;
- ``migrations``, ``migration_versions`` and ``migration_objects`` are the durable journal
  of :mod:`dataplane.migrate` (a plan, the versions it moves, every object's copy state);
  ``route_overrides`` redirect new writes from one backend to another (a migration's
  routing update), without rewriting config files.

An older catalog is brought to this version by :mod:`dataplane.catalog.upgrade`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

__all__ = [
    "MIGRATION_TABLES",
    "SCHEMA_VERSION",
    "UTCDateTime",
    "alias_history",
    "aliases",
    "audit",
    "locations",
    "metadata",
    "migration_objects",
    "migration_versions",
    "migrations",
    "names",
    "route_overrides",
    "schema_info",
    "utcnow",
    "versions",
]

SCHEMA_VERSION = 3
"""The schema version this release writes; :mod:`.upgrade` brings older ones here."""


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC ``datetime``."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that must be timezone-aware going in and is always UTC coming out.

    SQLite has no timezone-aware type, so values are stored there as naive UTC text;
    PostgreSQL stores ``timestamptz``. Binding a naive ``datetime`` raises ``ValueError``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"catalog timestamps must be timezone-aware, got {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData()

schema_info = Table(
    "schema_info",
    metadata,
    Column("version", Integer, nullable=False),
)

names = Table(
    "names",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(63), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("next_version", Integer, nullable=False, default=1),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("tenant", "kind", "name", name="uq_names_tenant_kind_name"),
)

versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name_id", Integer, ForeignKey("names.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("digest", String(100), nullable=False),
    Column("manifest", JSON, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("deleted_at", UTCDateTime, nullable=True),
    Column("deleted_by", String(255), nullable=True),
    UniqueConstraint("name_id", "number", name="uq_versions_name_number"),
    Index("ix_versions_digest", "digest"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("name_id", Integer, ForeignKey("names.id"), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("version_number", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(255), nullable=False),
    PrimaryKeyConstraint("name_id", "alias", name="pk_aliases"),
    ForeignKeyConstraint(
        ["name_id", "version_number"],
        ["versions.name_id", "versions.number"],
        name="fk_aliases_version",
    ),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name_id", Integer, ForeignKey("names.id"), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("changed_by", String(255), nullable=False),
    Index("ix_alias_history_name_alias", "name_id", "alias"),
)

locations = Table(
    "locations",
    metadata,
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
    Column("backend", String(100), nullable=False),
    Column("uri", Text, nullable=False),
    Column("state", String(16), nullable=False, server_default="active"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("version_id", "backend", name="pk_locations"),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("action", String(32), nullable=False),
    Column("tenant", String(63), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=True),
    Column("detail", JSON, nullable=False),
    Index("ix_audit_address", "tenant", "kind", "name"),
)

migrations = Table(
    "migrations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("source", String(100), nullable=True),  # None: every backend but the destination
    Column("destination", String(100), nullable=False),
    Column("selectors", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("grace_s", Float, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(255), nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("stats", JSON, nullable=False),
    Column("report", JSON, nullable=True),
)

migration_versions = Table(
    "migration_versions",
    metadata,
    Column("migration_id", String(40), ForeignKey("migrations.id"), nullable=False),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("number", Integer, nullable=False),
    Column("source", String(100), nullable=False),
    Column("uri", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("keys", JSON, nullable=False),
    Column("flipped_at", UTCDateTime, nullable=True),
    Column("error", Text, nullable=True),
    PrimaryKeyConstraint("migration_id", "version_id", name="pk_migration_versions"),
)

migration_objects = Table(
    "migration_objects",
    metadata,
    Column("migration_id", String(40), ForeignKey("migrations.id"), nullable=False),
    Column("key", String(1024), nullable=False),
    Column("source", String(100), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("expected", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("copies", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("migration_id", "key", name="pk_migration_objects"),
    Index("ix_migration_objects_state", "migration_id", "state"),
)

route_overrides = Table(
    "route_overrides",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pattern", String(300), nullable=False),
    Column("from_backend", String(100), nullable=True),
    Column("to_backend", String(100), nullable=False),
    Column("migration_id", String(40), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

MIGRATION_TABLES = (migrations, migration_versions, migration_objects, route_overrides)
"""The tables schema v3 added (see :func:`dataplane.catalog.upgrade._v2_to_v3`)."""
