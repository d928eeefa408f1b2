"""Moving the catalog itself to another database (SQLite -> PostgreSQL, typically).

:func:`move_catalog`, in this order:

1. open the target (creating the schema at the current version) and refuse it unless
   every table is empty, so nothing there is ever overwritten;
2. in one write transaction on the source — which keeps writers out, so the copy is one
   consistent snapshot — copy every row of every table, parents before children, keeping
   ids, then move the target's id sequences past the copied ids (PostgreSQL);
3. verify: per table, the row count and a SHA-256 over the rows (sorted by key, values
   normalized: timestamps as UTC ISO text, JSON canonical) must be equal on both sides;
4. switch the config file's ``[catalog] url`` to the target (the old file is kept as
   ``<file>.bak``), only after the verification passed.

Stop writers (training jobs, publishers) before moving: a process that keeps the old
catalog open keeps writing there after the switch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, func, insert, select, text

from ..catalog import open_catalog
from ..catalog.engine import CatalogDatabase, mask_url
from ..catalog.schema import metadata, schema_info
from ..errors import ConflictError, IntegrityError

if TYPE_CHECKING:
    from ..facade import DataPlane

__all__ = ["CatalogMoveReport", "move_catalog", "table_digest"]

_BATCH = 1000
_CATALOG_HEADER = re.compile(r"^\s*\[catalog\]\s*(#.*)?$")
_TABLE_HEADER = re.compile(r"^\s*\[")
_URL_LINE = re.compile(r"^\s*url\s*=")


@dataclass
class CatalogMoveReport:
    """Rows copied per table (each verified by count and digest) and the switched file."""

    url: str
    rows: dict[str, int] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    config_file: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "rows": self.rows, "digests": self.digests,
                "config_file": self.config_file, "verified": True}


def move_catalog(plane: DataPlane, url: str, *, switch: bool = True) -> CatalogMoveReport:
    """Copy the plane's catalog to ``url``, verify it, and point the config at it."""
    source = plane.catalog.database
    target_catalog = open_catalog(url)
    try:
        target = target_catalog.database
        _require_empty(target)
        report = CatalogMoveReport(mask_url(url))
        with source.write() as src:
            _lock_source(src)
            with target.write() as dst:
                for table in _tables():
                    report.rows[table.name] = _copy_table(src, dst, table)
                _advance_sequences(dst)
            _verify(src, target, report)
    finally:
        target_catalog.close()
    if switch:
        report.config_file = _switch_config(plane, url)
    return report


def _tables() -> list[Table]:
    return [t for t in metadata.sorted_tables if t is not schema_info]


def _require_empty(db: CatalogDatabase) -> None:
    with db.read() as conn:
        busy = [t.name for t in _tables()
                if conn.execute(select(func.count()).select_from(t)).scalar()]
    if busy:
        raise ConflictError(f"the target catalog {db.url} is not empty (rows in "
                            f"{', '.join(busy)}); move the catalog into an empty database")


def _lock_source(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":  # SQLite's BEGIN IMMEDIATE already keeps writers out
        names = ", ".join(t.name for t in _tables())
        conn.execute(text(f"LOCK TABLE {names} IN SHARE MODE"))


def _copy_table(src: Connection, dst: Connection, table: Table) -> int:
    count = 0
    for batch in _batches(src, table):
        dst.execute(insert(table), batch)
        count += len(batch)
    return count


def _batches(conn: Connection, table: Table) -> Iterator[list[dict[str, Any]]]:
    result = conn.execute(select(table).order_by(*table.primary_key.columns))
    while rows := result.fetchmany(_BATCH):
        yield [dict(row._mapping) for row in rows]


def _advance_sequences(conn: Connection) -> None:
    if conn.dialect.name != "postgresql":
        return
    for table in _tables():
        column = table.c.get("id")
        if column is None or not column.autoincrement or str(column.type) != "INTEGER":
            continue
        conn.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {table.name}), 1), "
            f"(SELECT MAX(id) FROM {table.name}) IS NOT NULL)"))


def _verify(src: Connection, target: CatalogDatabase, report: CatalogMoveReport) -> None:
    with target.read() as dst:
        for table in _tables():
            mine, theirs = table_digest(src, table), table_digest(dst, table)
            if mine != theirs:
                raise IntegrityError(f"catalog table {table.name} copied to {target.url}",
                                     f"{mine[0]} rows, {mine[1]}", f"{theirs[0]} rows, {theirs[1]}")
            report.digests[table.name] = mine[1]


def table_digest(conn: Connection, table: Table) -> tuple[int, str]:
    """``(rows, "sha256:...")`` over the table's rows in key order, values normalized."""
    digest = hashlib.sha256()
    count = 0
    for batch in _batches(conn, table):
        for row in batch:
            digest.update(json.dumps({k: _normal(v) for k, v in sorted(row.items())},
                                     sort_keys=True, separators=(",", ":")).encode())
            count += 1
    return count, "sha256:" + digest.hexdigest()


def _normal(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _switch_config(plane: DataPlane, url: str) -> str | None:
    """Point the config file's ``[catalog] url`` at ``url``; ``None`` without a file."""
    path = plane.config.source
    if path is None:
        return None
    original = path.read_text()
    updated = _with_catalog_url(original, url)
    if tomllib.loads(updated).get("catalog", {}).get("url") != url:
        raise ConflictError(f"{path}: could not rewrite [catalog] url safely; set it to "
                            f"{mask_url(url)} by hand")
    Path(f"{path}.bak").write_text(original)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(updated)
    os.replace(partial, path)
    return str(path)


def _with_catalog_url(original: str, url: str) -> str:
    line = f"url = {json.dumps(url)}"
    lines = original.splitlines()
    start = next((i for i, text_ in enumerate(lines) if _CATALOG_HEADER.match(text_)), None)
    if start is None:
        return f"[catalog]\n{line}\n\n{original}"
    end = next((i for i in range(start + 1, len(lines)) if _TABLE_HEADER.match(lines[i])),
               len(lines))
    for i in range(start + 1, end):
        if _URL_LINE.match(lines[i]):
            lines[i] = line
            return "\n".join(lines) + "\n"
    lines.insert(start + 1, line)
    return "\n".join(lines) + "\n"
