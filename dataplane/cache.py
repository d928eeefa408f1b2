"""The node-local cache: verified file contents, shared safely by every process on a node.

Layout under ``root``::

    blobs/<sha256>              one verified file's bytes, read-only, named by its digest
    views/<version-hex>[-<sel>] a version's tree (or a selection of its files): hard links
                                into blobs/ (copies where links are impossible)
    partial/                    downloads and views being built; never read
    locks/<sha256>.lock         flock(2) files: one filler per blob at a time

Guarantees and call order: a blob appears in ``blobs/`` only after its bytes were verified
against their digest, by an atomic rename from ``partial/``; a view appears in ``views/``
only complete, by an atomic rename of a finished directory. So anything found under
``blobs/`` or ``views/`` is whole and verified, and a hit needs no network I/O. Fillers
take the blob's lock (:meth:`NodeCache.locked`) and re-check after acquiring it, so when
two processes want the same blob one downloads it and the other waits and reuses it.
A process killed mid-download leaves only files under ``partial/``, which
:meth:`NodeCache.clean_partial` removes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["NodeCache"]

STALE_PARTIAL_S = 24 * 3600.0


class NodeCache:
    """A content-addressed, process-safe file cache rooted at ``root``."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()
        for folder in ("blobs", "views", "partial", "locks"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self.clean_partial(STALE_PARTIAL_S)  # leftovers of processes killed long ago

    def blob_path(self, digest: str) -> Path:
        """Where the verified bytes with this ``sha256:`` digest live (may not exist yet)."""
        return self.root / "blobs" / digest.removeprefix("sha256:")

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def view_path(self, version_digest: str, selection: Sequence[str] | None = None) -> Path:
        """The folder holding a whole version, or the given selection of its files."""
        name = version_digest.removeprefix("sha256:")
        if selection is not None:
            joined = "\n".join(sorted(selection)).encode("utf-8")
            name += "-" + hashlib.sha256(joined).hexdigest()[:16]
        return self.root / "views" / name

    def partial_path(self, label: str) -> Path:
        """A fresh path under ``partial/`` for a download or a view being built."""
        return self.root / "partial" / f"{label}.{os.getpid()}.{uuid.uuid4().hex[:8]}"

    @contextlib.contextmanager
    def locked(self, digests: Sequence[str]) -> Iterator[None]:
        """Hold the fill locks of ``digests`` (taken in sorted order, so never deadlocks)."""
        with contextlib.ExitStack() as stack:
            for digest in sorted(set(digests)):
                lock = self.root / "locks" / f"{digest.removeprefix('sha256:')}.lock"
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
                stack.callback(os.close, fd)
                fcntl.flock(fd, fcntl.LOCK_EX)
                stack.callback(fcntl.flock, fd, fcntl.LOCK_UN)
            yield

    def admit_blob(self, partial: Path, digest: str) -> Path:
        """Move a verified download into ``blobs/`` (read-only) and return its path."""
        os.chmod(partial, 0o444)
        final = self.blob_path(digest)
        os.replace(partial, final)
        return final

    def publish_view(self, partial: Path, final: Path) -> Path:
        """Atomically move a finished view folder into place (keeping any racing twin)."""
        try:
            os.rename(partial, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(partial, ignore_errors=True)  # another process published it first
        return final

    def link_blob(self, digest: str, target: Path) -> None:
        """Place the cached blob at ``target`` as a hard link (a copy across devices)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(self.blob_path(digest), target)
        except OSError:
            shutil.copyfile(self.blob_path(digest), target)

    def clean_partial(self, older_than_s: float = 3600.0) -> int:
        """Remove leftovers of killed fillers older than ``older_than_s``; returns a count."""
        removed = 0
        cutoff = time.time() - older_than_s
        for entry in (self.root / "partial").iterdir():
            try:
                stale = entry.lstat().st_mtime < cutoff
            except FileNotFoundError:  # another process cleaned it first
                continue
            if stale:
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed += 1
        return removed
