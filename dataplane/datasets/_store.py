"""``plane.datasets``: tabular datasets in Arrow/Parquet, as immutable verified versions.

Writing, in this order (:meth:`DatasetStore.write`):

1. recognise the data and find its schema (nothing is read beyond the first batch);
2. check it against the required schemas (``schema=``, the previous version's) and refuse
   a mismatch with :class:`~dataplane.errors.SchemaMismatchError` before anything is
   written or uploaded;
3. stream the batches into local Parquet part files under the node cache's ``partial/``
   folder (bounded memory; see :mod:`dataplane.datasets._writer`);
4. hash, upload and commit them with :meth:`ArtifactStore.commit_files` (the schema,
   partition columns and row count go in the manifest);
5. delete the local part files, whether the commit succeeded or not.

Reading fetches the version's files, verified, into the node cache (once per node; later
reads are cache hits with no blob I/O and no re-hash) and opens them with
``pyarrow.dataset`` under the recorded schema.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from ..artifacts import ArtifactStore, Version
from ..errors import InvalidSourceError, NotFoundError
from ..names import check_alias, check_name
from ._schema import check_schema, deserialize_schema, serialize_schema
from ._shards import check_shard, rebatch, shard_units
from ._source import open_source
from ._writer import PartWriter, WriteOptions, WrittenFiles

__all__ = ["DatasetStore"]


class DatasetStore(ArtifactStore):
    """Versions of tabular datasets; everything else (resolve, fetch, aliases, versions,
    delete) is shared with models through :class:`~dataplane.artifacts.ArtifactStore`.

    ``write_options`` holds the default :class:`WriteOptions` of every write.
    """

    write_options: WriteOptions = WriteOptions()

    # ------------------------------------------------------------------ write
    def write(self, name: str, data: Any, *, partition_by: str | Sequence[str] | None = None,
              metadata: Mapping[str, Any] | None = None, aliases: Sequence[str] = (),
              schema: pa.Schema | None = None, require_previous_schema: bool = False,
              options: WriteOptions | None = None) -> Version:
        """Write ``data`` as the next version of ``name`` and return it.

        ``data``: a ``pyarrow.Table``, ``RecordBatchReader``, iterable of ``RecordBatch``,
        or pandas ``DataFrame``; readers and iterables are streamed, never held whole.
        ``partition_by``: columns to lay the files out by (``col=value/part-N.parquet``).
        ``schema`` / ``require_previous_schema``: refuse data whose columns (names and
        types) differ from that schema / from the latest version's, naming the columns;
        nothing is uploaded then. With no previous version the latter requires nothing.
        An empty input still gives a valid zero-row version with its schema.
        """
        name = check_name(name)
        aliases = [check_alias(alias) for alias in aliases]  # before any data is read
        source = open_source(data)
        required = self._required_schemas(name, schema, require_previous_schema)
        data_schema = source.schema or (required[0][1] if required else None)
        if data_schema is None:
            raise InvalidSourceError("the data holds no batches, so it has no schema: "
                                     "pass schema= to write an empty dataset")
        for what, wanted in required:
            check_schema(data_schema, wanted, what)
        batches = source.batches
        if required and required[0][1].names != data_schema.names:
            order = required[0][1].names  # same columns, another order: follow the rule's
            data_schema = pa.schema([data_schema.field(n) for n in order], data_schema.metadata)
            batches = (batch.select(order) for batch in batches)
        columns = _partition_columns(partition_by, data_schema)
        folder = self.cache.partial_path("dataset")
        folder.mkdir(parents=True)
        try:
            written = _write_parts(folder, data_schema, batches, columns,
                                   options or self.write_options)
            extra = {"format": "parquet", "schema": serialize_schema(data_schema),
                     "partition_by": columns, "rows": written.rows}
            return self.commit_files(name, written.sources, metadata=metadata,
                                     aliases=aliases, extra=extra)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _required_schemas(self, name: str, schema: pa.Schema | None, previous: bool
                          ) -> list[tuple[str, pa.Schema]]:
        required = []
        if schema is not None:
            if not isinstance(schema, pa.Schema):
                raise TypeError(f"schema must be a pyarrow.Schema, got {type(schema).__name__}")
            required.append(("the required schema", schema))
        if previous:
            try:
                latest = self.resolve(f"{name}@latest")
            except NotFoundError:
                return required  # the first version: nothing to match yet
            required.append((f"the schema of {latest.uri}", _recorded(latest)[0]))
        return required

    # ------------------------------------------------------------------- read
    def schema(self, ref: str) -> pa.Schema:
        """The Arrow schema recorded with the version (partition columns included)."""
        return _recorded(self.resolve(ref))[0]

    def read(self, ref: str, *, columns: Sequence[str] | None = None,
             filter: ds.Expression | None = None) -> ds.Dataset:
        """A ``pyarrow.dataset.Dataset`` over the version's verified local files.

        ``columns`` narrows the dataset's schema; ``filter`` (on those columns) is applied
        to every scan. The first read on a node fetches and verifies the files into the
        node cache (``IntegrityError`` names a corrupt object, and nothing corrupt is
        cached); later reads open the cached files directly.
        """
        version = self.resolve(ref)
        full, _ = _recorded(version)
        projected = None if columns is None else _project(full, columns)
        dataset = self._dataset(version, projected)
        if filter is None:
            return dataset
        try:
            filtered = dataset.filter(filter)
            filtered.scanner()  # binds the filter now (no I/O), not at the first scan
            return filtered
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise ValueError(f"cannot apply filter {filter} to {version.uri} with columns "
                             f"{dataset.schema.names}: {error}") from error

    def iter_batches(self, ref: str, *, batch_size: int, columns: Sequence[str] | None = None,
                     filter: ds.Expression | None = None, shard: int = 0,
                     num_shards: int = 1) -> Iterator[pa.RecordBatch]:
        """Batches of exactly ``batch_size`` rows (the last may be shorter) of one shard.

        Units are (file, row group) pairs in manifest order; unit ``i`` goes to shard
        ``i % num_shards``. For every ``num_shards`` the shards are disjoint and together
        hold every row; the same call yields the same batches. ``columns`` and ``filter``
        (which may use any column) apply inside each unit. Arguments are checked and the
        files fetched when called, not on the first ``next()``.
        """
        check_shard(shard, num_shards, batch_size)
        version = self.resolve(ref)
        if columns is not None:
            _project(_recorded(version)[0], columns)
        units = shard_units(self._dataset(version), shard, num_shards)
        scan = units.to_batches(columns=None if columns is None else list(columns),
                                filter=filter, batch_size=batch_size)
        return rebatch(scan, batch_size)

    def _dataset(self, version: Version, schema: pa.Schema | None = None
                 ) -> ds.FileSystemDataset:
        full, partition_by = _recorded(version)
        folder = self._local_folder(version)
        paths = [str(folder / entry.path) for entry in version.manifest.files]
        options: dict[str, Any] = {}
        if partition_by:
            fields = pa.schema([_plain(full.field(c)) for c in partition_by])
            options = {"partitioning": ds.partitioning(fields, flavor="hive"),
                       "partition_base_dir": str(folder)}
        dataset: ds.FileSystemDataset = ds.dataset(paths, format="parquet",
                                                   schema=schema or full, **options)
        return dataset

    def _local_folder(self, version: Version) -> Path:
        """The version's cache view, filled (verified) on first use; like ``fetch`` without
        resolving the ref a second time."""
        view = self.cache.view_path(version.digest)
        if not view.is_dir():
            self._fill_cache(version, version.manifest.files)
            self._build_view(version.manifest.files, view)
        return view


def _write_parts(folder: Path, schema: pa.Schema, batches: Iterator[pa.RecordBatch],
                 partition_by: list[str], options: WriteOptions) -> WrittenFiles:
    writer = PartWriter(folder, schema, partition_by, options)
    try:
        for batch in batches:
            writer.add(batch)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise


def _recorded(version: Version) -> tuple[pa.Schema, list[str]]:
    """The schema and partition columns ``write`` recorded with the version."""
    extra = version.manifest.extra
    if extra.get("format") != "parquet" or "schema" not in extra:
        raise InvalidSourceError(f"{version.uri} is not a Parquet dataset written by "
                                 "datasets.write (its manifest records no schema)")
    return deserialize_schema(extra["schema"]), list(extra.get("partition_by", []))


def _plain(field: pa.Field) -> pa.Field:
    """A dictionary field as its value type: hive partitioning parses plain values, and
    the dataset's schema turns them back into a dictionary column."""
    if pa.types.is_dictionary(field.type):
        return field.with_type(field.type.value_type)
    return field


