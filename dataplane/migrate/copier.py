"""Moving one object from a source store to a destination store, and checking the copy.

:meth:`Copier.copy` picks the cheapest way that keeps memory bounded:

1. **server-side**, when both stores are the same service: two fsspec stores of one class
   on one endpoint (S3 ``CopyObject``, GCS ``rewrite``: no byte passes through this
   process), or two local-disk stores (one in-kernel copy);
2. **in memory**, for objects up to ``inline_bytes``: the source bytes are read (``get``,
   or the file itself on local disk), checked against the recorded digest — a damaged
   source is never copied — and written with one ``put``;
3. **from the source file**, for larger objects on local disk: ``put_file`` streams it;
4. **spooled** through a temporary file otherwise: ``get_file`` then ``put_file``, so
   memory stays bounded whatever the size.

How a copy is proven (the caller does nothing else when :meth:`Copier.copy` says so):

- on S3, a copy made in memory in one request is checked **in transit**: the bytes were
  checked against the recorded SHA-256 just before the ``put``, which sends their MD5
  (``Content-MD5``: S3 refuses a body that does not match it), and the ETag S3 answers
  with (the MD5 of what it stored) must equal it. That proves the stored bytes are the
  recorded ones without reading them back (``rclone --checksum`` relies on the ETag too);
  a multipart upload or any other ETag (e.g. with SSE-KMS) falls back to reading back;
- otherwise :meth:`Copier.check` reads the destination copy back and compares it with
  the digest recorded at write time (:mod:`.objects`). ``migrate verify`` always reads
  back.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..blob import BlobStore
from ..errors import IntegrityError, NotFoundError
from .objects import Expected, check_bytes, check_file, file_sha256, source_digest

__all__ = ["MISSING", "ByteBudget", "Copier", "local_path", "same_service"]

MISSING = "missing"


class ByteBudget:
    """At most ``limit`` bytes held at once (one larger request goes through alone)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.held = 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        with self._cond:
            while self.held and self.held + amount > self.limit:
                self._cond.wait()
            self.held += amount
        try:
            yield
        finally:
            with self._cond:
                self.held -= amount
                self._cond.notify_all()


def local_path(store: BlobStore, key: str) -> Path | None:
    """The file that holds ``key`` when ``store`` is on local disk, else ``None``."""
    root = getattr(store, "root", None)
    if isinstance(root, Path) and store.url.startswith("file://"):
        return root / key
    return None


def same_service(source: BlobStore, target: BlobStore) -> bool:
    """Whether ``target`` can copy from ``source`` without bytes passing through here."""
    if local_path(source, "x") is not None and local_path(target, "x") is not None:
        return True
    return (type(source) is type(target) and hasattr(source, "fs") and hasattr(target, "fs")
            and getattr(source, "endpoint", None) == getattr(target, "endpoint", None)
            and _service_options(source) == _service_options(target))


def _service_options(store: BlobStore) -> dict[str, object]:
    """The client options that say which service and credentials a store uses (each
    store's own session object is not one of them)."""
    options = dict(getattr(store.fs, "storage_options", None) or {})  # type: ignore[attr-defined]
    options.pop("session", None)
    return options


