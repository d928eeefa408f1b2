"""What the S3 and GCS adapters share: a blob store over an fsspec object-store filesystem.

Subclasses build the filesystem and extend :meth:`FsspecBlobStore._translate` with their
client's error types. Object stores make a single PUT (and a completed multipart
upload) visible atomically, which gives ``put`` its guarantee; ``put_if_absent`` uses the
store's conditional write (S3 ``If-None-Match: *``, GCS ``ifGenerationMatch=0``).
"""

from __future__ import annotations

import inspect
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from dataplane.blob.port import (
    BlobStore,
    ByteRequest,
    ObjectInfo,
    OffsetRequest,
    RangeRequest,
    SuffixRequest,
)
from dataplane.config import mask_url
from dataplane.errors import ConfigError
from dataplane.retry import RetryPolicy

DEFAULT_PART_SIZE = 16 * 2**20


class FsspecBlobStore(BlobStore):
    """Keys live under ``<bucket>/<prefix>/`` of an fsspec filesystem ``fs``."""

    #: Extra keyword arguments for whole-object reads (``cat_file`` and ``get_file``).
    whole_read_options: dict[str, Any] = {}

    def __init__(self, fs: Any, url: str, root: str, *, part_size: int = DEFAULT_PART_SIZE,
                 retry: RetryPolicy | None = None, endpoint: str | None = None):
        self.fs = fs
        self.url = url
        self.root = root.strip("/")
        self.part_size = part_size
        self.retry = retry or RetryPolicy()
        self.endpoint = endpoint

    # ------------------------------------------------------------------ reads
    def _get(self, key: str, byte_range: ByteRequest | None) -> bytes:
        path = self._full(key)
        if byte_range is None:
            return bytes(self.fs.cat_file(path, **self.whole_read_options))
        start, end = _http_range(byte_range)
        if start == end or (isinstance(byte_range, SuffixRequest) and byte_range.length == 0):
            self._stat(key)  # an empty window still needs an existing object
            return b""
        try:
            return bytes(self.fs.cat_file(path, start=start, end=end))
        except Exception as error:
            if not self._is_unsatisfiable_range(error):
                raise
            self._stat(key)  # the window starts at or past the end of the object
            return b""

    def _get_file(self, key: str, path: Path) -> ObjectInfo:
        partial = path.with_name(f".{path.name}.partial")
        self.fs.get_file(self._full(key), str(partial), **self.whole_read_options)
        os.replace(partial, path)
        return ObjectInfo(key=key, size=path.stat().st_size)

    def _stat(self, key: str) -> ObjectInfo:
        info = self.fs.info(self._full(key))
        if info.get("type") == "directory":
            raise FileNotFoundError(key)
        return self._object_info(key, info)

    def _list_page(self, prefix: str, start_after: str | None, limit: int) -> list[ObjectInfo]:
        folder, _, leaf = prefix.rpartition("/")
        base = self._full(folder) if folder else self.root
        found = self.fs.find(base, prefix=leaf, detail=True)
        skip = len(self.root) + 1
        items = sorted(
            (path[skip:], info) for path, info in found.items() if info.get("type") != "directory"
        )
        return [
            self._object_info(key, info) for key, info in items
            if key.startswith(prefix) and (start_after is None or key > start_after)
        ][:limit]

    # ----------------------------------------------------------------- writes
    def _put(self, key: str, data: bytes | bytearray | memoryview) -> ObjectInfo:
        return self._pipe(key, data)

    def _pipe(self, key: str, data: bytes | bytearray | memoryview, **extra: Any
              ) -> ObjectInfo:
        """``pipe_file`` the bytes (``extra``: the client's own request options)."""
        answer = self.fs.pipe_file(self._full(key), bytes(data),
                                   chunksize=self.upload_chunksize(len(data)),
                                   timeout=self._put_timeout(len(data)), **extra)
        # a single PUT answers with the object's ETag (S3: the MD5 of the bytes received)
        etag = answer.get("ETag") if isinstance(answer, dict) else None
        return ObjectInfo(key=key, size=len(data), etag=str(etag).strip('"') if etag else None)

    def _put_if_absent(self, key: str, data: bytes | bytearray | memoryview) -> ObjectInfo:
        self.fs.pipe_file(self._full(key), bytes(data), chunksize=self.upload_chunksize(len(data)),
                          mode="create", timeout=self._put_timeout(len(data)))
        return ObjectInfo(key=key, size=len(data))

    def upload_chunksize(self, size: int) -> int:
        """The ``chunksize`` a put of ``size`` bytes from memory passes to fsspec: the whole
        object up to :data:`SINGLE_PUT_BYTES` (one request: a multipart upload of bytes
        already in memory buys nothing and costs three requests and a server-side join),
        ``part_size`` beyond. The clients upload in one request below two chunks."""
        return max(self.part_size, size) if size <= SINGLE_PUT_BYTES else self.part_size

    def _put_file(self, key: str, path: Path) -> ObjectInfo:
        self.fs.put_file(str(path), self._full(key), chunksize=self.part_size,
                         timeout=self._put_timeout(path.stat().st_size))
        return ObjectInfo(key=key, size=path.stat().st_size)

    def _delete(self, key: str) -> None:
        try:
            self.fs.rm_file(self._full(key))
        except FileNotFoundError:
            return

    def _copy(self, source: str, target: str) -> ObjectInfo:
        self.fs.copy(self._full(source), self._full(target))
        return self._stat(target)

    # --------------------------------------------------------------- helpers
    #: A put that makes no progress must not hang: an endpoint that accepts connections
    #: but never answers leaves aiohttp waiting on an upload with no read timeout. Each
    #: attempt gets this base plus time for the bytes at a very slow 1 MB/s.
    put_timeout_base_s = 10.0
    put_timeout_rate = 1_000_000

    def _put_timeout(self, size: int) -> float:
        return self.put_timeout_base_s + size / self.put_timeout_rate

    def _with_endpoint(self, what: str) -> str:
        """Error context: the operation, plus the endpoint when it is not the default."""
        return f"{what} (endpoint {mask_url(self.endpoint)})" if self.endpoint else what

    def _where(self, key: str) -> str:
        return f"{mask_url(self.url).rstrip('/')}/{key}"

    def _full(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _object_info(self, key: str, info: dict[str, Any]) -> ObjectInfo:
        etag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
        modified = info.get("LastModified") or info.get("mtime")
        return ObjectInfo(key=key, size=int(info.get("size") or 0),
                          etag=str(etag).strip('"') if etag else None,
                          modified=modified if isinstance(modified, datetime) else None)

    def _is_unsatisfiable_range(self, error: Exception) -> bool:
        """Whether the backend answered 416 (a range starting at or past the end)."""
        return False


def _http_range(byte_range: ByteRequest) -> tuple[int | None, int | None]:
    """``(start, end)`` as fsspec's ``cat_file`` takes them (a negative start is a suffix)."""
    if isinstance(byte_range, RangeRequest):
        return byte_range.start, byte_range.end
    if isinstance(byte_range, OffsetRequest):
        return byte_range.offset, None
    return -byte_range.length, None


#: Puts from memory up to this size are one request (see ``upload_chunksize``).
SINGLE_PUT_BYTES = 128 * 2**20


def split_bucket_url(url: str, scheme: str) -> str:
    """``s3://bucket/prefix`` -> ``bucket/prefix``; a URL without a bucket is an error."""
    root = url.split("://", 1)[1].strip("/")
    bucket = root.split("/", 1)[0]
    if "@" in bucket:
        raise ConfigError(f"{mask_url(url)!r}: put credentials in the backend's options "
                          "(key/secret, token), not in the URL")
    if len(bucket) < 3:
        raise ConfigError(f"{url!r}: a {scheme}:// URL needs a bucket name of 3+ characters")
    return root


def pop_part_size(options: dict[str, Any]) -> int:
    """Take the adapter-level ``part_size`` option (bytes per multipart part)."""
    part_size = options.pop("part_size", DEFAULT_PART_SIZE)
    if not isinstance(part_size, int) or part_size < 5 * 2**20:
        raise ConfigError("option 'part_size' must be an integer of at least 5 MiB (5242880)")
    return part_size


def check_options(options: dict[str, Any], fs_class: type, scheme: str,
                  extra: tuple[str, ...] = ()) -> None:
    """Refuse options the filesystem class does not take, so a typo is not ignored."""
    # The options are __init__'s: signature(fs_class) would show the (*args, **kwargs) of
    # fsspec's caching metaclass and so accept nothing.
    init = fs_class.__init__  # type: ignore[misc]
    accepted = set(inspect.signature(init).parameters) | set(extra)
    accepted -= {"self", "args", "kwargs"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(
            f"unknown option(s) for {scheme}:// backend: {', '.join(unknown)} "
            f"(accepted: part_size, {', '.join(sorted(accepted))})"
        )