def _project(schema: pa.Schema, columns: Sequence[str]) -> pa.Schema:
    if isinstance(columns, str):
        raise TypeError("columns must be a list of column names, not a string")
    unknown = [c for c in columns if c not in schema.names]
    if unknown:
        raise ValueError(f"unknown columns {unknown}; the dataset has {schema.names}")
    return pa.schema([schema.field(c) for c in columns], schema.metadata)


def _partition_columns(partition_by: str | Sequence[str] | None, schema: pa.Schema
                       ) -> list[str]:
    columns = [partition_by] if isinstance(partition_by, str) else list(partition_by or [])
    unknown = [c for c in columns if c not in schema.names]
    if unknown:
        raise InvalidSourceError(f"partition_by names columns the data lacks: {unknown} "
                                 f"(columns: {schema.names})")
    if len(set(columns)) != len(columns):
        raise InvalidSourceError(f"partition_by lists a column twice: {columns}")
    if columns and len(columns) == len(schema.names):
        raise InvalidSourceError("partition_by cannot take every column; "
                                 "at least one must remain in the files")
    unsupported = [f"{c} ({schema.field(c).type})" for c in columns
                   if not _partitionable(schema.field(c).type)]
    if unsupported:
        raise InvalidSourceError(
            f"cannot partition by {', '.join(unsupported)}: partition columns must be "
            "strings, integers, booleans, dates or timestamps (values become folder names)"
        )
    return columns


def _partitionable(kind: pa.DataType) -> bool:
    """Types whose values survive a round trip through a hive folder name."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind)
                or pa.types.is_integer(kind) or pa.types.is_boolean(kind)
                or pa.types.is_date(kind) or pa.types.is_timestamp(kind))
