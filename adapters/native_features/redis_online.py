"""The Redis online store: one string per entity and view, ``<event µs>;<JSON>``.

Keys are ``dp:<project>:<view>:<entity key>``. A write is one pipeline of a small Lua
script per record that replaces the stored string only when the new event time is not
older — one atomic step per entity, so a reader (``MGET``) always sees a whole record.
Every call is idempotent (a replayed write sets the same records again), so transient
faults (dropped connections, timeouts) are retried under the bounded policy of
:mod:`dataplane.retry`; other Redis errors surface at once as ``BackendError``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from dataplane.config import mask_url
from dataplane.errors import BackendError, MissingDependencyError, TransientError
from dataplane.retry import RetryPolicy, call_with_retry

from .online import OnlineStore, Record

__all__ = ["RedisOnlineStore"]

T = TypeVar("T")
_CAS = """
local current = redis.call('GET', KEYS[1])
if current then
  local ts = tonumber(string.match(current, '^(%-?%d+);'))
  if ts and ts > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


class RedisOnlineStore(OnlineStore):
    """Records in the Redis server at ``url``."""

    retry = RetryPolicy(attempts=4, deadline_s=10.0, initial_wait_s=0.1, max_wait_s=2.0)

    def __init__(self, url: str, project: str):
        try:
            import redis
        except ImportError as error:
            raise MissingDependencyError("redis:// online stores need the 'redis' package: "
                                         "pip install 'dataplane[redis]'") from error
        self._errors = redis.exceptions
        self.url = mask_url(url)
        self.client: Any = redis.Redis.from_url(url, socket_timeout=30,
                                                socket_connect_timeout=10)
        self.prefix = f"dp:{project}:"
        self._cas = self.client.register_script(_CAS)

    def _key(self, view: str) -> str:
        return f"{self.prefix}{view}:"

    def write(self, view: str, records: Sequence[Record]) -> None:
        prefix = self._key(view)

        def send() -> None:
            pipe = self.client.pipeline(transaction=False)
            for key, ts, value in records:
                self._cas(keys=[prefix + key], args=[ts, f"{ts};{value}"], client=pipe)
            pipe.execute()

        self._call(send, f"write {len(records)} records of {view}")

    def read(self, view: str, keys: Sequence[str]) -> list[tuple[int, str] | None]:
        if not keys:
            return []
        prefix = self._key(view)
        names = [prefix + key for key in keys]
        raw = self._call(lambda: self.client.mget(names), f"read {view}")
        out: list[tuple[int, str] | None] = []
        for item in raw:
            if item is None:
                out.append(None)
            else:
                ts, _, value = item.partition(b";")
                out.append((int(ts), value.decode()))
        return out

    def drop(self, view: str) -> None:
        def unlink_all() -> None:
            batch: list[bytes] = []
            for key in self.client.scan_iter(match=self._key(view) + "*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    self.client.unlink(*batch)
                    batch = []
            if batch:
                self.client.unlink(*batch)

        self._call(unlink_all, f"drop {view}")

    def close(self) -> None:
        self.client.close()

    def _call(self, fn: Callable[[], T], what: str) -> T:
        def translated() -> T:
            try:
                return fn()
            except (self._errors.ConnectionError, self._errors.TimeoutError) as error:
                raise TransientError(f"redis online store {self.url}: {error}") from error
            except self._errors.RedisError as error:
                raise BackendError(f"redis online store {self.url}: {error}") from error

        return call_with_retry(translated, self.retry, f"{what} at {self.url}")
