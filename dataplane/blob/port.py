"""The blob port: the one byte-level interface every storage backend implements.

Domain code (models, datasets, checkpoints, migration) talks only to :class:`BlobStore`.
An adapter subclasses it and implements the underscored primitives; the public methods
here wrap every primitive the same way, in this order:

1. validate the key (:func:`~dataplane.names.check_key`) before anything touches storage;
2. call the primitive, translating any backend exception at the boundary with
   :meth:`BlobStore._translate` into the :mod:`dataplane.errors` hierarchy;
3. retry :class:`~dataplane.errors.TransientError` under the store's
   :class:`~dataplane.retry.RetryPolicy`, then give up with
   :class:`~dataplane.errors.BackendUnavailableError`.

Guarantees every adapter keeps (the conformance suite in :mod:`dataplane.testing.blob`
checks them):

- ``put`` is atomic: a concurrent reader sees the old object, the new one, or (for a new
  key) none, never a mix or a prefix.
- ``put_if_absent`` writes only when the key is absent and otherwise raises
  :class:`~dataplane.errors.AlreadyExistsError`, leaving the object as it was. Where
  ``capabilities.atomic_put_if_absent`` is true, this holds between concurrent writers.
- ``get`` of a missing key raises :class:`~dataplane.errors.NotFoundError`; ``delete`` of a
  missing key is a no-op.
- ``list`` yields :class:`ObjectInfo` in ascending key order for keys that start with the
  given string prefix (a plain string prefix, as in S3, not a directory).
- ``get_into`` fills the caller's buffer with exactly the bytes ``get`` would return.
- Objects written through :meth:`BlobStore.write_batch` are durable once the batch's
  ``commit`` returns (see :mod:`.batch` for what holds before that).
- An object written through :meth:`BlobStore.open_positional` appears whole, atomically
  and durably at its writer's ``commit``, and not before (see :mod:`.positional`).
- ``read_at`` reads exactly the bytes ``get`` would return for that range.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from ..errors import (
    AlreadyExistsError,
    BackendError,
    DataplaneError,
    IntegrityError,
    NotFoundError,
    PermissionDeniedError,
    TransientError,
)
from ..names import check_key
from ..retry import RetryPolicy, call_with_retry
from .batch import WriteBatch
from .positional import PositionalWriter, StagedPositionalWriter
from .reader import PositionalReader, StoreReader

__all__ = [
    "BlobStore",
    "ByteRequest",
    "Capabilities",
    "ListPage",
    "ObjectInfo",
    "OffsetRequest",
    "PositionalWriter",
    "RangeRequest",
    "SuffixRequest",
    "WriteBatch",
]

T = TypeVar("T")
COPY_BUFFER = 8 * 2**20


@dataclass(frozen=True)
class ObjectInfo:
    """What a backend knows about one stored object."""

    key: str
    size: int
    etag: str | None = None
    modified: datetime | None = None


@dataclass(frozen=True)
class RangeRequest:
    """Bytes ``[start, end)``; a range past the end of the object is clipped to it."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"invalid byte range [{self.start}, {self.end})")


@dataclass(frozen=True)
class OffsetRequest:
    """Bytes from ``offset`` to the end of the object."""

    offset: int

    def __post_init__(self) -> None:
        if self.offset < 0:
            raise ValueError(f"invalid offset {self.offset}")


@dataclass(frozen=True)
class SuffixRequest:
    """The last ``length`` bytes (the whole object when it is shorter)."""

    length: int

    def __post_init__(self) -> None:
        if self.length < 0:
            raise ValueError(f"invalid suffix length {self.length}")


ByteRequest = RangeRequest | OffsetRequest | SuffixRequest
ObjectInfos = list[ObjectInfo]  # named, since BlobStore.list shadows the builtin in its body


@dataclass(frozen=True)
class Capabilities:
    """What a backend can promise beyond the basic guarantees.

    - ``atomic_put_if_absent``: ``put_if_absent`` is decided by the backend in one step,
      so exactly one of several concurrent writers of a new key wins.
    - ``server_side_copy``: ``copy`` moves no bytes through this process.
    - ``atomic_rename``: the backend can rename a prefix atomically (local disk), so a
      commit can be a rename rather than a marker written last.
    - ``request_concurrency``: how many requests in flight suit the backend, the default
      for parallel transfers: a few for a local disk, dozens for an object store, where
      each small request mostly waits on the network.
    - ``positional_writes``: ``open_positional`` writes the object in place (local disk),
      not through a staged copy uploaded at commit.
    """

    atomic_put_if_absent: bool
    server_side_copy: bool
    atomic_rename: bool = False
    request_concurrency: int = 8
    positional_writes: bool = False


