"""The native offline store: point-in-time joins and latest-per-entity with pyarrow + numpy.

Both functions take a view's *canonical* source table (see
:mod:`dataplane.features.sources`: sorted by join keys then event timestamp, one row per
entity and timestamp, timestamps ``timestamp[us, UTC]``).

The join is one vectorised as-of merge: source and entity rows are sorted together by
(entity code, timestamp, source-before-entity) and a running maximum carries the position
of the last source row to every entity row after it. That is O((n + m) log(n + m)) with no
Python loop over rows; a created-timestamp cut-off steps back within an entity only for
the few rows it affects.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataplane.features.definitions import FeatureView
from dataplane.features.sources import last_of_groups

__all__ = ["asof_indices", "join_view", "latest_rows"]


def latest_rows(source: pa.Table, view: FeatureView, keys: list[str], start_us: int,
                end_us: int) -> pa.Table:
    """Each entity's latest row with ``start <= event time <= end`` (both inclusive)."""
    ts = source.column(view.timestamp_field).cast(pa.int64())
    window = source.filter(pc.and_(pc.greater_equal(ts, start_us), pc.less_equal(ts, end_us)))
    return window.filter(last_of_groups(window, keys))


def join_view(source: pa.Table, view: FeatureView, keys: list[str], features: list[str],
              entities: pa.Table, timestamp_column: str) -> list[pa.ChunkedArray]:
    """The ``features`` of ``view`` for every entity row, point-in-time correct."""
    entity_ts = _micros(entities.column(timestamp_column))
    source_ts = _micros(source.column(view.timestamp_field))
    source_codes, entity_codes = _codes([source.column(k) for k in keys],
                                        [entities.column(k) for k in keys])
    index = asof_indices(source_codes, source_ts, entity_codes, entity_ts)
    if view.created_timestamp_field:
        created = _micros(source.column(view.created_timestamp_field), fill=np.iinfo(np.int64).max)
        index = _created_cutoff(index, source_codes, created, entity_ts)
    if view.ttl is not None:
        ttl_us = view.ttl // timedelta(microseconds=1)
        hit = index >= 0
        fresh = source_ts[np.where(hit, index, 0)] >= entity_ts - ttl_us
        index = np.where(hit & fresh, index, -1)
    take = pa.array(index, mask=index < 0)
    return [source.column(name).take(take) for name in features]


def asof_indices(source_codes: np.ndarray, source_ts: np.ndarray, entity_codes: np.ndarray,
                 entity_ts: np.ndarray) -> np.ndarray:
    """For each entity row, the index of the latest source row of the same entity with a
    timestamp at or before it (``-1``: none). Among source rows equal in (code, timestamp)
    the one with the highest index wins (canonical sources sort them by created time)."""
    n = len(source_codes)
    codes = np.concatenate([source_codes, entity_codes])
    ts = np.concatenate([source_ts, entity_ts])
    kind = np.concatenate([np.zeros(n, np.int8), np.ones(len(entity_codes), np.int8)])
    order = np.lexsort((kind, ts, codes))
    positions = np.where(order < n, np.arange(len(order)), -1)
    last = np.maximum.accumulate(positions) if len(positions) else positions
    candidate = np.where(last >= 0, order[np.maximum(last, 0)], -1)
    entity_at = order >= n
    found = candidate[entity_at]
    same = (found >= 0) & (codes[np.maximum(found, 0)] == codes[order[entity_at]])
    result = np.full(len(entity_codes), -1, np.int64)
    result[order[entity_at] - n] = np.where(same, found, -1)
    return result


def _created_cutoff(index: np.ndarray, codes: np.ndarray, created: np.ndarray,
                    entity_ts: np.ndarray) -> np.ndarray:
    """Step back, within the same entity, past rows created after the entity row's time
    (a null created timestamp never counts as created in time)."""
    index = index.copy()
    bad = (index >= 0) & (created[np.maximum(index, 0)] > entity_ts)
    while bad.any():
        rows = np.nonzero(bad)[0]
        previous = index[rows] - 1
        same = (previous >= 0) & (codes[np.maximum(previous, 0)] == codes[index[rows]])
        index[rows] = np.where(same, previous, -1)
        bad[rows] = (index[rows] >= 0) & (created[np.maximum(index[rows], 0)]
                                          > entity_ts[rows])
    return index


def _micros(column: pa.ChunkedArray, fill: int | None = None) -> np.ndarray:
    values = column.cast(pa.int64())
    if fill is not None:
        values = values.fill_null(fill)
    return np.asarray(values.to_numpy(), dtype=np.int64)


def _codes(source: list[pa.ChunkedArray], entities: list[pa.ChunkedArray]
           ) -> tuple[np.ndarray, np.ndarray]:
    """One int64 code per row for the (possibly composite) join key, equal across the
    two tables exactly when the keys are equal."""
    n = len(source[0])
    combined: np.ndarray | None = None
    for src, ent in zip(source, entities, strict=True):
        codes = _column_codes(src, ent)
        if len(source) > 1:  # dense codes (< rows), so combining them cannot overflow
            codes = np.unique(codes, return_inverse=True)[1].astype(np.int64)
        if combined is None:
            combined = codes
        else:
            width = int(codes.max()) + 1 if len(codes) else 1
            _, combined = np.unique(combined * width + codes, return_inverse=True)
    assert combined is not None
    combined = combined.astype(np.int64, copy=False)
    return combined[:n], combined[n:]


def _column_codes(source: pa.ChunkedArray, entities: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_integer(source.type):
        parts = [source.cast(pa.int64()), entities.cast(pa.int64())]
        both = np.concatenate([p.fill_null(0).to_numpy() for p in parts]).astype(np.int64)
        nulls = np.concatenate([p.is_null().to_numpy(zero_copy_only=False) for p in parts])
        if not nulls.any() and len(both) and both.min() >= 0 and both.max() < 2**62:
            return both
        codes = np.unique(both, return_inverse=True)[1].astype(np.int64)
        # a null key matches nothing: source nulls and entity nulls get codes of their own
        top = int(codes.max()) + 1 if len(codes) else 0
        side = np.arange(len(both)) >= len(source)
        return np.where(nulls, np.where(side, top, top + 1), codes)
    chunks = [*source.cast(pa.string()).chunks, *entities.cast(pa.string()).chunks]
    encoded = pa.chunked_array(chunks, pa.string()).dictionary_encode()
    return np.concatenate([c.indices.to_numpy() for c in encoded.chunks]
                          or [np.empty(0)]).astype(np.int64)
