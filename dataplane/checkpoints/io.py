"""Parallel chunked checkpoint I/O against any blob store: the writer and the reader.

Write order (:func:`write_arrays` then :func:`write_group`): every chunk and every array's
``zarr.json``, in parallel on a bounded pool; then the groups' ``zarr.json``; then the
manifest, last. Large arrays are one task per chunk; arrays under ``small_bytes`` are
batched, many to a task, so thousands of tiny tensors do not cost thousands of tasks.
Extra memory is bounded by :class:`ByteBudget`: a task waits until the bytes it will
hold in flight fit under ``max_inflight_bytes``.

Every chunk gets a crc32 of its stored bytes at write time; the reader verifies it before
a byte is used, and a mismatch raises :class:`~dataplane.errors.IntegrityError` naming
the key and the chunk.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from ..blob import BlobStore
from ..errors import IntegrityError
from .layout import MANIFEST, ArrayLayout, group_metadata, intermediate_groups, padded_chunk

__all__ = ["ByteBudget", "IOSettings", "read_arrays", "read_region", "write_arrays",
           "write_group", "write_metadata"]


@dataclass(frozen=True)
class IOSettings:
    """Chunking and concurrency; defaults suit local disk and object stores alike."""

    chunk_bytes: int = 16 * 2**20
    workers: int = 8
    max_inflight_bytes: int = 256 * 2**20
    small_bytes: int = 2**20
    batch_bytes: int = 8 * 2**20


class ByteBudget:
    """A counting semaphore over bytes: at most ``limit`` held at once (a single request
    larger than the limit is let through alone)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.held = 0
        self._cond = threading.Condition()

    def acquire(self, amount: int) -> None:
        with self._cond:
            while self.held and self.held + amount > self.limit:
                self._cond.wait()
            self.held += amount

    def release(self, amount: int) -> None:
        with self._cond:
            self.held -= amount
            self._cond.notify_all()


def crc32(data: bytes | memoryview) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def run_parallel(calls: Sequence[Callable[[], None]], workers: int) -> None:
    """Run ``calls`` on a bounded pool; the first error cancels the rest and is raised."""
    if len(calls) <= 1:
        for call in calls:
            call()
        return
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(calls)))) as pool:
        futures = [pool.submit(call) for call in calls]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in done:
            if future.exception() is not None:
                raise future.exception()  # type: ignore[misc]


def _batches(layouts: Iterable[ArrayLayout], settings: IOSettings
             ) -> tuple[list[ArrayLayout], list[list[ArrayLayout]]]:
    """Split into large arrays (one task per chunk) and batches of small arrays."""
    large, batches, current, size = [], [], [], 0
    for layout in layouts:
        nbytes = int(np.prod(layout.shape)) * np.dtype(layout.stored_dtype).itemsize
        if nbytes > settings.small_bytes:
            large.append(layout)
            continue
        current.append(layout)
        size += nbytes
        if size >= settings.batch_bytes or len(current) >= 256:
            batches.append(current)
            current, size = [], 0
    if current:
        batches.append(current)
    return large, batches


# ----------------------------------------------------------------------------- writing
def write_arrays(store: BlobStore, prefix: str, arrays: dict[str, np.ndarray],
                 layouts: dict[str, ArrayLayout], settings: IOSettings, *,
                 origins: dict[str, tuple[int, ...]] | None = None, metadata: bool = True
                 ) -> dict[str, dict[str, int]]:
    """Write every chunk and array ``zarr.json``; returns crc32 per chunk key, per array.

    For arrays split across ranks (:mod:`.distributed`): ``origins[key]`` says that
    ``arrays[key]`` (and its ``layouts[key]``, of the local shape) is the block of the global
    array that starts at that chunk index, so its chunks are named by their global index;
    with ``metadata=False`` no ``zarr.json`` is written (the committing rank writes them).
    """
    checksums: dict[str, dict[str, int]] = {key: {} for key in arrays}
    origins = origins or {}
    lock = threading.Lock()
    budget = ByteBudget(settings.max_inflight_bytes)

    def put_chunk(layout: ArrayLayout, index: tuple[int, ...]) -> None:
        nbytes = int(np.prod(layout.chunks)) * arrays[layout.key].itemsize
        origin = origins.get(layout.key)
        name = tuple(i + o for i, o in zip(index, origin, strict=True)) if origin else index
        budget.acquire(nbytes)
        try:
            chunk = padded_chunk(arrays[layout.key], layout, index)
            view = memoryview(chunk.data).cast("B") if chunk.size else memoryview(b"")
            checksum = crc32(view)
            store.put(f"{prefix}/{layout.chunk_key(name)}", view)
        finally:
            budget.release(nbytes)
        with lock:
            checksums[layout.key][_suffix(layout, name)] = checksum

    def put_metadata(layout: ArrayLayout) -> None:
        if metadata:
            _put_metadata(store, prefix, layout)

    def put_small(batch: list[ArrayLayout]) -> None:
        for layout in batch:
            for index in layout.chunk_indices():
                put_chunk(layout, index)
            put_metadata(layout)

    large, small = _batches(layouts.values(), settings)
    calls: list[Callable[[], None]] = [
        partial(put_chunk, layout, index) for layout in large for index in layout.chunk_indices()
    ]
    calls += [partial(put_metadata, layout) for layout in large]
    calls += [partial(put_small, batch) for batch in small]
    run_parallel(calls, settings.workers)
    return checksums


