"""Write batches: many objects under one prefix, made durable together by one barrier.

A checkpoint writes thousands of objects and then a marker (its manifest) that says they
are complete; readers look only behind such a marker. Each object needs no durability or
atomicity of its own, only all of them together before the marker: that is what a
:class:`WriteBatch` offers, and what lets the local adapter replace thousands of fsyncs
with a single file-system barrier.

Call order: :meth:`BlobStore.write_batch` → :meth:`WriteBatch.put` any number of times,
from any number of threads → :meth:`WriteBatch.commit` once. After ``commit`` returns,
every object put through the batch is durable and readable as written. Before it, an
object may be missing, partial or (after a crash) empty, so write through a batch only
under a prefix that nothing reads until a marker written *after* ``commit``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .port import BlobStore

__all__ = ["WriteBatch"]


class WriteBatch:
    """The default batch: every ``put`` is the store's own atomic, durable ``put``, so
    ``commit`` has nothing left to do. Object stores keep it (a PUT is durable when it
    returns); the local adapter overrides it with deferred durability."""

    def __init__(self, store: BlobStore):
        self.store = store

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` under ``key``; durable only once :meth:`commit` returns."""
        self.store.put(key, data)

    def commit(self) -> None:
        """The barrier: every object put so far is durable when this returns."""
