"""Parallel, verified transfers between a blob store and local files.

Downloads are planned as a flat list of tasks run by one bounded thread pool. A file of
one chunk is one read, verified before it is written. When there are fewer files than
workers, larger files are split into parallel ranged reads of one chunk each, written in
place with ``pwrite`` after each chunk verified. With at least as many files as workers,
the files alone keep every worker busy, so each multi-chunk file is streamed with one
whole-object read into its partial file and then verified chunk by chunk: this makes one
request per file, as a plain ``get`` would, where ranged reads would make one per chunk
(and some servers, e.g. moto, copy the whole object to answer each ranged read). A file
reaches the node cache only after all its chunks verified (see :mod:`dataplane.cache`); on
any error the partial files are removed, so nothing corrupt is ever left where a reader
could find it. Memory in flight is bounded by ``workers x chunk_size``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path

from ..blob import BlobStore, RangeRequest
from ..cache import NodeCache
from ..errors import IntegrityError
from .manifest import FileEntry

__all__ = ["DEFAULT_WORKERS", "Progress", "download_to_cache", "upload_files"]

DEFAULT_WORKERS = 16
Describe = Callable[[FileEntry], str]
Progress = Callable[[int], None]  # called with a number of bytes just transferred


def _no_progress(_: int) -> None:
    return None


def download_to_cache(store: BlobStore, entries: Sequence[FileEntry], cache: NodeCache,
                      describe: Describe, workers: int = DEFAULT_WORKERS,
                      progress: Progress = _no_progress) -> None:
    """Make every entry's verified bytes present in ``cache`` (downloading only what's missing).

    Call order: filter to missing blobs, take their fill locks (sorted), filter again
    (another process may have filled them meanwhile), download and verify all chunks in
    parallel, then admit each file into the cache by atomic rename.
    """
    missing = _unique_missing(entries, cache)
    if not missing:
        return
    with cache.locked([entry.digest for entry in missing]):
        missing = _unique_missing(missing, cache)
        if missing:
            _download(store, missing, cache, describe, workers, progress)


def _unique_missing(entries: Sequence[FileEntry], cache: NodeCache) -> list[FileEntry]:
    by_digest = {entry.digest: entry for entry in entries if not cache.has_blob(entry.digest)}
    return list(by_digest.values())


def _download(store: BlobStore, entries: list[FileEntry], cache: NodeCache,
              describe: Describe, workers: int, progress: Progress) -> None:
    partials = {entry.digest: cache.partial_path(entry.digest[7:]) for entry in entries}
    ranged = len(entries) < workers  # split files into chunks only to keep workers busy
    fds: dict[str, int] = {}

    def fetch(entry: FileEntry, index: int) -> None:
        progress(_fetch_chunk(store, entry, index, fds[entry.digest], describe))

    def stream(entry: FileEntry) -> None:
        progress(_fetch_whole(store, entry, partials[entry.digest], describe))

    calls: list[Callable[[], None]] = []
    try:
        for entry in entries:
            if len(entry.chunks) > 1 and not ranged:
                calls.append(partial(stream, entry))
                continue
            fds[entry.digest] = os.open(partials[entry.digest], os.O_WRONLY | os.O_CREAT, 0o644)
            os.ftruncate(fds[entry.digest], entry.size)
            calls.extend(partial(fetch, entry, index) for index in range(len(entry.chunks)))
        _run_all(workers, calls)
        for entry in entries:
            if entry.digest in fds:
                os.close(fds.pop(entry.digest))
            cache.admit_blob(partials[entry.digest], entry.digest)
    finally:
        for fd in fds.values():
            os.close(fd)
        for path in partials.values():
            path.unlink(missing_ok=True)


def _fetch_chunk(store: BlobStore, entry: FileEntry, index: int, fd: int,
                 describe: Describe) -> int:
    start, end = entry.chunk_range(index)
    whole = len(entry.chunks) == 1
    data = store.get(entry.key) if whole else store.get(entry.key, RangeRequest(start, end))
    entry.verify_chunk(index, data, describe(entry))
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, start)
        view, start = view[written:], start + written
    return len(data)


def _fetch_whole(store: BlobStore, entry: FileEntry, path: Path, describe: Describe) -> int:
    """Stream the object into ``path`` with one read, then verify its length and chunks."""
    store.get_file(entry.key, path)
    what = describe(entry)
    size = path.stat().st_size
    if size != entry.size:
        raise IntegrityError(what, f"{entry.size} bytes", f"{size} bytes",
                             f"{entry.path} has the wrong length")
    with open(path, "rb") as file:
        for index in range(len(entry.chunks)):
            start, end = entry.chunk_range(index)
            entry.verify_chunk(index, file.read(end - start), what)
    return entry.size


def upload_files(store: BlobStore, files: Sequence[tuple[FileEntry, Path]],
                 workers: int = DEFAULT_WORKERS, progress: Progress = _no_progress) -> None:
    """Upload each local file to its entry's key, in parallel.

    Keys are content-addressed, yet an existing object is uploaded again rather than
    skipped: the write refreshes its age, so a concurrent ``gc`` (which spares objects
    younger than its grace period) cannot delete it between this upload and the commit
    that will reference it, and a damaged copy is repaired.
    """
    def upload(entry: FileEntry, path: Path) -> None:
        store.put_file(entry.key, path)
        progress(entry.size)

    _run_all(workers, [partial(upload, entry, path) for entry, path in files])


def _run_all(workers: int, calls: Sequence[Callable[[], None]]) -> None:
    """Run ``calls`` on a bounded pool; on the first error cancel the rest and raise it."""
    if len(calls) == 1:
        calls[0]()
        return
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(calls)))) as pool:
        futures: list[Future[None]] = [pool.submit(call) for call in calls]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in done:
            error = future.exception()
            if error is not None:
                raise error