def write_metadata(store: BlobStore, prefix: str, layouts: Iterable[ArrayLayout],
                   settings: IOSettings) -> None:
    """Every array's ``zarr.json`` (for arrays written with ``metadata=False``)."""
    run_parallel([partial(_put_metadata, store, prefix, layout) for layout in layouts],
                 settings.workers)


def _put_metadata(store: BlobStore, prefix: str, layout: ArrayLayout) -> None:
    store.put(f"{prefix}/{layout.key}/zarr.json", _json_bytes(layout.metadata()))


def write_group(store: BlobStore, prefix: str, attributes: dict[str, Any],
                layouts: list[ArrayLayout], manifest: dict[str, Any]) -> None:
    """The groups' ``zarr.json`` files, then the manifest: the last object written."""
    for group in sorted(intermediate_groups(layouts)):
        store.put(f"{prefix}/{group}/zarr.json",
                  _json_bytes({"zarr_format": 3, "node_type": "group", "attributes": {}}))
    store.put(f"{prefix}/zarr.json", _json_bytes(group_metadata(attributes, layouts)))
    store.put(f"{prefix}/{MANIFEST}", _json_bytes(manifest))


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _suffix(layout: ArrayLayout, index: tuple[int, ...]) -> str:
    return ".".join(map(str, index)) or "0"


# ----------------------------------------------------------------------------- reading
def _fetch_chunk(store: BlobStore, prefix: str, layout: ArrayLayout, index: tuple[int, ...],
                 checksums: dict[str, int], what: str) -> np.ndarray:
    key = f"{prefix}/{layout.chunk_key(index)}"
    data = store.get(key)
    expected = checksums.get(_suffix(layout, index))
    actual = crc32(data)
    if expected is None or actual != expected:
        raise IntegrityError(f"{what}: array {layout.key!r} chunk {_suffix(layout, index)} "
                             f"({store.url.rstrip('/')}/{key})", f"crc32 {expected}",
                             f"crc32 {actual}")
    dtype = np.dtype(layout.stored_dtype)
    if len(data) != int(np.prod(layout.chunks)) * dtype.itemsize:
        raise IntegrityError(f"{what}: array {layout.key!r} chunk {_suffix(layout, index)}",
                             "a full chunk", f"{len(data)} bytes")
    return np.frombuffer(data, dtype=dtype).reshape(layout.chunks)


def read_arrays(store: BlobStore, prefix: str, layouts: list[ArrayLayout],
                checksums: dict[str, dict[str, int]], settings: IOSettings, what: str,
                into: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Read whole arrays (into ``into``'s buffers where given), verifying every chunk."""
    out = {layout.key: (into or {}).get(layout.key) for layout in layouts}
    for layout in layouts:
        if out[layout.key] is None:
            out[layout.key] = np.empty(layout.shape, dtype=np.dtype(layout.stored_dtype))

    def load(layout: ArrayLayout, index: tuple[int, ...]) -> None:
        chunk = _fetch_chunk(store, prefix, layout, index, checksums[layout.key], what)
        region = layout.chunk_region(index)
        target = out[layout.key]
        assert target is not None
        target[region] = chunk[tuple(slice(0, r.stop - r.start) for r in region)]

    def load_small(batch: list[ArrayLayout]) -> None:
        for layout in batch:
            for index in layout.chunk_indices():
                load(layout, index)

    large, small = _batches(layouts, settings)
    calls: list[Callable[[], None]] = [
        partial(load, layout, index) for layout in large for index in layout.chunk_indices()
    ]
    calls += [partial(load_small, batch) for batch in small]
    run_parallel(calls, settings.workers)
    return {key: value for key, value in out.items() if value is not None}


def read_region(store: BlobStore, prefix: str, layout: ArrayLayout, checksums: dict[str, int],
                region: tuple[slice, ...], settings: IOSettings, what: str,
                out: np.ndarray | None = None) -> np.ndarray:
    """The ``region`` of one array (into ``out``, of the region's shape and the stored
    dtype, where given), reading only the chunks that overlap it."""
    shape = tuple(r.stop - r.start for r in region)
    dtype = np.dtype(layout.stored_dtype)
    target = np.empty(shape, dtype=dtype) if out is None else out
    if target.shape != shape or target.dtype != dtype:
        raise ValueError(f"read_region: out has shape {target.shape} dtype {target.dtype}, "
                         f"the region needs {shape} {dtype}")

    def load(index: tuple[int, ...]) -> None:
        chunk = _fetch_chunk(store, prefix, layout, index, checksums, what)
        covered = layout.chunk_region(index)
        lo = [max(c.start, r.start) for c, r in zip(covered, region, strict=True)]
        hi = [min(c.stop, r.stop) for c, r in zip(covered, region, strict=True)]
        src = tuple(slice(a - c.start, b - c.start) for a, b, c in zip(lo, hi, covered,
                                                                       strict=True))
        dst = tuple(slice(a - r.start, b - r.start) for a, b, r in zip(lo, hi, region,
                                                                       strict=True))
        target[dst] = chunk[src]

    run_parallel([partial(load, index) for index in layout.overlapping(region)],
                 settings.workers)
    return target
