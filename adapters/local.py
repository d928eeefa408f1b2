"""Local-disk blob adapter: ``file:///absolute/path`` (or a path relative to the config).

Every write goes to a temporary file in ``<root>/.dataplane-staging/``, is fsync'd, and is
then renamed into place (``os.replace``, or ``os.link`` for put-if-absent, which fails
atomically when the key exists); the parent directory is fsync'd after the rename. A
crash at any point leaves either the old object or the new one, plus at most a stray
temporary file in the staging folder, which listings never show.

A write batch (:mod:`dataplane.blob.batch`, used for checkpoint chunks) skips all of
that per object: each file is written in place, and ``commit`` makes the whole batch
durable with one ``syncfs(2)`` of the file system (or, where the platform lacks it, an
fsync of every file and folder the batch wrote), so thousands of small objects cost
thousands of plain writes and one barrier instead of thousands of fsync pairs.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from dataplane.blob.port import (
    BlobStore,
    ByteRequest,
    Capabilities,
    ObjectInfo,
    PositionalWriter,
    WriteBatch,
    check_fits,
    slice_for,
    translate_os_error,
)
from dataplane.blob.positional import orphaned, pwrite_all, pwrite_checksummed
from dataplane.blob.reader import PositionalReader, pread_checksummed, pread_into
from dataplane.errors import (
    BackendError,
    ConfigError,
    ConflictError,
    DataplaneError,
    InvalidNameError,
    NotFoundError,
)
from dataplane.names import check_key
from dataplane.retry import RetryPolicy

__all__ = ["LocalBlobStore"]

STAGING = ".dataplane-staging"
STALE_STAGING_S = 24 * 3600.0
POSITIONAL_PREFIX = "pos-"
_EARLY_WRITEBACK_BYTES = 2**20  # pieces this large start their writeback at once
_SMALL_WRITEBACK_BYTES = 8 * 2**20  # smaller pieces: once this much of them has gathered
_SYNC_FILE_RANGE_WRITE = 2
_RENAME_RACE_RETRIES = 5
T = TypeVar("T")


class LocalBlobStore(BlobStore):
    """Objects are files under ``root``; keys map to relative paths."""

    # Four requests in flight: enough to keep a disk's queue busy while chunks are
    # checksummed; buffered writes into one file (a packed checkpoint) serialize on its
    # inode lock, and more writers only spin on it (4 vs 8 threads, 2 GiB saves on this
    # 2-core machine: 0.3-0.5 CPU-s less, wall time no worse).
    capabilities = Capabilities(
        atomic_put_if_absent=True, server_side_copy=True, atomic_rename=True,
        positional_writes=True, request_concurrency=4,
    )

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True,
                 retry: RetryPolicy | None = None):
        self.root = Path(root).resolve()
        self.fsync = fsync
        self.retry = retry or RetryPolicy(attempts=1)
        self.url = self.root.as_uri()
        self._staging = self.root / STAGING
        self._staging.mkdir(parents=True, exist_ok=True)
        self._remove_stale_staging()

    def _remove_stale_staging(self, older_than_s: float = STALE_STAGING_S) -> None:
        """Delete temp files of writers killed mid-put: any older than a live put runs,
        and at once those of positional writers whose process is gone (the writer holds a
        lock on its file while it lives; a big checkpoint should not wait a day)."""
        cutoff = time.time() - older_than_s
        for entry in os.scandir(self._staging):
            with contextlib.suppress(OSError):
                if (entry.stat(follow_symlinks=False).st_mtime < cutoff
                        or (entry.name.startswith(POSITIONAL_PREFIX) and orphaned(entry.path))):
                    os.unlink(entry.path)

    @classmethod
    def from_url(cls, url: str, options: dict[str, Any], retry: RetryPolicy | None
                 ) -> LocalBlobStore:
        """``file:///abs/path`` or ``file://relative/path`` (relative to the working dir)."""
        path = url.removeprefix("file://")
        if not path:
            raise ConfigError(f"{url!r}: a file:// URL needs a path")
        fsync = options.pop("fsync", True)
        if options:
            raise ConfigError(f"unknown option(s) for file:// backend: {', '.join(options)}")
        if not isinstance(fsync, bool):
            raise ConfigError("option 'fsync' of a file:// backend must be true or false")
        return cls(path, fsync=fsync, retry=retry)

    # ------------------------------------------------------------------ reads
    def _get(self, key: str, byte_range: ByteRequest | None) -> bytes:
        with open(self._object_path(key), "rb") as file:
            size = os.fstat(file.fileno()).st_size
            window = slice_for(byte_range, size)
            file.seek(window.start)
            return file.read(window.stop - window.start)

    def _get_into(self, key: str, out: memoryview) -> int:
        with open(self._object_path(key), "rb", buffering=0) as file:
            size = os.fstat(file.fileno()).st_size
            check_fits(self._where(key), size, len(out))
            done = 0
            while done < size:
                got = file.readinto(out[done:size])
                if not got:
                    break
                done += got
            return done

    def _read_at(self, key: str, offset: int, out: memoryview) -> int:
        fd = os.open(self._object_path(key), os.O_RDONLY)
        try:
            return pread_into(fd, out, offset)
        finally:
            os.close(fd)

    def _open_reader(self, key: str) -> PositionalReader:
        return LocalPositionalReader(self, key)

    def write_batch(self) -> WriteBatch:
        return LocalWriteBatch(self)

    def _open_positional(self, key: str, size: int) -> PositionalWriter:
        return LocalPositionalWriter(self, key, size)

    def _get_file(self, key: str, path: Path) -> ObjectInfo:
        partial = path.with_name(f".{path.name}.partial")
        shutil.copyfile(self._object_path(key), partial)
        os.replace(partial, path)
        return self._stat(key)

    def _stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        info = path.stat()
        if not path.is_file():
            raise FileNotFoundError(key)
        modified = datetime.fromtimestamp(info.st_mtime, UTC)
        return ObjectInfo(key=key, size=info.st_size, modified=modified)

    def _list_page(self, prefix: str, start_after: str | None, limit: int) -> list[ObjectInfo]:
        keys = sorted(k for k in self._walk(prefix) if start_after is None or k > start_after)
        page: list[ObjectInfo] = []
        for key in keys:
            try:
                page.append(self._stat(key))
            except FileNotFoundError:  # deleted since the walk saw it
                continue
            if len(page) == limit:
                break
        return page

    def _walk(self, prefix: str) -> Iterator[str]:
        folder = prefix.rpartition("/")[0]
        base = self.root / folder if folder else self.root
        for dirpath, dirnames, filenames in os.walk(base):
            if Path(dirpath) == self.root and STAGING in dirnames:
                dirnames.remove(STAGING)
            relative = Path(dirpath).relative_to(self.root).as_posix()
            for filename in filenames:
                key = filename if relative == "." else f"{relative}/{filename}"
                if key.startswith(prefix):
                    yield key

    # ----------------------------------------------------------------- writes
    def _put(self, key: str, data: bytes | bytearray | memoryview) -> ObjectInfo:
        return self._commit(key, lambda file: file.write(data), os.replace)

    def _put_if_absent(self, key: str, data: bytes | bytearray | memoryview) -> ObjectInfo:
        return self._commit(key, lambda file: file.write(data), _link_exclusive)

    def _put_file(self, key: str, path: Path) -> ObjectInfo:
        def copy(file: Any) -> None:
            file.flush()
            with open(path, "rb") as source:  # in-kernel copy: no user-space buffer
                size, offset = os.fstat(source.fileno()).st_size, 0
                while offset < size:
                    sent = os.sendfile(file.fileno(), source.fileno(), offset, size - offset)
                    if sent == 0:
                        break
                    offset += sent

        return self._commit(key, copy, os.replace)

    def _copy(self, source: str, target: str) -> ObjectInfo:
        return self._put_file(target, self._object_path(source))

    def _delete(self, key: str) -> None:
        try:
            path = self._object_path(key)
            path.unlink()
        except FileNotFoundError:
            return
        self._prune_empty_parents(path.parent)

    # --------------------------------------------------------------- helpers
    def _path(self, key: str) -> Path:
        if key.split("/", 1)[0] == STAGING:
            raise InvalidNameError(key, f"keys under '{STAGING}/' are reserved for staging")
        return self.root / key

    def _object_path(self, key: str) -> Path:
        """The file that holds ``key``; a folder (a prefix of other keys) holds no object."""
        path = self._path(key)
        if path.is_dir():
            raise FileNotFoundError(key)
        return path

    def _commit(self, key: str, write: Callable[[Any], object],
                place: Callable[[str, Path], None]) -> ObjectInfo:
        """Write to a staged temp file, fsync it, move it into place, fsync the folder."""
        target = self._path(key)
        fd, temp = tempfile.mkstemp(dir=self._staging, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as file:
                write(file)
                file.flush()
                if self.fsync:
                    os.fsync(file.fileno())
            self._place(temp, target, place)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
        if self.fsync:
            _fsync_path(target.parent)
        return self._stat(key)

    def _place(self, temp: str, target: Path, place: Callable[[str, Path], None]) -> None:
        # A concurrent delete may prune the (empty) parent between mkdir and rename.
        for attempt in range(_RENAME_RACE_RETRIES):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except FileExistsError as error:  # a file (another key) is where a folder goes
                raise NotADirectoryError(errno.ENOTDIR, str(target.parent)) from error
            try:
                place(temp, target)
                return
            except FileNotFoundError:
                if attempt == _RENAME_RACE_RETRIES - 1:
                    raise

    def _prune_empty_parents(self, folder: Path) -> None:
        while folder != self.root and folder.is_relative_to(self.root):
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def _translate(self, error: Exception, what: str) -> DataplaneError:
        if isinstance(error, NotADirectoryError | IsADirectoryError):
            return ConflictError(
                f"{what}: on local disk a key cannot be both an object and a prefix of others"
            )
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return BackendError(f"{what}: no space left on device ({self.root})")
        if isinstance(error, FileNotFoundError):
            return NotFoundError(f"{what}: not found")
        return translate_os_error(error, what)


class LocalWriteBatch(WriteBatch):
    """Files written in place, made durable together by one barrier at ``commit``."""

    def __init__(self, store: LocalBlobStore):
        super().__init__(store)
        self.local = store
        self._root = str(store.root)
        self._folders: set[str] = set()
        self._written: list[str] = []
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        check_key(key)
        self.local._call(f"put {self.local._where(key)}", lambda: self._write(key, data))

    def _write(self, key: str, data: bytes | bytearray | memoryview) -> None:
        # Plain os calls on strings: this runs once per chunk, thousands of times a save.
        if key.split("/", 1)[0] == STAGING:
            raise InvalidNameError(key, f"keys under '{STAGING}/' are reserved for staging")
        path = f"{self._root}/{key}"
        folder = path.rpartition("/")[0]
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            with self._lock:  # the folder and every folder above it, for _sync
                while folder.startswith(self._root + "/"):
                    self._folders.add(folder)
                    folder = folder.rpartition("/")[0]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data).cast("B")
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        with self._lock:
            self._written.append(path)

    def commit(self) -> None:
        if self.local.fsync:
            self.local._call(f"sync {self.local.url}", self._sync)

    def _sync(self) -> None:
        if _syncfs(self.local.root):
            return
        with self._lock:
            written, folders = list(self._written), sorted(self._folders)
        for path in written:
            _fsync_path(path)
        for folder in folders:
            _fsync_path(folder)


