"""The few statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

__all__ = ["insert_ignoring_conflict"]


def insert_ignoring_conflict(
    conn: Connection, table: Table, values: Mapping[str, Any], unique: Sequence[str]
) -> Insert:
    """``INSERT ... ON CONFLICT (unique) DO NOTHING`` for the connection's dialect.

    Race-safe: when a concurrent transaction inserts the same key, PostgreSQL waits for it
    and then does nothing; SQLite's write lock already serializes the two.
    """
    if conn.dialect.name == "postgresql":
        return (
            postgresql.insert(table)
            .values(**values)
            .on_conflict_do_nothing(index_elements=list(unique))
        )
    if conn.dialect.name == "sqlite":
        return (
            sqlite.insert(table)
            .values(**values)
            .on_conflict_do_nothing(index_elements=list(unique))
        )
    raise NotImplementedError(f"catalog dialect {conn.dialect.name!r} is not supported")
