"""Schema rules: a write that must match a schema refuses a mismatch, naming the columns,
before anything is uploaded or committed."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest
from dataset_support import make_table, partial_entries, stored_keys, version_numbers

from dataplane import DataPlane
from dataplane.errors import InvalidSourceError, SchemaMismatchError


def changed(table: pa.Table) -> pa.Table:
    """``table`` without ``x``, with ``day`` as a string, and a new ``extra`` column."""
    return pa.table({"id": table["id"], "group": table["group"],
                     "day": pa.array([str(d) for d in table["day"].to_pylist()]),
                     "extra": pa.array([1.0] * table.num_rows)})


def test_explicit_schema_mismatch_names_the_columns(plane: DataPlane, table: pa.Table) -> None:
    with pytest.raises(SchemaMismatchError) as info:
        plane.datasets.write("events", changed(table), schema=table.schema)
    message = str(info.value)
    assert "missing columns: x (double)" in message
    assert "extra columns: extra (double)" in message
    assert "day (required int32, got string)" in message
    assert isinstance(info.value, InvalidSourceError)
    assert version_numbers(plane, "events") == []
    assert stored_keys(plane, "events") == []
    assert partial_entries(plane) == []


def test_previous_schema_mismatch_changes_nothing(plane: DataPlane, table: pa.Table) -> None:
    plane.datasets.write("events", table)
    keys = stored_keys(plane, "events")
    with pytest.raises(SchemaMismatchError, match=r"schema of dp://default/datasets/events@1"):
        plane.datasets.write("events", changed(table), require_previous_schema=True)
    assert version_numbers(plane, "events") == [1]
    assert stored_keys(plane, "events") == keys
    plane.datasets.write("events", changed(table))  # without the rule, a new schema is fine
    assert plane.datasets.schema("events@2") == changed(table).schema


def test_matching_schemas_are_accepted(plane: DataPlane, table: pa.Table) -> None:
    assert plane.datasets.write("events", table, require_previous_schema=True).version == 1
    shuffled = table.select(["x", "day", "id", "group"])
    version = plane.datasets.write("events", shuffled, schema=table.schema,
                                   require_previous_schema=True)
    assert plane.datasets.schema(f"events@{version.version}") == table.schema  # rule's order
    nullable = pa.schema([f.with_nullable(False) for f in table.schema])
    plane.datasets.write("events", table, schema=nullable)  # nullability is not a mismatch


def test_a_later_batch_with_another_schema_is_refused(plane: DataPlane, table: pa.Table) -> None:
    def drifting() -> Iterator[pa.RecordBatch]:
        yield from table.to_batches(max_chunksize=1_000)
        yield changed(make_table(10)).to_batches()[0]

    with pytest.raises(SchemaMismatchError, match=r"batch 5 .*missing columns: x"):
        plane.datasets.write("events", drifting())
    assert version_numbers(plane, "events") == []
    assert stored_keys(plane, "events") == []
    assert partial_entries(plane) == []


def test_schema_must_be_a_pyarrow_schema(plane: DataPlane, table: pa.Table) -> None:
    with pytest.raises(TypeError, match=r"pyarrow\.Schema"):
        plane.datasets.write("events", table, schema={"id": "int64"})  # type: ignore[arg-type]