class LocalPositionalWriter(PositionalWriter):
    """A staged file, space reserved up front (a full disk fails at open, not midway),
    written with ``pwrite`` and renamed into place at ``commit`` (fsync, rename, folder
    fsync: the same commit as ``put``)."""

    def __init__(self, store: LocalBlobStore, key: str, size: int):
        self._target = store._path(key)  # refuses keys under the staging folder
        self.store, self.key, self.size = store, key, size
        self._where = f"put {store._where(key)}"
        self._fd, self._temp = tempfile.mkstemp(dir=store._staging, prefix=POSITIONAL_PREFIX)
        self._open = True
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # released when this process dies
            _reserve(self._fd, size)
        except BaseException:
            self.abort()
            raise
        self._writeback = _EarlyWriteback(self._fd) if store.fsync else None

    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._write(offset, data, pwrite_all)

    def write_checksummed_at(self, offset: int, data: bytes | bytearray | memoryview) -> int:
        return self._write(offset, data, pwrite_checksummed)

    def _write(self, offset: int, data: bytes | bytearray | memoryview,
               pwrite: Callable[[int, bytes | bytearray | memoryview, int], T]) -> T:
        """``pwrite(fd, data, offset)`` inside the size promised, then start writeback."""
        size = memoryview(data).nbytes
        self.check_span(offset, size)

        def write() -> T:
            result = pwrite(self._fd, data, offset)
            if self._writeback is not None:
                self._writeback.written(offset, size)
            return result

        return self.store._call(self._where, write)

    def commit(self) -> ObjectInfo:
        try:
            return self.store._call(self._where, self._commit)
        finally:
            self.abort()

    def _commit(self) -> ObjectInfo:
        if self.store.fsync:
            os.fsync(self._fd)
        self.store._place(self._temp, self._target, os.replace)
        self._temp = ""
        if self.store.fsync:
            _fsync_path(self._target.parent)
        return self.store._stat(self.key)

    def abort(self) -> None:
        if self._open:
            self._open = False
            os.close(self._fd)
        if self._temp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._temp)
            self._temp = ""


