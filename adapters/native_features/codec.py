"""How the native online stores encode entity keys and values.

An entity key is a string: the integer itself for one ``int64`` join key, a JSON array of
the values otherwise (so ``1`` and ``"1"`` never meet). An entity's value is one JSON
object of all the view's features (timestamps as microseconds, bytes as base64), stored
with its event timestamp as a single record, which is what makes every online write
all-or-nothing per entity.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

__all__ = ["decode_value", "encode_keys", "encode_rows"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_keys(columns: Sequence[Sequence[Any]]) -> list[str]:
    """One key string per row from the join key columns (in the view's entity order)."""
    if len(columns) == 1:
        column = columns[0]
        if column and isinstance(column[0], str):
            return [json.dumps([value]) for value in column]
        return [str(int(value)) for value in column]
    return [json.dumps([v if isinstance(v, str) else int(v) for v in row])
            for row in zip(*columns, strict=True)]


def encode_rows(table: pa.Table, keys: list[str], timestamp: str, features: list[str]
                ) -> list[tuple[str, int, str]]:
    """``(entity key, event time in µs, JSON of the features)`` for every row."""
    entity_keys = encode_keys([table.column(k).to_pylist() for k in keys])
    times = table.column(timestamp).cast(pa.int64()).to_pylist()
    columns = {name: _plain(table.column(name)) for name in features}
    payloads = [json.dumps(dict(zip(columns, values, strict=True)), separators=(",", ":"))
                for values in zip(*columns.values(), strict=True)] if features else []
    return list(zip(entity_keys, times, payloads, strict=True))


def _plain(column: pa.ChunkedArray) -> list[Any]:
    if pa.types.is_timestamp(column.type):
        return list(column.cast(pa.int64()).to_pylist())
    if pa.types.is_binary(column.type):
        return [None if v is None else base64.b64encode(v).decode() for v in column.to_pylist()]
    return list(column.to_pylist())


def decode_value(value: Any, dtype: str) -> Any:
    """A stored value back as Python (only timestamps and bytes need work)."""
    if value is None:
        return None
    if dtype == "timestamp":
        return _EPOCH + timedelta(microseconds=value)
    if dtype == "bytes":
        return base64.b64decode(value)
    return value
