"""Fixtures for the feature tests: a fresh plane per test, and the real Redis server.

Redis is found at ``redis://127.0.0.1:6379/0`` unless ``DATAPLANE_TEST_REDIS_URL`` says
otherwise. When it is unreachable the Redis cases skip, or fail when ``CI`` is set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from dataplane.testing.servers import service_missing

pytest.register_assert_rewrite("dataplane.testing.features")  # readable suite failures

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a reachable Redis server (keys are namespaced per test project)."""
    import redis

    url = os.environ.get("DATAPLANE_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.ping()
    except redis.exceptions.RedisError as error:
        reason = f"Redis at {url} is unreachable: {error}"
        service_missing(reason)
    yield url
    for key in client.scan_iter(match="dp:conf_*", count=1000):
        client.unlink(key)
    client.close()
