"""Parallel chunked checkpoint I/O against any blob store: the writer and the reader.

Write order: :func:`write_arrays` puts every chunk and every array's ``zarr.json`` into a
:class:`~.placement.Sink` (a folder of objects, or one archive: :mod:`.placement`), in
parallel on a bounded pool; :func:`commit_save` adds the groups' ``zarr.json``, commits
the sink (the durability barrier: on local disk one ``syncfs`` or one archive fsync, not
an fsync pair per object) and then writes the manifest, last, with the store's own
durable ``put``. Large arrays are one task per chunk; arrays under ``small_bytes`` are
batched, many to a task, so thousands of tiny tensors do not cost thousands of tasks.
Extra memory is bounded by :class:`ByteBudget`: a task waits until the bytes it will
hold in flight fit under ``max_inflight_bytes``.

Every chunk gets a crc32 of its stored bytes at write time; the reader verifies it before
a byte is used, and a mismatch raises :class:`~dataplane.errors.IntegrityError` naming
the key and the chunk. The reader reads each chunk straight into the destination array
where the chunk is a contiguous part of it (``BlobStore.get_into``, or one reader of the
archive held open for the whole load: ``BlobStore.open_reader``), so a load holds no
second copy of the state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from ..blob import BlobStore
from ..checksums import crc32
from ..errors import IntegrityError
from .layout import MANIFEST, ArrayLayout, chunk_suffix, compact_json, padded_chunk
from .placement import ChunkSource, OpenChunkSource, Sink

__all__ = ["ByteBudget", "IOSettings", "commit_save", "read_arrays", "read_region",
           "write_arrays", "write_metadata"]


@dataclass(frozen=True)
class IOSettings:
    """Chunking and concurrency; defaults suit local disk and object stores alike."""

    chunk_bytes: int = 16 * 2**20
    workers: int | None = None  # None: the backend's ``capabilities.request_concurrency``
    max_inflight_bytes: int = 256 * 2**20
    small_bytes: int = 2**20
    batch_bytes: int = 8 * 2**20
    pack: bool = True  # a single-process save is one archive (False: an object per key)


def workers_for(settings: IOSettings, store: BlobStore) -> int:
    """The pool size for ``store``: the setting, or the backend's suggested concurrency."""
    return settings.workers or store.capabilities.request_concurrency


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


def run_parallel(calls: Sequence[Callable[[], object]], workers: int) -> None:
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
        if size >= settings.batch_bytes or len(current) >= 32:
            batches.append(current)
            current, size = [], 0
    if current:
        batches.append(current)
    return large, batches


# ----------------------------------------------------------------------------- writing
def write_arrays(sink: Sink, arrays: dict[str, np.ndarray], layouts: dict[str, ArrayLayout],
                 settings: IOSettings, workers: int, *,
                 origins: dict[str, tuple[int, ...]] | None = None, metadata: bool = True
                 ) -> dict[str, dict[str, int]]:
    """Put every chunk and array ``zarr.json`` into ``sink`` (the caller commits it);
    returns the crc32 of every chunk, per array, per chunk suffix.

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
        nbytes = layout.chunk_nbytes
        origin = origins.get(layout.key)
        name = tuple(i + o for i, o in zip(index, origin, strict=True)) if origin else index
        budget.acquire(nbytes)
        try:
            chunk = padded_chunk(arrays[layout.key], layout, index)
            view = memoryview(chunk.data).cast("B") if chunk.size else memoryview(b"")
            checksum = sink.put(layout.chunk_key(name), view)
        finally:
            budget.release(nbytes)
        with lock:
            checksums[layout.key][chunk_suffix(name)] = checksum

    def put_metadata(layout: ArrayLayout) -> None:
        if metadata:
            sink.put(*array_metadata_entry(layout))

    def put_small(group: list[ArrayLayout]) -> None:
        for layout in group:
            for index in layout.chunk_indices():
                put_chunk(layout, index)
            put_metadata(layout)

    large, small = _batches(layouts.values(), settings)
    calls: list[Callable[[], None]] = [
        partial(put_chunk, layout, index) for layout in large for index in layout.chunk_indices()
    ]
    calls += [partial(put_metadata, layout) for layout in large]
    calls += [partial(put_small, group) for group in small]
    run_parallel(calls, workers)
    return checksums


def write_metadata(sink: Sink, layouts: Iterable[ArrayLayout], workers: int) -> None:
    """Every array's ``zarr.json`` (for arrays written with ``metadata=False``)."""
    run_parallel([partial(sink.put, *array_metadata_entry(layout))
                  for layout in layouts], workers)


def array_metadata_entry(layout: ArrayLayout) -> tuple[str, bytes]:
    """``(name, bytes)`` of an array's ``zarr.json``."""
    return f"{layout.key}/zarr.json", layout.metadata_bytes


def commit_save(store: BlobStore, prefix: str, sink: Sink, groups: dict[str, bytes],
                manifest: dict[str, Any]) -> None:
    """The groups' ``zarr.json`` files into ``sink``, the barrier (``sink.commit``), then
    the manifest, last, with the store's own durable ``put``."""
    for name, data in groups.items():
        sink.put(name, data)
    sink.commit()
    store.put(f"{prefix}/{MANIFEST}", compact_json(manifest))