class LocalPositionalReader(PositionalReader):
    """One open file for every read (``preadv``, from any thread), hinted as read in
    order (``POSIX_FADV_SEQUENTIAL``: the kernel reads further ahead), so readers of
    many windows pay neither a path lookup and an open per read nor a readahead that
    restarts cold on every open."""

    def __init__(self, store: LocalBlobStore, key: str):
        self.store, self.key = store, key
        self._where = f"get {store._where(key)}"
        self._fd = os.open(store._object_path(key), os.O_RDONLY)
        self._open = True
        with contextlib.suppress(OSError, AttributeError):  # a hint only
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)

    def read_at(self, offset: int, out: memoryview) -> int:
        return self._read(offset, out, pread_into)

    def read_checksummed_at(self, offset: int, out: memoryview) -> tuple[int, int]:
        return self._read(offset, out, pread_checksummed)

    def _read(self, offset: int, out: memoryview,
              pread: Callable[[int, memoryview, int], T]) -> T:
        """``pread(fd, out as bytes, offset)`` for a valid offset."""
        if offset < 0:
            raise ValueError(f"invalid offset {offset}")
        view = out.cast("B") if out.format != "B" or out.ndim != 1 else out
        return self.store._call(self._where, lambda: pread(self._fd, view, offset))

    def close(self) -> None:
        if self._open:
            self._open = False
            os.close(self._fd)


