"""Turn what a user hands to ``write`` into one schema and a stream of record batches.

Accepted: a ``pyarrow.Table``, a ``pyarrow.RecordBatch``, a ``pyarrow.RecordBatchReader``,
a ``pyarrow.dataset.Dataset``, a pandas ``DataFrame`` (pandas is never imported here; a
frame is recognised only when pandas is already loaded), or any iterable of record
batches (tables are accepted as items too). Nothing is materialised: a reader or a
generator is consumed batch by batch.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from ..errors import InvalidSourceError, SchemaMismatchError
from ._schema import schema_differences

__all__ = ["Source", "open_source"]


@dataclass
class Source:
    """The data's schema (``None`` for an empty iterable) and its batches, in order."""

    schema: pa.Schema | None
    batches: Iterator[pa.RecordBatch]


def open_source(data: Any) -> Source:
    """Recognise ``data``; ``InvalidSourceError`` says what was given instead."""
    if isinstance(data, pa.Table):
        return Source(data.schema, iter(data.to_batches()))
    if isinstance(data, pa.RecordBatch):
        return Source(data.schema, iter([data]))
    if isinstance(data, pa.RecordBatchReader):
        return Source(data.schema, iter(data))
    if isinstance(data, ds.Dataset):
        return Source(data.schema, iter(data.to_batches()))
    if _is_dataframe(data):
        table = pa.Table.from_pandas(data)
        return Source(table.schema, iter(table.to_batches()))
    if isinstance(data, str | bytes | dict) or not isinstance(data, Iterable):
        raise InvalidSourceError(
            f"cannot write {type(data).__name__} as a dataset: give a pyarrow Table, "
            "RecordBatchReader, iterable of RecordBatch, or pandas DataFrame")
    return _from_iterable(iter(data))


def _is_dataframe(data: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(data, pandas.DataFrame)


def _from_iterable(items: Iterator[Any]) -> Source:
    first = next(items, None)
    if first is None:
        return Source(None, iter(()))
    first_batches = _as_batches(first, 0)
    schema = first.schema
    return Source(schema, _checked(schema, first_batches, items))


def _checked(schema: pa.Schema, first: list[pa.RecordBatch], items: Iterator[Any]
             ) -> Iterator[pa.RecordBatch]:
    yield from first
    for index, item in enumerate(items, start=1):
        for batch in _as_batches(item, index):
            yield _conform(batch, schema, index)


def _conform(batch: pa.RecordBatch, schema: pa.Schema, index: int) -> pa.RecordBatch:
    """``batch`` under the first batch's schema; only nullability or metadata may differ."""
    if batch.schema.equals(schema, check_metadata=False):
        return batch
    if batch.schema.names == schema.names and batch.schema.types == schema.types:
        return pa.RecordBatch.from_arrays(batch.columns, schema=schema)
    problems = schema_differences(batch.schema, schema) or [
        f"column order {batch.schema.names} differs from {schema.names}"]
    raise SchemaMismatchError(f"batch {index} does not match the first batch's schema: "
                              f"{'; '.join(problems)}")


def _as_batches(item: Any, index: int) -> list[pa.RecordBatch]:
    if isinstance(item, pa.RecordBatch):
        return [item]
    if isinstance(item, pa.Table):
        batches: list[pa.RecordBatch] = item.to_batches()
        return batches
    raise InvalidSourceError(f"item {index} of the data is a {type(item).__name__}, "
                             "not a pyarrow RecordBatch")
