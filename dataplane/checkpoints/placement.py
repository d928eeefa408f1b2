"""Where a checkpoint's objects go and come from: a folder of objects, or one archive.

The writer (:mod:`.io`) hands every chunk and ``zarr.json`` to a :class:`Sink`, from many
threads, then calls ``commit`` once; the reader asks a :class:`ChunkSource` for a chunk's
bytes. Two placements, same keys:

- the **folder layout** (:class:`FolderSink`): one object per key under the save's prefix,
  through a write batch (on object stores every PUT is its own request, in parallel);
- the **packed layout** (:class:`ArchiveSink`, the default for a single process): one
  ``checkpoint.zip`` under the prefix, written at offsets planned up front
  (:mod:`.archive`), where a file or a request per key costs more than its bytes; loads
  read runs of small entries with one read (:meth:`OpenChunkSource.read_spans`).

Either way ``commit`` returns only once everything put is durable; the manifest, written
after it, is what makes the checkpoint exist.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..blob import BlobStore, PositionalReader, PositionalWriter
from ..checksums import crc32
from .archive import ARCHIVE, ROOT, ArchivePlan, PlannedEntry

__all__ = ["SPAN_BYTES", "SPAN_GAP", "ArchiveSink", "ChunkSource", "FolderSink",
           "OpenChunkSource", "Sink"]

SPAN_BYTES = 8 * 2**20  # the most one read of many small archive entries covers
SPAN_GAP = 64 * 2**10  # entries this close are read together (the gap is read and dropped)

class Sink(ABC):
    """Receives every object of one save (``put`` from any thread), then ``commit``."""

    @abstractmethod
    def put(self, name: str, data: memoryview | bytes) -> int:
        """Store ``data`` under ``name``, relative to the save; returns its CRC-32."""

    @abstractmethod
    def commit(self) -> None:
        """Every object put is durable when this returns."""

    def abort(self) -> None:  # noqa: B027 - optional: a folder's objects are left to gc
        """Give up after a failure; what was written is left to gc (or discarded)."""


class FolderSink(Sink):
    """One object per name under ``prefix``, through a write batch."""

    def __init__(self, store: BlobStore, prefix: str):
        self.prefix = prefix
        self._batch = store.write_batch()

    def put(self, name: str, data: memoryview | bytes) -> int:
        checksum = crc32(data)
        self._batch.put(f"{self.prefix}/{name}", data)
        return checksum

    def commit(self) -> None:
        self._batch.commit()


class ArchiveSink(Sink):
    """Every name an entry of ``<prefix>/checkpoint.zip``, planned by ``plan``."""

    def __init__(self, store: BlobStore, prefix: str, plan: ArchivePlan):
        self.plan = plan
        self._crcs: dict[str, int] = {}
        self._lock = threading.Lock()
        self._writer: PositionalWriter = store.open_positional(f"{prefix}/{ARCHIVE}",
                                                               plan.total_size)

    def entry(self, name: str) -> PlannedEntry:
        """Where object ``name`` of the save goes in the archive."""
        return self.plan.entry(f"{ROOT}/{name}")

    def put(self, name: str, data: memoryview | bytes) -> int:
        entry = self.entry(name)  # two writes, never a copy: the bytes, then their header
        crc = self._writer.write_checksummed_at(entry.data_offset, data)
        self._writer.write_at(entry.header_offset, self.plan.local_header(entry.name, crc))
        with self._lock:
            self._crcs[entry.name] = crc
        return crc

    def commit(self) -> None:
        missing = [entry.name for entry in self.plan if entry.name not in self._crcs]
        if missing:
            raise RuntimeError(f"archive entries never written: {missing[:5]}")
        self._writer.write_at(self.plan.directory_offset, self.plan.central_directory(self._crcs))
        self._writer.commit()

    def abort(self) -> None:
        self._writer.abort()


@dataclass(frozen=True)
class ChunkSource:
    """Where to read a saved checkpoint's chunks: objects under ``prefix``, or (where
    ``offsets`` is given: per array, per chunk suffix) entries of its archive. Reads go
    through :meth:`open` (one reader of the archive for a whole load)."""

    store: BlobStore
    prefix: str
    offsets: dict[str, dict[str, int]] | None = field(default=None)

    @contextmanager
    def open(self) -> Iterator[OpenChunkSource]:
        """A handle to read chunks with, from any threads, closed on leaving."""
        if self.offsets is None:
            yield OpenChunkSource(self, None)
            return
        with self.store.open_reader(f"{self.prefix}/{ARCHIVE}") as archive:
            yield OpenChunkSource(self, archive)

    def where(self, name: str) -> str:
        """The stored object (and entry) a chunk lives in, for messages."""
        base = f"{self.store.url.rstrip('/')}/{self.prefix}"
        return f"{base}/{name}" if self.offsets is None else f"{base}/{ARCHIVE}!{ROOT}/{name}"


@dataclass(frozen=True)
class OpenChunkSource:
    """A :class:`ChunkSource` being read: its archive (if packed) held open."""

    source: ChunkSource
    archive: PositionalReader | None

    def read_into(self, key: str, suffix: str, name: str, out: memoryview) -> tuple[int, int]:
        """Read the chunk stored as ``name`` (array ``key``, chunk ``suffix``) into ``out``;
        returns its size as stored (an archive entry: up to ``len(out)`` bytes) and the
        CRC-32 of the bytes read."""
        if self.archive is None:
            size = self.source.store.get_into(f"{self.source.prefix}/{name}", out)
            return size, crc32(out[:size])
        assert self.source.offsets is not None
        return self.archive.read_checksummed_at(self.source.offsets[key][suffix], out)

    def read_spans(self, wanted: Sequence[tuple[str, str, int]]
                   ) -> Iterator[tuple[int, memoryview]]:
        """Read archive entries ``(key, suffix, size)`` by the span they cover: entries
        that lie within :data:`SPAN_GAP` of each other are one read of up to
        :data:`SPAN_BYTES` (on an object store one ranged GET for many small tensors).
        Yields ``(position in wanted, the entry's bytes)``, shorter where the archive
        ends early; the bytes are valid until the next item."""
        assert self.archive is not None and self.source.offsets is not None
        entries = sorted((self.source.offsets[key][suffix], size, position)
                         for position, (key, suffix, size) in enumerate(wanted))
        span: list[tuple[int, int, int]] = []
        for start, size, position in entries:
            if span and (start - (span[-1][0] + span[-1][1]) > SPAN_GAP
                         or start + size - span[0][0] > SPAN_BYTES):
                yield from self._read_span(span)
                span = []
            span.append((start, size, position))
        if span:
            yield from self._read_span(span)

    def _read_span(self, span: list[tuple[int, int, int]]) -> Iterator[tuple[int, memoryview]]:
        """One read of ``span`` (``(offset, size, position)`` in offset order)."""
        assert self.archive is not None
        low = span[0][0]
        buffer = memoryview(bytearray(span[-1][0] + span[-1][1] - low))
        got = self.archive.read_at(low, buffer)
        for start, size, position in span:
            begin = min(start - low, got)
            yield position, buffer[begin:min(begin + size, got)]

    def where(self, name: str) -> str:
        """The stored object (and entry) a chunk lives in, for messages."""
        return self.source.where(name)