# ----------------------------------------------------------------------------- reading
def _fetch_chunk(source: OpenChunkSource, layout: ArrayLayout, index: tuple[int, ...],
                 checksums: dict[str, int], what: str, dest: np.ndarray | None = None
                 ) -> np.ndarray:
    """Chunk ``index``, verified, read into ``dest`` (a C-contiguous array of the chunk's
    shape and stored dtype: a part of the caller's result) or into a new buffer."""
    stored, suffix = layout.chunk_key(index), chunk_suffix(index)
    dtype = np.dtype(layout.stored_dtype)
    chunk = np.empty(layout.chunks, dtype=dtype) if dest is None else dest
    raw = chunk.reshape(-1).view(np.uint8)
    try:
        size, actual = source.read_into(layout.key, suffix, stored, raw.data)
    except IntegrityError as error:  # the object is larger than a chunk
        raise IntegrityError(_chunk_name(what, layout, suffix), "a full chunk",
                             error.actual) from error
    _verify(source, layout, index, checksums, what, (size, raw.size), actual)
    return chunk


def _verify(source: OpenChunkSource, layout: ArrayLayout, index: tuple[int, ...],
            checksums: dict[str, int], what: str, sizes: tuple[int, int], actual: int
            ) -> None:
    """Raise the integrity error naming the chunk unless its ``(size read, full size)``
    agree and its CRC-32 ``actual`` is the recorded one."""
    suffix = chunk_suffix(index)
    name = _chunk_name(what, layout, suffix)
    if sizes[0] != sizes[1]:
        raise IntegrityError(name, "a full chunk", f"{sizes[0]} bytes")
    expected = checksums.get(suffix)
    if expected is None or actual != expected:
        raise IntegrityError(f"{name} ({source.where(layout.chunk_key(index))})",
                             f"crc32 {expected}", f"crc32 {actual}")


def _chunk_name(what: str, layout: ArrayLayout, suffix: str) -> str:
    return f"{what}: array {layout.key!r} chunk {suffix}"


def _in_place(target: np.ndarray, layout: ArrayLayout, index: tuple[int, ...]
              ) -> np.ndarray | None:
    """The part of ``target`` chunk ``index`` fills, when the chunk can be read straight
    into it (a full, C-contiguous block); else None (edge chunks are padded on storage)."""
    part = target[layout.chunk_region(index)] if index else target  # 0-d: a view, no scalar
    return part if part.shape == layout.chunks and part.flags.c_contiguous else None


def read_arrays(source: ChunkSource, layouts: list[ArrayLayout],
                checksums: dict[str, dict[str, int]], settings: IOSettings, what: str,
                into: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Read whole arrays (into ``into``'s buffers where given), verifying every chunk."""
    out = {layout.key: (into or {}).get(layout.key) for layout in layouts}
    for layout in layouts:
        if out[layout.key] is None:
            out[layout.key] = np.empty(layout.shape, dtype=np.dtype(layout.stored_dtype))

    def place(layout: ArrayLayout, index: tuple[int, ...], chunk: np.ndarray) -> None:
        target = out[layout.key]
        assert target is not None
        region = layout.chunk_region(index)
        target[region] = chunk[tuple(slice(0, r.stop - r.start) for r in region)]

    def load(layout: ArrayLayout, index: tuple[int, ...]) -> None:
        target = out[layout.key]
        assert target is not None
        direct = _in_place(target, layout, index)
        chunk = _fetch_chunk(chunks, layout, index, checksums[layout.key], what, direct)
        if direct is None:
            place(layout, index, chunk)

    def load_small(batch: list[ArrayLayout]) -> None:
        wanted = [(layout, index) for layout in batch for index in layout.chunk_indices()]
        if chunks.archive is None:
            for layout, index in wanted:
                load(layout, index)
            return
        entries = [(layout.key, chunk_suffix(index), layout.chunk_nbytes)
                   for layout, index in wanted]
        for position, data in chunks.read_spans(entries):
            layout, index = wanted[position]
            _verify(chunks, layout, index, checksums[layout.key], what,
                    (len(data), entries[position][2]), crc32(data))
            dtype = np.dtype(layout.stored_dtype)
            place(layout, index, np.frombuffer(data, dtype=dtype).reshape(layout.chunks))

    large, small = _batches(layouts, settings)
    calls: list[Callable[[], None]] = [
        partial(load, layout, index) for layout in large for index in layout.chunk_indices()
    ]
    calls += [partial(load_small, batch) for batch in small]
    with source.open() as chunks:
        run_parallel(calls, workers_for(settings, source.store))
    return {key: value for key, value in out.items() if value is not None}


def read_region(source: ChunkSource, layout: ArrayLayout, checksums: dict[str, int],
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
        chunk = _fetch_chunk(chunks, layout, index, checksums, what)
        covered = layout.chunk_region(index)
        lo = [max(c.start, r.start) for c, r in zip(covered, region, strict=True)]
        hi = [min(c.stop, r.stop) for c, r in zip(covered, region, strict=True)]
        src = tuple(slice(a - c.start, b - c.start) for a, b, c in zip(lo, hi, covered,
                                                                       strict=True))
        dst = tuple(slice(a - r.start, b - r.start) for a, b, r in zip(lo, hi, region,
                                                                       strict=True))
        target[dst] = chunk[src]

    with source.open() as chunks:
        run_parallel([partial(load, index) for index in layout.overlapping(region)],
                     workers_for(settings, source.store))
    return target
