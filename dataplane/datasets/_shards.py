"""Sharding a dataset version for data-parallel ranks, and exact-size re-batching.

A version's *units* are its (file, row group) pairs, files in manifest path order and row
groups in file order. Unit ``i`` belongs to shard ``i % num_shards``. So for a given
version the assignment depends on nothing but ``num_shards``: shards are disjoint, their
union is the whole version, and the same call yields the same batches in the same order
(filters and projections are applied inside each unit, never to decide ownership).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.dataset as ds

__all__ = ["check_shard", "rebatch", "shard_units"]


def check_shard(shard: int, num_shards: int, batch_size: int) -> None:
    """``ValueError`` unless ``0 <= shard < num_shards`` and ``batch_size >= 1``."""
    for label, value in (("shard", shard), ("num_shards", num_shards),
                         ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{label} must be an int, got {value!r}")
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, got {num_shards}")
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, {num_shards}), got {shard}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def shard_units(dataset: ds.FileSystemDataset, shard: int, num_shards: int
                ) -> ds.FileSystemDataset:
    """The dataset restricted to the row-group units of ``shard`` (order kept)."""
    units: list[ds.ParquetFileFragment] = []
    for fragment in dataset.get_fragments():
        units.extend(fragment.split_by_row_group())
    mine = units[shard::num_shards]
    return ds.FileSystemDataset(mine, dataset.schema, dataset.format, dataset.filesystem)


def rebatch(batches: Iterable[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """The same rows in batches of exactly ``size`` rows (the last one may be shorter).

    Whole slices are passed on without copying; only batches that straddle a boundary
    are concatenated.
    """
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        while batch.num_rows:
            if not pending and batch.num_rows >= size:
                yield batch.slice(0, size)
                batch = batch.slice(size)
                continue
            piece = batch.slice(0, size - count)
            pending.append(piece)
            count += piece.num_rows
            batch = batch.slice(piece.num_rows)
            if count == size:
                yield pa.concat_batches(pending)
                pending, count = [], 0
    if pending:
        yield pa.concat_batches(pending)