class Copier:
    """Copies objects from ``source`` to ``target`` and checks them there."""

    def __init__(self, source: BlobStore, target: BlobStore, spool: Path, *,
                 inline_bytes: int, budget: ByteBudget):
        self.source = source
        self.target = target
        self.spool = spool
        self.inline_bytes = inline_bytes
        self.budget = budget
        self.server_side = same_service(source, target)

    def copy(self, key: str, size: int, expected: Expected) -> tuple[Expected, bool]:
        """Write the object to the target. Returns ``expected`` (completed with the
        source's digest where nothing was recorded) and whether the copy was already
        proven in transit. Raises ``IntegrityError`` when source bytes read here do not
        match the recorded digest (nothing is written then)."""
        if expected.get("sha256", "") is not None and self._server_side_copy(key):
            return expected, False
        if size <= self.inline_bytes:
            return self._copy_in_memory(key, size, expected)
        path = local_path(self.source, key)
        if path is not None and expected.get("sha256", "") is not None:
            if not path.is_file():
                raise NotFoundError(f"{self.source.url.rstrip('/')}/{key}: not found")
            self.target.put_file(key, path)
            return expected, False
        return self._copy_spooled(key, expected), False

    def _server_side_copy(self, key: str) -> bool:
        if not self.server_side:
            return False
        path = local_path(self.source, key)
        if path is not None:
            if not path.is_file():
                raise NotFoundError(f"{self.source.url.rstrip('/')}/{key}: not found")
            self.target.put_file(key, path)  # one in-kernel copy
            return True
        try:
            self.target.fs.copy(f"{self.source.root}/{key}",  # type: ignore[attr-defined]
                                f"{self.target.root}/{key}")  # type: ignore[attr-defined]
            return True
        except Exception:  # e.g. no read access to the source bucket: copy through
            return False

    def _copy_in_memory(self, key: str, size: int, expected: Expected
                        ) -> tuple[Expected, bool]:
        with self.budget.hold(max(size, 1)):
            data = self._read_source(key)
            expected = source_digest(expected, data)
            self._check_source(key, check_bytes(expected, data))
            put_proven = getattr(self.target, "put_proven", None)  # S3: Content-MD5 + ETag
            if put_proven is not None:
                return expected, bool(put_proven(key, data))
            self.target.put(key, data)
            return expected, False

    def _read_source(self, key: str) -> bytes:
        path = local_path(self.source, key)
        if path is None:
            return self.source.get(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"{self.source.url.rstrip('/')}/{key}: not found") from None

    def _copy_spooled(self, key: str, expected: Expected) -> Expected:
        with self._spooled() as temp:
            self.source.get_file(key, temp)
            if expected.get("sha256", "") is None:
                expected = {"sha256": file_sha256(temp)}
            self._check_source(key, check_file(expected, temp))
            self.target.put_file(key, temp)
        return expected

    def check_existing(self, key: str, size: int, expected: Expected) -> str | None:
        """Like :meth:`check`, for a copy this run did not make (a killed run's, or one
        already there). On S3, an object small enough for memory is proven by its ETag
        against the source bytes, themselves checked against the recorded digest (one
        HEAD instead of reading the copy back); anything else is read back."""
        put_etag = getattr(self.target, "put_etag", None)  # S3: the ETag is an MD5
        if put_etag is None or size > self.inline_bytes:
            return self.check(key, size, expected)
        try:
            etag = self.target.stat(key).etag
        except NotFoundError:
            return MISSING
        with self.budget.hold(max(size, 1)):
            data = self._read_source(key)
            if check_bytes(expected, data) is None and etag == put_etag(data):
                return None
        return self.check(key, size, expected)  # a damaged source proves nothing: read

    def check(self, key: str, size: int, expected: Expected) -> str | None:
        """``None`` when the target holds the recorded bytes, :data:`MISSING` when it holds
        nothing at ``key``, else what differs."""
        try:
            path = local_path(self.target, key)
            if path is not None:
                return check_file(expected, path) if path.is_file() else MISSING
            if size <= self.inline_bytes:
                with self.budget.hold(max(size, 1)):
                    return check_bytes(expected, self.target.get(key))
            with self._spooled() as temp:
                self.target.get_file(key, temp)
                return check_file(expected, temp)
        except NotFoundError:
            return MISSING

    def check_source(self, key: str, size: int, expected: Expected) -> None:
        """Raise ``IntegrityError`` if the source no longer matches the recorded digest
        (after a copy taken straight from it failed its check), and drop the bad copy."""
        path = local_path(self.source, key)
        if path is not None:
            problem = check_file(expected, path) if path.is_file() else MISSING
        elif size <= self.inline_bytes:
            problem = check_bytes(expected, self.source.get(key))
        else:
            with self._spooled() as temp:
                self.source.get_file(key, temp)
                problem = check_file(expected, temp)
        if problem is not None:
            self.target.delete(key)
            self._check_source(key, problem)

    def complete(self, key: str, expected: Expected) -> Expected:
        """``expected`` with the source's digest filled in where none was recorded."""
        if expected.get("sha256", "") is None:
            return source_digest(expected, self.source.get(key))
        return expected

    def _check_source(self, key: str, problem: str | None) -> None:
        if problem is not None:
            raise IntegrityError(f"{self.source.url.rstrip('/')}/{key} (migration source)",
                                 "the digest recorded at write time", problem)

    @contextmanager
    def _spooled(self) -> Iterator[Path]:
        temp = self.spool / f"{uuid.uuid4().hex}.part"
        try:
            yield temp
        finally:
            temp.unlink(missing_ok=True)


@contextmanager
def spool_dir(parent: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A private temporary folder for spooled copies, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="dp-migrate-", dir=parent) as folder:
        yield Path(folder)


def describe_error(error: Any) -> str:
    """One line for the journal: the error class and its message."""
    return f"{type(error).__name__}: {error}".splitlines()[0][:2000]