@dataclass(frozen=True)
class ListPage:
    """One page of a listing; pass ``next_start_after`` back to get the next page."""

    items: ObjectInfos
    next_start_after: str | None


class BlobStore(ABC):
    """A flat namespace of immutable-on-write byte objects under one root URL.

    Subclasses set ``url``, ``capabilities`` and ``retry`` and implement the underscored
    primitives. The public methods are the API; they are not meant to be overridden.
    """

    url: str
    capabilities: Capabilities
    retry: RetryPolicy = RetryPolicy()

    # ----------------------------------------------------------------- public API
    def get(self, key: str, byte_range: ByteRequest | None = None) -> bytes:
        """The object's bytes, or the requested range of them."""
        check_key(key)
        return self._call(f"get {self._where(key)}", lambda: self._get(key, byte_range))

    def get_into(self, key: str, out: memoryview) -> int:
        """Read the whole object into the start of ``out`` and return its size, without
        an intermediate copy where the adapter can (local files are read in place). An
        object larger than ``out`` raises ``IntegrityError`` and ``out`` is undefined."""
        check_key(key)
        view = out.cast("B") if out.format != "B" or out.ndim != 1 else out
        return self._call(f"get {self._where(key)}", lambda: self._get_into(key, view))

    def read_at(self, key: str, offset: int, out: memoryview) -> int:
        """Read the object's bytes from ``offset`` into ``out`` (at most ``len(out)``; fewer
        only at the end of the object) and return how many were read."""
        check_key(key)
        if offset < 0:
            raise ValueError(f"invalid offset {offset}")
        view = out.cast("B") if out.format != "B" or out.ndim != 1 else out
        return self._call(f"get {self._where(key)}", lambda: self._read_at(key, offset, view))

    def open_reader(self, key: str) -> PositionalReader:
        """A reader of the object at ``key`` for many :meth:`read_at`-like reads from any
        threads, then ``close`` (see :mod:`.reader`). Raises ``NotFoundError`` at once on
        backends that open the object (local disk), else at the first read."""
        check_key(key)
        return self._call(f"get {self._where(key)}", lambda: self._open_reader(key))

    def write_batch(self) -> WriteBatch:
        """A batch of writes made durable together by its ``commit`` (see :mod:`.batch`)."""
        return WriteBatch(self)

    def open_positional(self, key: str, size: int) -> PositionalWriter:
        """A writer of one new ``size``-byte object at ``key``, written at offsets and
        made visible atomically by its ``commit`` (see :mod:`.positional`)."""
        check_key(key)
        if size < 0:
            raise ValueError(f"invalid object size {size}")
        return self._call(f"put {self._where(key)}", lambda: self._open_positional(key, size))

    def put(self, key: str, data: bytes | bytearray | memoryview) -> ObjectInfo:
        """Store ``data`` under ``key`` atomically, replacing any previous object."""
        check_key(key)
        return self._call(f"put {self._where(key)}", lambda: self._put(key, data))

    def put_if_absent(self, key: str, data: bytes | bytearray | memoryview) -> ObjectInfo:
        """Store ``data`` only if ``key`` does not exist, else raise ``AlreadyExistsError``."""
        check_key(key)
        return self._call(
            f"put-if-absent {self._where(key)}", lambda: self._put_if_absent(key, data)
        )

    def put_file(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Upload a local file atomically; large files may go in parallel parts."""
        check_key(key)
        source = Path(path)
        if not source.is_file():
            raise NotFoundError(f"local file {source} does not exist or is not a file")
        return self._call(f"put {self._where(key)}", lambda: self._put_file(key, source))

    def get_file(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Download the object to a local file (overwritten; parent folders created)."""
        check_key(key)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        return self._call(f"get {self._where(key)}", lambda: self._get_file(key, target))

    def stat(self, key: str) -> ObjectInfo:
        """Size and metadata of one object; ``NotFoundError`` when it is missing."""
        check_key(key)
        return self._call(f"stat {self._where(key)}", lambda: self._stat(key))

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds an object."""
        try:
            self.stat(key)
        except NotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""
        check_key(key)
        self._call(f"delete {self._where(key)}", lambda: self._delete(key))

    def copy(self, source: str, target: str) -> ObjectInfo:
        """Copy one object to another key of this store (server-side where possible)."""
        check_key(source)
        check_key(target)
        what = f"copy {self._where(source)} to {target}"
        return self._call(what, lambda: self._copy(source, target))

    def list_page(
        self, prefix: str = "", *, start_after: str | None = None, limit: int = 1000
    ) -> ListPage:
        """Up to ``limit`` objects whose keys start with ``prefix``, after ``start_after``."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        what = f"list {self._where(prefix)}"
        items = self._call(what, lambda: self._list_page(prefix, start_after, limit))
        return ListPage(items, items[-1].key if len(items) == limit else None)

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order, fetched page by page."""
        start_after: str | None = None
        while True:
            page = self.list_page(prefix, start_after=start_after, limit=page_size)
            yield from page.items
            if page.next_start_after is None:
                return
            start_after = page.next_start_after

    def close(self) -> None:  # noqa: B027 - an optional hook; most adapters hold nothing
        """Release connections; the store must not be used afterwards."""

    def __enter__(self) -> BlobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # ------------------------------------------------------------- primitives
    @abstractmethod
    def _get(self, key: str, byte_range: ByteRequest | None) -> bytes: ...

    @abstractmethod
    def _put(self, key: str, data: bytes | bytearray | memoryview) -> ObjectInfo: ...

    @abstractmethod
    def _put_if_absent(self, key: str, data: bytes | bytearray | memoryview) -> ObjectInfo: ...

    @abstractmethod
    def _stat(self, key: str) -> ObjectInfo: ...

    @abstractmethod
    def _delete(self, key: str) -> None: ...

    @abstractmethod
    def _copy(self, source: str, target: str) -> ObjectInfo: ...

    @abstractmethod
    def _list_page(self, prefix: str, start_after: str | None, limit: int) -> ObjectInfos:
        """Objects with ``key.startswith(prefix)`` and ``key > start_after``, sorted, at most
        ``limit`` of them."""

    def _put_file(self, key: str, path: Path) -> ObjectInfo:
        """Default: read the file and ``_put`` it. Adapters override to stream or go parallel."""
        return self._put(key, path.read_bytes())

    def _get_file(self, key: str, path: Path) -> ObjectInfo:
        """Default: ``_get`` the object and write it. Adapters override to stream."""
        data = self._get(key, None)
        path.write_bytes(data)
        return ObjectInfo(key=key, size=len(data))

    def _read_at(self, key: str, offset: int, out: memoryview) -> int:
        """Default: a ranged ``_get``, copied. Adapters override to read in place."""
        data = self._get(key, RangeRequest(offset, offset + len(out)))
        out[: len(data)] = data
        return len(data)

    def _open_reader(self, key: str) -> PositionalReader:
        """Default: each read is a :meth:`read_at`. Adapters override to hold a handle."""
        return StoreReader(self, key)

    def _open_positional(self, key: str, size: int) -> PositionalWriter:
        """Default: stage in a local temporary file, ``put_file`` it at commit."""
        return StagedPositionalWriter(self, key, size)

    def _get_into(self, key: str, out: memoryview) -> int:
        """Default: ``_get`` the object and copy it. Adapters override to read in place."""
        data = self._get(key, None)
        check_fits(self._where(key), len(data), len(out))
        out[: len(data)] = data
        return len(data)

    def _translate(self, error: Exception, what: str) -> DataplaneError:
        """Map a backend exception to the project's hierarchy. Adapters extend this."""
        return translate_os_error(error, what)

    def _where(self, key: str) -> str:
        return f"{self.url.rstrip('/')}/{key}"

    # ------------------------------------------------------------------ plumbing
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        def attempt() -> T:
            try:
                return fn()
            except DataplaneError:
                raise
            except Exception as error:  # the boundary: translate whatever the backend raised
                raise self._translate(error, what) from error

        return call_with_retry(attempt, self.retry, what)


def translate_os_error(error: Exception, what: str) -> DataplaneError:
    """Translate the builtin exceptions that file systems and fsspec raise."""
    if isinstance(error, FileNotFoundError):
        return NotFoundError(f"{what}: not found")
    if isinstance(error, FileExistsError):
        return AlreadyExistsError(f"{what}: already exists")
    if isinstance(error, PermissionError):
        return PermissionDeniedError(f"{what}: permission denied: {error}")
    if isinstance(error, ConnectionError | TimeoutError):
        return TransientError(f"{what}: {type(error).__name__}: {error}")
    return BackendError(f"{what}: {type(error).__name__}: {error}")


def check_fits(where: str, size: int, room: int) -> None:
    """``get_into``'s size check: the object must fit the caller's buffer."""
    if size > room:
        raise IntegrityError(where, f"at most {room} bytes", f"{size} bytes")


def slice_for(byte_range: ByteRequest | None, size: int) -> slice:
    """The Python slice that ``byte_range`` selects from an object of ``size`` bytes."""
    if byte_range is None:
        return slice(0, size)
    if isinstance(byte_range, RangeRequest):
        return slice(min(byte_range.start, size), min(byte_range.end, size))
    if isinstance(byte_range, OffsetRequest):
        return slice(min(byte_range.offset, size), size)
    return slice(max(size - byte_range.length, 0), size)
