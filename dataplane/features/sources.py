"""A feature view's source, resolved and normalised the same way for every adapter.

A source is a dataplane dataset address — ``datasets/NAME@REF`` or a full
``dp://tenant/datasets/NAME@REF`` — read (verified) through ``plane.datasets``, or a
Parquet file or folder path (relative paths are relative to the config file's folder).

:func:`load_source` returns the *canonical* table every adapter serves from, so both give
the same answers:

1. only the view's columns (join keys, event and created timestamps, features), each
   checked against the definition — a missing column or an uncastable type raises
   :class:`~dataplane.errors.SchemaMismatchError` naming the view, column and source;
2. timestamps as ``timestamp[us, UTC]`` (naive values are taken as UTC), features cast to
   their declared dtypes;
3. rows with a null join key or a null event timestamp dropped (nothing can find them);
4. sorted by (join keys, event timestamp, created timestamp — a null one first), and of
   rows equal in all of these only the one later in the source kept. So among rows of one
   entity with the same event timestamp the later created one wins, then the later one
   in the source: the tie-break of the whole feature store, applied before any adapter
   sees the data. (Rows that differ only in created time are all kept: a point-in-time
   join must fall back to the earlier one when the later was created after the entity
   row's time.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ..errors import NotFoundError, SchemaMismatchError
from .definitions import DTYPES, Definitions, FeatureView

if TYPE_CHECKING:
    from ..facade import DataPlane

__all__ = ["ROW", "TS_TYPE", "SourceRef", "load_source", "resolve_source", "source_schema"]

TS_TYPE = pa.timestamp("us", tz="UTC")
ROW = "__dp_row"
CREATED = "__dp_created"


@dataclass(frozen=True)
class SourceRef:
    """A resolved source: ``identity`` changes whenever its data may have (a dataset
    version's digest; a file's path, size and mtime)."""

    view: str
    address: str
    dataset_ref: str | None
    path: Path | None
    identity: str


def resolve_source(plane: DataPlane, view: FeatureView) -> SourceRef:
    """Which data ``view.source`` names now (an alias is resolved to its version)."""
    source = view.source
    if source.startswith(("datasets/", "dp://")):
        ref = source.removeprefix("datasets/")
        try:
            version = plane.datasets.resolve(ref)
        except NotFoundError as error:
            raise NotFoundError(f"feature view {view.name}: source {source}: {error}"
                                ) from error
        return SourceRef(view.name, source, ref, None, version.digest)
    path = Path(source).expanduser()
    if not path.is_absolute():
        base = plane.config.source.parent if plane.config.source else Path.cwd()
        path = (base / path).resolve()
    if not path.exists():
        raise NotFoundError(f"feature view {view.name}: source {source!r} is neither a "
                            f"dataset address (datasets/NAME@REF) nor an existing path ({path})")
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    stats = ";".join(f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    return SourceRef(view.name, source, None, path, f"path:{stats}")


def _dataset(plane: DataPlane, ref: SourceRef) -> ds.Dataset:
    if ref.dataset_ref is not None:
        return plane.datasets.read(ref.dataset_ref)
    return ds.dataset(str(ref.path), format="parquet")


def source_schema(plane: DataPlane, view: FeatureView, definitions: Definitions) -> pa.Schema:
    """The source's schema, checked against the view (nothing but the schema is read)."""
    ref = resolve_source(plane, view)
    schema = (plane.datasets.schema(ref.dataset_ref) if ref.dataset_ref is not None
              else _dataset(plane, ref).schema)
    check_columns(view, definitions, schema)
    return schema


def check_columns(view: FeatureView, definitions: Definitions, schema: pa.Schema,
                  origin: str | None = None) -> None:
    """Every column the view needs is in ``schema`` with a usable type, or an error that
    names the view, the column and ``origin`` (default: the view's source). A feature
    column of Arrow's null type (all values null) fits every dtype."""
    origin = origin or f"source {view.source}"
    features = set(view.feature_names)
    for name, dtype in _wanted(view, definitions):
        if name not in schema.names:
            raise SchemaMismatchError(
                f"feature view {view.name}: {origin} has no column {name!r} "
                f"(columns: {', '.join(schema.names)})")
        actual = schema.field(name).type
        if not (name in features and pa.types.is_null(actual)):
            _check_type(view, name, actual, dtype, origin)


def _wanted(view: FeatureView, definitions: Definitions) -> list[tuple[str, str]]:
    columns = [*definitions.join_keys(view), (view.timestamp_field, "timestamp")]
    if view.created_timestamp_field:
        columns.append((view.created_timestamp_field, "timestamp"))
    return columns + [(f.name, f.dtype) for f in view.features]


