"""Streaming Parquet writer: record batches in, local part files out, memory bounded.

Call order: :meth:`PartWriter.add` for every batch, then :meth:`PartWriter.finish` (which
returns the files) or, on any error, :meth:`PartWriter.abort`. The caller owns the folder
and removes it afterwards.

Layout: ``part-00000.parquet``, ``part-00001.parquet``, ... or, with ``partition_by``,
hive-style ``col=value/part-00000.parquet`` (values escaped exactly as
``pyarrow.dataset``'s hive partitioning expects; nulls as ``__HIVE_DEFAULT_PARTITION__``;
partition columns are not stored inside the files).

Memory: incoming batches are buffered per partition and written as one row group once a
buffer holds ``max_rows_per_group`` rows or ``max_bytes_per_group`` bytes; when all
buffers together pass ``max_buffered_bytes`` the largest is written out. So what the
writer holds is about ``max_buffered_bytes`` of Arrow data plus one row group being
encoded, whatever the dataset's size. A part file is closed and a new one started once it
passes ``max_bytes_per_file`` (or ``max_rows_per_file``). At most
``max_open_partitions`` part files are open at once: opening another closes the least
recently used one, so data whose partition values are spread over the whole input ends up
in more, smaller files. More than ``max_partitions`` distinct values is refused (almost
always a mistake, such as partitioning on an id column).
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ..errors import InvalidSourceError

__all__ = ["PartWriter", "WriteOptions", "WrittenFiles"]

MiB = 2**20


@dataclass(frozen=True)
class WriteOptions:
    """How ``DatasetStore.write`` lays data out and how much it may buffer.

    - ``max_rows_per_group``: rows per Parquet row group (pyarrow's default, 1 Mi);
    - ``max_bytes_per_group``: Arrow bytes per row group; wide rows give fewer rows;
    - ``max_rows_per_file`` / ``max_bytes_per_file``: start a new part file once the
      current one holds that many rows / Parquet bytes (checked after each row group,
      so files end up slightly larger than ``max_bytes_per_file``);
    - ``max_buffered_bytes``: Arrow bytes buffered over all partitions together;
    - ``max_open_partitions``: part files open at once (least recently used closes);
    - ``max_partitions``: distinct partition values allowed in one write;
    - ``compression``: Parquet codec (pyarrow's default, snappy).
    """

    max_rows_per_group: int = 1024 * 1024
    max_bytes_per_group: int = 64 * MiB
    max_rows_per_file: int | None = None
    max_bytes_per_file: int = 128 * MiB
    max_buffered_bytes: int = 64 * MiB
    max_open_partitions: int = 64
    max_partitions: int = 1024
    compression: str = "snappy"

    def __post_init__(self) -> None:
        for name in ("max_rows_per_group", "max_bytes_per_group", "max_bytes_per_file",
                     "max_buffered_bytes", "max_open_partitions", "max_partitions"):
            if getattr(self, name) < 1:
                raise ValueError(f"WriteOptions.{name} must be at least 1")
        if self.max_rows_per_file is not None and self.max_rows_per_file < 1:
            raise ValueError("WriteOptions.max_rows_per_file must be at least 1 or None")


@dataclass
class WrittenFiles:
    """What a finished writer produced: ``(path in version, local file)`` and row counts."""

    sources: list[tuple[str, Path]]
    rows: int


class _Part:
    """One open Parquet file."""

    def __init__(self, path: Path, schema: pa.Schema, options: WriteOptions):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.sink = pa.OSFile(str(path), "wb")
        self.writer = pq.ParquetWriter(self.sink, schema, compression=options.compression)
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        self.writer.write_table(table, row_group_size=max(1, table.num_rows))
        self.rows += table.num_rows

    @property
    def size(self) -> int:
        return int(self.sink.tell())

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            self.sink.close()


@dataclass
class _Partition:
    folder: str
    batches: list[pa.RecordBatch] = field(default_factory=list)
    rows: int = 0
    nbytes: int = 0
    files: int = 0


class PartWriter:
    """Writes batches of ``schema`` into part files under ``root``."""

    def __init__(self, root: Path, schema: pa.Schema, partition_by: Sequence[str],
                 options: WriteOptions):
        self.root = root
        self.options = options
        self.partition_by = list(partition_by)
        self.data_names = [n for n in schema.names if n not in self.partition_by]
        self.file_schema = pa.schema([schema.field(n) for n in self.data_names],
                                     metadata=schema.metadata)
        self._partitioning = ds.partitioning(
            pa.schema([schema.field(c) for c in self.partition_by]), flavor="hive")
        self._types = [schema.field(c).type for c in self.partition_by]
        self._folders: dict[tuple[Any, ...], str] = {}
        self._partitions: dict[str, _Partition] = {}  # by folder ("" when unpartitioned)
        self._open: OrderedDict[str, _Part] = OrderedDict()
        self._buffered = 0
        self.sources: list[tuple[str, Path]] = []
        self.rows = 0

    # ------------------------------------------------------------------ input
    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        for folder, piece in self._split(batch):
            self._buffer(folder, piece)
        while self._buffered > self.options.max_buffered_bytes:
            self._flush(max(self._partitions, key=lambda k: self._partitions[k].nbytes))

    def finish(self) -> WrittenFiles:
        """Write every buffer, close every file, and return them (one empty file if no rows)."""
        for key in list(self._partitions):
            self._flush(key)
        for key in list(self._open):
            self._open.pop(key).close()
        if not self.sources:
            self._start(self._partition(""), "")
            self._open.pop("").close()
        return WrittenFiles(sorted(self.sources), self.rows)

    def abort(self) -> None:
        """Close every open file, ignoring errors (the caller deletes the folder)."""
        for part in self._open.values():
            with contextlib.suppress(Exception):  # best effort on the error path
                part.close()
        self._open.clear()

    # ------------------------------------------------------------ partitioning
    def _split(self, batch: pa.RecordBatch) -> list[tuple[str, pa.RecordBatch]]:
        """``(partition folder, rows of that partition without the partition columns)``.

        Rows are grouped by a dense group id (first-seen order) with Arrow's stable
        sort, so rows keep their input order inside each partition.
        """
        data = batch.select(self.data_names)
        if not self.partition_by:
            return [("", data)]
        encoded = [pc.dictionary_encode(batch.column(c), null_encoding="encode")
                   for c in self.partition_by]
        groups, values = _group_ids(encoded)
        folders = [self._folder(key) for key in values]
        if len(folders) == 1:
            return [(folders[0], data)]
        order = pc.array_sort_indices(groups)
        ends = np.cumsum(np.bincount(groups.to_numpy(), minlength=len(folders)))
        starts = np.concatenate(([0], ends[:-1]))
        # One take per partition: each piece owns its buffers, so a buffered piece
        # never keeps the rest of the batch alive.
        return [(folder, data.take(order.slice(int(s), int(e - s))))
                for folder, s, e in zip(folders, starts, ends, strict=True)]

    def _partition(self, key: str) -> _Partition:
        partition = self._partitions.get(key)
        if partition is None:
            if len(self._partitions) >= self.options.max_partitions:
                raise InvalidSourceError(
                    f"partition_by={self.partition_by} gives more than "
                    f"{self.options.max_partitions} distinct values (WriteOptions.max_partitions)")
            partition = self._partitions[key] = _Partition(key)
        return partition

    def _folder(self, values: tuple[Any, ...]) -> str:
        """The hive folder of one combination of partition values, as pyarrow formats it."""
        folder = self._folders.get(values)
        if folder is None:
            folder = self._folders[values] = self._format(values)
        return folder

    def _format(self, values: tuple[Any, ...]) -> str:
        terms = [pc.field(c) == pa.scalar(v, t)
                 for c, v, t in zip(self.partition_by, values, self._types, strict=True)]
        expression = terms[0]
        for term in terms[1:]:
            expression = expression & term
        folder: str = self._partitioning.format(expression)[0]
        return folder

    # ----------------------------------------------------------------- output
    def _buffer(self, key: str, piece: pa.RecordBatch) -> None:
        partition = self._partition(key)
        partition.batches.append(piece)
        partition.rows += piece.num_rows
        partition.nbytes += piece.nbytes
        self._buffered += piece.nbytes
        if (partition.rows >= self.options.max_rows_per_group
                or partition.nbytes >= self.options.max_bytes_per_group):
            self._flush(key, whole_groups_only=True)

    def _flush(self, key: str, whole_groups_only: bool = False) -> None:
        """Write ``key``'s buffer as row groups (keeping a short tail when asked)."""
        partition = self._partitions[key]
        table = pa.Table.from_batches(partition.batches, self.file_schema)
        group = self._group_rows(table)
        keep = table.num_rows % group if whole_groups_only else 0
        self._buffered -= partition.nbytes
        rest = table.slice(table.num_rows - keep)
        partition.batches = rest.to_batches() if keep else []
        partition.rows, partition.nbytes = keep, rest.nbytes if keep else 0
        self._buffered += partition.nbytes
        self._write(key, partition, table.slice(0, table.num_rows - keep), group)

    def _group_rows(self, table: pa.Table) -> int:
        """Rows per row group: ``max_rows_per_group``, fewer for wide rows (byte bound)."""
        rows = self.options.max_rows_per_group
        if table.num_rows and table.nbytes >= self.options.max_bytes_per_group:
            width = table.nbytes / table.num_rows
            rows = min(rows, max(1, int(self.options.max_bytes_per_group / width)))
        return rows

    def _write(self, key: str, partition: _Partition, table: pa.Table, group: int) -> None:
        limit = self.options.max_rows_per_file
        while table.num_rows:
            part = self._open.get(key) or self._start(partition, key)
            self._open.move_to_end(key)
            take = group if limit is None else min(group, limit - part.rows)
            rows = table.slice(0, take)
            part.write(rows)
            self.rows += rows.num_rows
            table = table.slice(take)
            if part.size >= self.options.max_bytes_per_file or (
                    limit is not None and part.rows >= limit):
                self._open.pop(key).close()

    def _start(self, partition: _Partition, key: str) -> _Part:
        if len(self._open) >= self.options.max_open_partitions:
            self._open.popitem(last=False)[1].close()
        name = f"part-{partition.files:05d}.parquet"
        partition.files += 1
        path = f"{partition.folder}/{name}" if partition.folder else name
        local = self.root / path
        part = self._open[key] = _Part(local, self.file_schema, self.options)
        self.sources.append((path, local))
        return part


def _group_ids(encoded: list[pa.DictionaryArray]) -> tuple[pa.Array, list[tuple[Any, ...]]]:
    """Dense group ids (0.., first-seen order) of each row over several dictionary-encoded
    columns, and each group's tuple of values."""
    if len(encoded) == 1:
        return encoded[0].indices, [(v,) for v in encoded[0].dictionary.to_pylist()]
    sizes = [max(1, len(column.dictionary)) for column in encoded]
    if math.prod(sizes) >= 2**62:
        raise InvalidSourceError("too many combinations of partition values")
    key = np.zeros(len(encoded[0]), dtype=np.int64)
    for column, size in zip(encoded, sizes, strict=True):
        key = key * size + column.indices.to_numpy(zero_copy_only=False)
    combined = pc.dictionary_encode(pa.array(key))
    values = []
    for code in combined.dictionary.to_pylist():
        digits = []
        for size in reversed(sizes):
            code, digit = divmod(code, size)
            digits.append(digit)
        values.append(tuple(column.dictionary[d].as_py()
                            for column, d in zip(encoded, reversed(digits), strict=True)))
    return combined.indices, values
