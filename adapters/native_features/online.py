"""The native online store port, and the two stores behind it (SQLite, Redis).

Every record is ``(entity key, event time in µs, JSON of all the view's features)``.
Guarantees each store keeps:

- ``write`` stores every record as one unit (one SQLite row, one Redis string), so an
  entity is never half updated; a record older than the stored one is ignored, an equal
  or newer one replaces it;
- a ``write`` call is one batch: SQLite commits it in one transaction, Redis sends it in
  one pipeline; a reader sees each entity's old record or its new one, never an error;
- ``read`` returns ``(event time, JSON)`` or ``None`` per key, in key order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from dataplane.errors import ConfigError

__all__ = ["OnlineStore", "open_online"]

Record = tuple[str, int, str]


class OnlineStore(ABC):
    """Entity records per (project, view); see the module docstring for the guarantees."""

    @abstractmethod
    def write(self, view: str, records: Sequence[Record]) -> None:
        """Store one batch of records (each all-or-nothing; never older over newer)."""

    @abstractmethod
    def read(self, view: str, keys: Sequence[str]) -> list[tuple[int, str] | None]:
        """The stored ``(event time µs, JSON)`` of each key, ``None`` where absent."""

    @abstractmethod
    def drop(self, view: str) -> None:
        """Forget every record of ``view``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def open_online(url: str, project: str) -> OnlineStore:
    """The store for ``sqlite:///path`` or ``redis://host:port/db``."""
    if url.startswith("sqlite:///"):
        from .sqlite_online import SQLiteOnlineStore

        return SQLiteOnlineStore(url.removeprefix("sqlite:///"), project)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis_online import RedisOnlineStore

        return RedisOnlineStore(url, project)
    raise ConfigError(f"no native online store for {url!r}", key="features.online_url")