class _EarlyWriteback:
    """Starts the kernel writing a file's new bytes to disk while later ones are still
    being written, so the final fsync has little left to do: a large piece at once, small
    pieces (thousands of small tensors) by the span they cover, once enough have gathered.
    Safe from any thread; a hint only."""

    def __init__(self, fd: int):
        self._fd = fd
        self._lock = threading.Lock()
        self._gathered, self._low, self._high = 0, 2**63, 0

    def written(self, offset: int, size: int) -> None:
        if size >= _EARLY_WRITEBACK_BYTES:
            _start_writeback(self._fd, offset, size)
            return
        with self._lock:
            self._gathered += size
            self._low, self._high = min(self._low, offset), max(self._high, offset + size)
            if self._gathered < _SMALL_WRITEBACK_BYTES:
                return
            low, high = self._low, self._high
            self._gathered, self._low, self._high = 0, 2**63, 0
        _start_writeback(self._fd, low, high - low)


def _start_writeback(fd: int, offset: int, size: int) -> None:
    """Ask the kernel to start writing ``[offset, offset + size)`` to disk now
    (``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which does not wait), so the disk works
    while later pieces are still being written and the final fsync has little left to do.
    A hint only: where it is unavailable nothing changes but the timing."""
    function = getattr(_LIBC, "sync_file_range", None) if _LIBC is not None else None
    if function is not None:
        function(fd, ctypes.c_int64(offset), ctypes.c_int64(size), _SYNC_FILE_RANGE_WRITE)


def _reserve(fd: int, size: int) -> None:
    """Allocate ``size`` bytes (ENOSPC now, not midway); plain truncate where the file
    system cannot preallocate."""
    if size == 0:
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as error:
        if error.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        os.ftruncate(fd, size)


def _syncfs(path: Path) -> bool:
    """``syncfs(2)`` of the file system holding ``path``; False where it is unavailable."""
    function = getattr(_LIBC, "syncfs", None) if _LIBC is not None else None
    if function is None:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        if function(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"syncfs failed: {os.strerror(code)}")
    finally:
        os.close(fd)
    return True


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - platforms without a C library handle
        return None


_LIBC = _load_libc()


def _fsync_path(path: str | Path) -> None:
    """fsync a file or a folder (for a folder: the names in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _link_exclusive(temp: str, target: Path) -> None:
    """Hard-link ``temp`` to ``target``; fails with FileExistsError if target exists."""
    os.link(temp, target)
