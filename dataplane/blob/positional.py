"""Positional writers: one new object of a size known up front, written at offsets.

A writer that knows where every piece of an object goes (a packed checkpoint archive:
each chunk at an offset computed before any byte is written) can write the pieces in any
order, from any number of threads, without holding the object in memory.

Call order: :meth:`BlobStore.open_positional` → :meth:`PositionalWriter.write_at` (or
:meth:`~PositionalWriter.write_checksummed_at`) any number of times, from any threads →
:meth:`PositionalWriter.commit` once, or :meth:`PositionalWriter.abort`. Nothing is
visible under the key before ``commit``; after it returns, the whole object is durable and
replaces any previous one atomically, as a ``put`` would. Bytes never written read as
zeros. ``abort`` (also safe after a
failed ``commit``) discards the staged bytes.

The default writer stages the object in a local temporary file and uploads it at
``commit`` (``put_file``: parallel parts on object stores). Backends whose
``capabilities.positional_writes`` is true write in place instead (local disk: the
staged file is renamed into place), so the object is written once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ..checksums import CACHED_PIECE, crc32

if TYPE_CHECKING:
    from .port import BlobStore, ObjectInfo

__all__ = ["STAGED_PREFIX", "PositionalWriter", "StagedPositionalWriter", "orphaned",
           "pwrite_all", "pwrite_checksummed", "remove_orphans"]

STAGED_PREFIX = "dataplane-positional-"  # staged files in $TMPDIR
T = TypeVar("T")


class PositionalWriter(ABC):
    """The interface; see the module docstring for the call order and guarantees."""

    key: str
    size: int

    @abstractmethod
    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at ``offset`` (inside ``[0, size)``); safe from any thread."""

    def write_checksummed_at(self, offset: int, data: bytes | bytearray | memoryview) -> int:
        """:meth:`write_at`, returning the CRC-32 of ``data``. Writers that write through a
        file descriptor checksum each piece just before writing it (:func:`pwrite_checksummed`),
        so every byte is read from memory once."""
        checksum = crc32(data)
        self.write_at(offset, data)
        return checksum

    @abstractmethod
    def commit(self) -> ObjectInfo:
        """Make the whole object durable and visible under ``key`` atomically."""

    @abstractmethod
    def abort(self) -> None:
        """Discard the staged bytes; safe to call twice and after a failed ``commit``."""

    def check_span(self, offset: int, length: int) -> None:
        """Refuse a write outside ``[0, size)``: the size was promised up front."""
        if offset < 0 or offset + length > self.size:
            raise ValueError(f"write of {length} bytes at offset {offset} is outside the "
                             f"{self.size}-byte object {self.key!r}")


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """``os.pwrite`` until every byte of ``data`` is written at ``offset``."""
    view = memoryview(data).cast("B")
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def pwrite_checksummed(fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
    """:func:`pwrite_all` of ``data`` in :data:`~dataplane.checksums.CACHED_PIECE` pieces,
    each checksummed just before it is written (while it is in cache); returns the CRC-32
    of ``data``."""
    view = memoryview(data).cast("B")
    checksum = 0
    for start in range(0, len(view), CACHED_PIECE):
        piece = view[start:start + CACHED_PIECE]
        checksum = crc32(piece, checksum)
        pwrite_all(fd, piece, offset + start)
    return checksum


class StagedPositionalWriter(PositionalWriter):
    """The default: a local temporary file (in ``$TMPDIR``), uploaded with ``put_file`` at
    ``commit``. The writer holds a lock on its file while it lives, so the files of
    writers whose process was killed are found and removed when the next one opens."""

    def __init__(self, store: BlobStore, key: str, size: int):
        self.store, self.key, self.size = store, key, size
        remove_orphans(tempfile.gettempdir(), STAGED_PREFIX)
        self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by abort()
            prefix=STAGED_PREFIX, delete=False)
        self._open = True
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)  # released when this process dies
            self._file.truncate(size)
        except BaseException:
            self.abort()
            raise

    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._write(offset, data, pwrite_all)

    def write_checksummed_at(self, offset: int, data: bytes | bytearray | memoryview) -> int:
        return self._write(offset, data, pwrite_checksummed)

    def _write(self, offset: int, data: bytes | bytearray | memoryview,
               pwrite: Callable[[int, bytes | bytearray | memoryview, int], T]) -> T:
        self.check_span(offset, memoryview(data).nbytes)
        return self.store._call(f"put {self.store._where(self.key)}",
                                lambda: pwrite(self._file.fileno(), data, offset))

    def commit(self) -> ObjectInfo:
        try:
            self._file.flush()
            return self.store.put_file(self.key, self._file.name)
        finally:
            self.abort()

    def abort(self) -> None:
        if self._open:
            self._open = False
            self._file.close()
            os.unlink(self._file.name)


def remove_orphans(folder: str, prefix: str, younger_than_s: float = 60.0) -> None:
    """Delete the files named ``prefix...`` in ``folder`` that no live writer holds a lock
    on (their process is gone), sparing those younger than ``younger_than_s`` (a writer
    between creating its file and locking it)."""
    cutoff = time.time() - younger_than_s
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if (entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False)
                        and entry.stat(follow_symlinks=False).st_mtime < cutoff
                        and orphaned(entry.path)):
                    os.unlink(entry.path)


def orphaned(path: str) -> bool:
    """True when no live writer holds the lock on the staged file at ``path``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
