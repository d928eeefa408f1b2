"""A seekable binary reader over one stored file that verifies every chunk it returns."""

from __future__ import annotations

import io
import os
from collections.abc import Callable

from ..blob import BlobStore, RangeRequest
from .manifest import FileEntry

__all__ = ["VerifiedReader"]


class VerifiedReader(io.RawIOBase):
    """Reads ``entry`` from ``store`` chunk by chunk, verifying each against the manifest.

    Only the chunks that overlap what is read are fetched, so a ranged read (``seek`` then
    ``read``) costs one or two ranged GETs. A chunk that does not match raises
    :class:`~dataplane.errors.IntegrityError` naming the file and the chunk, before any of
    its bytes are returned. Wrap it in ``io.BufferedReader`` (as ``open()`` does) for
    ``read(n)`` to always return ``n`` bytes until the end.
    """

    def __init__(self, store: BlobStore, entry: FileEntry, describe: Callable[[FileEntry], str]):
        super().__init__()
        self._store = store
        self._entry = entry
        self._what = describe(entry)
        self._position = 0
        self._chunk: tuple[int, bytes] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._entry.size}
        if whence not in base:
            raise ValueError(f"invalid whence {whence} (use 0, 1 or 2)")
        position = base[whence] + offset
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self._position >= self._entry.size or len(buffer) == 0:
            return 0
        index = self._position // self._entry.chunk_size
        chunk = self._load(index)
        offset = self._position - index * self._entry.chunk_size
        count = min(len(buffer), len(chunk) - offset)
        buffer[:count] = chunk[offset:offset + count]
        self._position += count
        return count

    def readall(self) -> bytes:
        parts = []
        while self._position < self._entry.size:
            index = self._position // self._entry.chunk_size
            offset = self._position - index * self._entry.chunk_size
            chunk = self._load(index)
            parts.append(chunk[offset:])
            self._position += len(chunk) - offset
        return b"".join(parts)

    def _load(self, index: int) -> bytes:
        if self._chunk is None or self._chunk[0] != index:
            start, end = self._entry.chunk_range(index)
            data = self._store.get(self._entry.key, RangeRequest(start, end))
            self._entry.verify_chunk(index, data, self._what)
            self._chunk = (index, data)
        return self._chunk[1]
