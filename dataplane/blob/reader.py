"""Positional readers: many reads at offsets of one object, through one handle.

A reader that takes many windows of one large object (the chunks of a packed checkpoint
archive, from a pool of threads) should not pay for finding and opening the object on
every read, and the backend should see one reader it can read ahead for.

Call order: :meth:`BlobStore.open_reader` → :meth:`PositionalReader.read_at` any number
of times, from any threads → :meth:`PositionalReader.close` (or use it as a context
manager). A reader opened on local disk keeps reading the object it opened even if the
key is replaced or deleted meanwhile; other backends read the key afresh on each call.
Errors are the store's own (``NotFoundError`` at open for a missing object, etc.).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from types import TracebackType
from typing import TYPE_CHECKING

from ..checksums import CACHED_PIECE, crc32

if TYPE_CHECKING:
    from .port import BlobStore

__all__ = ["PositionalReader", "StoreReader", "pread_checksummed", "pread_into"]


class PositionalReader(ABC):
    """The interface; see the module docstring for the call order and guarantees."""

    key: str

    @abstractmethod
    def read_at(self, offset: int, out: memoryview) -> int:
        """Read from ``offset`` into ``out`` (at most ``len(out)`` bytes; fewer only at
        the end of the object) and return how many were read; safe from any thread."""

    def read_checksummed_at(self, offset: int, out: memoryview) -> tuple[int, int]:
        """:meth:`read_at`, returning ``(bytes read, CRC-32 of those bytes)``. Readers of a
        file descriptor checksum each piece just after reading it (:func:`pread_checksummed`),
        while it is in cache."""
        size = self.read_at(offset, out)
        return size, crc32(out[:size])

    def close(self) -> None:  # noqa: B027 - optional: nothing to release by default
        """Release the handle; safe to call twice."""

    def __enter__(self) -> PositionalReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


class StoreReader(PositionalReader):
    """The default: every read is the store's own :meth:`BlobStore.read_at`."""

    def __init__(self, store: BlobStore, key: str):
        self.store, self.key = store, key

    def read_at(self, offset: int, out: memoryview) -> int:
        return self.store.read_at(self.key, offset, out)


def pread_into(fd: int, out: memoryview, offset: int) -> int:
    """``os.preadv`` until ``out`` is full or the file ends; returns the bytes read."""
    done = 0
    while done < len(out):
        got = os.preadv(fd, [out[done:]], offset + done)
        if not got:
            break
        done += got
    return done


def pread_checksummed(fd: int, out: memoryview, offset: int) -> tuple[int, int]:
    """:func:`pread_into` in :data:`~dataplane.checksums.CACHED_PIECE` pieces, each
    checksummed as soon as it is read; returns ``(bytes read, CRC-32 of those bytes)``."""
    done = checksum = 0
    while done < len(out):
        piece = out[done:done + CACHED_PIECE]
        got = pread_into(fd, piece, offset + done)
        checksum = crc32(piece[:got], checksum)
        done += got
        if got < len(piece):
            break
    return done, checksum
