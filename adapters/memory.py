"""In-process blob adapter: ``memory://<name>``, for tests, demos and caches.

Stores with the same name in one process share their objects (like fsspec's memory file
system), so two ``connect()`` calls see each other's writes. Nothing survives the process.
Every operation holds one lock, which makes every write atomic and put-if-absent exact.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any, ClassVar

from dataplane.blob.port import BlobStore, ByteRequest, Capabilities, ObjectInfo, slice_for
from dataplane.errors import AlreadyExistsError, ConfigError, NotFoundError
from dataplane.retry import RetryPolicy

__all__ = ["MemoryBlobStore"]


class _Objects:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[str, tuple[bytes, datetime]] = {}


class MemoryBlobStore(BlobStore):
    """Objects held in a dictionary shared by every store of the same name."""

    capabilities = Capabilities(atomic_put_if_absent=True, server_side_copy=True)
    _named: ClassVar[dict[str, _Objects]] = {}
    _named_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str = "default", *, retry: RetryPolicy | None = None):
        self.url = f"memory://{name}"
        self.retry = retry or RetryPolicy(attempts=1)
        with self._named_lock:
            self._objects = self._named.setdefault(name, _Objects())

    @classmethod
    def from_url(cls, url: str, options: dict[str, Any], retry: RetryPolicy | None
                 ) -> MemoryBlobStore:
        if options:
            raise ConfigError(f"unknown option(s) for memory:// backend: {', '.join(options)}")
        return cls(url.removeprefix("memory://").strip("/") or "default", retry=retry)

    def _get(self, key: str, byte_range: ByteRequest | None) -> bytes:
        data = self._entry(key)[0]
        return data[slice_for(byte_range, len(data))]

    def _put(self, key: str, data: bytes | bytearray | memoryview) -> ObjectInfo:
        entry = (bytes(data), datetime.now(UTC))
        with self._objects.lock:
            self._objects.data[key] = entry
        return _info(key, entry)

    def _put_if_absent(self, key: str, data: bytes | bytearray | memoryview) -> ObjectInfo:
        entry = (bytes(data), datetime.now(UTC))
        with self._objects.lock:
            if key in self._objects.data:
                raise AlreadyExistsError(f"put-if-absent {self._where(key)}: already exists")
            self._objects.data[key] = entry
        return _info(key, entry)

    def _stat(self, key: str) -> ObjectInfo:
        return _info(key, self._entry(key))

    def _delete(self, key: str) -> None:
        with self._objects.lock:
            self._objects.data.pop(key, None)

    def _copy(self, source: str, target: str) -> ObjectInfo:
        return self._put(target, self._entry(source)[0])

    def _list_page(self, prefix: str, start_after: str | None, limit: int) -> list[ObjectInfo]:
        with self._objects.lock:
            entries = [
                (key, entry) for key, entry in self._objects.data.items()
                if key.startswith(prefix) and (start_after is None or key > start_after)
            ]
        entries.sort(key=lambda item: item[0])
        return [_info(key, entry) for key, entry in entries[:limit]]

    def _entry(self, key: str) -> tuple[bytes, datetime]:
        with self._objects.lock:
            entry = self._objects.data.get(key)
        if entry is None:
            raise NotFoundError(f"{self._where(key)}: not found")
        return entry


def _info(key: str, entry: tuple[bytes, datetime]) -> ObjectInfo:
    return ObjectInfo(key=key, size=len(entry[0]), modified=entry[1])