def _check_type(view: FeatureView, name: str, actual: pa.DataType, dtype: str, origin: str
                ) -> None:
    if pa.types.is_dictionary(actual):
        actual = actual.value_type
    ok = {
        "timestamp": pa.types.is_timestamp(actual) or pa.types.is_date(actual),
        "string": pa.types.is_string(actual) or pa.types.is_large_string(actual),
        "bytes": pa.types.is_binary(actual) or pa.types.is_large_binary(actual),
        "bool": pa.types.is_boolean(actual),
        "int64": pa.types.is_integer(actual),
        "int32": pa.types.is_integer(actual),
        "float64": pa.types.is_integer(actual) or pa.types.is_floating(actual),
        "float32": pa.types.is_integer(actual) or pa.types.is_floating(actual),
    }[dtype]
    if not ok or pa.types.is_null(actual):
        raise SchemaMismatchError(f"feature view {view.name}: column {name!r} of {origin} "
                                  f"is {actual}, which cannot hold {dtype}")


def load_source(plane: DataPlane, view: FeatureView, definitions: Definitions,
                ref: SourceRef | None = None) -> pa.Table:
    """The canonical table of ``view`` (see the module docstring for what that means)."""
    ref = ref or resolve_source(plane, view)
    dataset = _dataset(plane, ref)
    check_columns(view, definitions, dataset.schema)
    wanted = _wanted(view, definitions)
    table = dataset.to_table(columns=[name for name, _ in wanted])
    return canonical(table, view, definitions)


def canonical(table: pa.Table, view: FeatureView, definitions: Definitions) -> pa.Table:
    """Cast, drop unfindable rows, sort, and keep each (entity, timestamp)'s winner."""
    columns = {name: cast_column(view, name, table.column(name), dtype)
               for name, dtype in _wanted(view, definitions)}
    keys = [key for key, _ in definitions.join_keys(view)]
    table = pa.table(columns)
    valid = pc.is_valid(table.column(view.timestamp_field))
    for key in keys:
        valid = pc.and_(valid, pc.is_valid(table.column(key)))
    table = table.filter(valid).append_column(ROW, pa.array(np.arange(
        pc.sum(valid.cast(pa.int64())).as_py() or 0, dtype=np.int64)))
    order = [(k, "ascending") for k in [*keys, view.timestamp_field]]
    if view.created_timestamp_field:  # a null created timestamp sorts first: it loses
        created = table.column(view.created_timestamp_field).cast(pa.int64())
        table = table.append_column(CREATED, created.fill_null(np.iinfo(np.int64).min))
        order.append((CREATED, "ascending"))
    table = table.take(pc.sort_indices(table, sort_keys=[*order, (ROW, "ascending")]))
    keep = last_of_groups(table, [name for name, _ in order])
    return table.filter(keep).drop([c for c in (ROW, CREATED) if c in table.column_names])


def last_of_groups(table: pa.Table, columns: list[str]) -> pa.Array:
    """For a table sorted by ``columns``: true on each row that ends a run of equal values."""
    n = table.num_rows
    if n == 0:
        return pa.array([], pa.bool_())
    differs = np.zeros(n - 1, dtype=bool)
    for name in columns:
        column = table.column(name)
        step = pc.not_equal(column.slice(0, n - 1), column.slice(1))
        differs |= step.to_numpy(zero_copy_only=False).astype(bool)
    return pa.array(np.append(differs, True))


def cast_column(view: FeatureView, name: str, column: pa.ChunkedArray, dtype: str
                ) -> pa.ChunkedArray:
    """``column`` as the Arrow type of ``dtype``; timestamps to microseconds in UTC."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = kind.value_type
    if dtype == "timestamp":
        return to_utc_micros(column)
    try:
        return column.cast(DTYPES[dtype], safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise SchemaMismatchError(f"feature view {view.name}: column {name!r} ({kind}) does "
                                  f"not fit {dtype}: {error}") from error


def to_utc_micros(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    """Timestamps or dates as ``timestamp[us, UTC]``; naive timestamps are taken as UTC."""
    kind = column.type
    if pa.types.is_null(kind):
        column = column.cast(pa.timestamp("us"))
        kind = column.type
    if pa.types.is_date(kind):
        column = column.cast(pa.timestamp("us"))
        kind = column.type
    if not pa.types.is_timestamp(kind):
        raise SchemaMismatchError(f"a timestamp column is {kind}")
    if kind.tz is None:
        column = column.cast(pa.timestamp(kind.unit, tz="UTC"))
    result = column.cast(TS_TYPE, safe=False)
    return result if isinstance(result, pa.ChunkedArray) else pa.chunked_array([result])
