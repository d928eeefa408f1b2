"""Transient and permanent backend faults, and unreachable endpoints.

A real S3 server cannot be told to throttle or drop a connection on demand, so these
tests talk to moto's server through :class:`~dataplane.testing.faults.FaultProxy`, a
real HTTP reverse proxy that answers the requests its rule selects with a fault and
forwards the rest. The proxy counts the requests it sees, which is how the tests check
that transient faults are retried and permanent ones are not.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataplane.blob import BlobStore, open_store
from dataplane.errors import (
    BackendUnavailableError,
    InvalidNameError,
    PermissionDeniedError,
)
from dataplane.retry import RetryPolicy
from dataplane.testing.blob import payload, sha256
from dataplane.testing.faults import (
    ACCESS_DENIED,
    CORRUPT_BODY,
    DROP,
    INTERNAL_ERROR,
    SLOW_DOWN,
    Fault,
    FaultProxy,
    FaultRule,
)
from dataplane.testing.servers import (
    Endpoint,
    create_gcs_bucket,
    create_s3_bucket,
    free_port,
    gcs_options,
    s3_options,
)

QUICK = RetryPolicy(attempts=4, deadline_s=10, initial_wait_s=0.01, max_wait_s=0.05)
TRANSIENT = [SLOW_DOWN, INTERNAL_ERROR, DROP]
UNREACHABLE_LIMIT_S = 30


@pytest.fixture
def proxy(s3_endpoint: Endpoint) -> Iterator[FaultProxy]:
    with FaultProxy(s3_endpoint.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def bucket(s3_endpoint: Endpoint) -> str:
    return create_s3_bucket(s3_endpoint.endpoint_url)


@pytest.fixture
def direct(s3_endpoint: Endpoint, bucket: str) -> BlobStore:
    """The same store as ``through_proxy``, reached without the proxy."""
    return open_store(f"s3://{bucket}/data", s3_options(s3_endpoint.endpoint_url))


@pytest.fixture
def through_proxy(proxy: FaultProxy, bucket: str) -> BlobStore:
    return open_store(f"s3://{bucket}/data", s3_options(proxy.endpoint_url), QUICK)


def fault_id(fault: Fault) -> str:
    return fault.code or "drop"


# ----------------------------------------------------------------- transient faults
@pytest.mark.parametrize("fault", TRANSIENT, ids=fault_id)
def test_put_is_retried_through_transient_faults(
    fault: Fault, proxy: FaultProxy, through_proxy: BlobStore, direct: BlobStore
) -> None:
    proxy.reset(FaultRule(fault, first=2))
    through_proxy.put("k", b"payload")
    assert (proxy.requests, proxy.faulted) == (3, 2), proxy.log  # one PUT, tried 3 times
    assert direct.get("k") == b"payload"


@pytest.mark.parametrize("fault", TRANSIENT, ids=fault_id)
def test_get_is_retried_through_transient_faults(
    fault: Fault, proxy: FaultProxy, through_proxy: BlobStore, direct: BlobStore
) -> None:
    direct.put("k", b"payload")
    assert through_proxy.get("k") == b"payload"
    clean = proxy.requests  # what a get costs without faults (s3fs: HEAD, then GET)
    proxy.reset(FaultRule(fault, first=2))
    assert through_proxy.get("k") == b"payload"
    assert (proxy.requests, proxy.faulted) == (clean + 2, 2), proxy.log


def test_every_other_request_faulted_still_completes(
    proxy: FaultProxy, through_proxy: BlobStore
) -> None:
    proxy.reset(FaultRule(SLOW_DOWN, every=2))
    for i in range(5):
        through_proxy.put(f"k{i}", bytes([i]) * 100)
    assert [through_proxy.get(f"k{i}") for i in range(5)] == [bytes([i]) * 100
                                                              for i in range(5)]
    assert [i.key for i in through_proxy.list()] == [f"k{i}" for i in range(5)]
    assert proxy.faulted >= 5


@pytest.mark.parametrize("fault", [SLOW_DOWN, DROP], ids=fault_id)
def test_endless_faults_give_up_after_bounded_attempts(
    fault: Fault, proxy: FaultProxy, bucket: str
) -> None:
    store = open_store(f"s3://{bucket}/data", s3_options(proxy.endpoint_url),
                       RetryPolicy(attempts=3, initial_wait_s=0.01, max_wait_s=0.05))
    proxy.reset(FaultRule(fault, always=True))
    with pytest.raises(BackendUnavailableError, match=r"3 attempt\(s\)") as caught:
        store.get("k")
    # Only dataplane's policy retries, except that aiohttp resends an idempotent request
    # once, at once, when the server closed the connection without an answer.
    resends = 2 if fault.drops_connection else 1
    assert 3 <= proxy.requests <= 3 * resends, proxy.log
    assert f"s3://{bucket}/data/k" in str(caught.value)


def test_default_policy_is_bounded(proxy: FaultProxy, bucket: str) -> None:
    store = open_store(f"s3://{bucket}", s3_options(proxy.endpoint_url))
    proxy.reset(FaultRule(SLOW_DOWN, always=True))
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError):
        store.put("k", b"v")
    assert proxy.requests == store.retry.attempts, proxy.log
    assert time.monotonic() - started < store.retry.deadline_s + 5


# ---------------------------------------------------------------- integrity in transit
def test_a_put_from_memory_is_proven_by_content_md5_and_etag(direct: BlobStore) -> None:
    """One-request puts carry the body's MD5 (S3 refuses a body that does not match it), so
    their payload is not hashed a second time for the signature; the ETag S3 answers
    with proves what it stored."""
    import base64
    import hashlib

    sent: list[dict[str, str]] = []
    direct.put("warm-up", b"")  # s3fs creates its client on first use
    direct.fs.s3.meta.events.register(  # type: ignore[attr-defined]
        "before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers)))
    data = payload(300_000)
    assert direct.put_proven("k", data)  # type: ignore[attr-defined]
    assert direct.get("k") == data
    headers = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in sent[-1].items()}
    assert headers["content-md5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert "content-md5" in headers["authorization"]  # the MD5 is itself signed
    direct.put_if_absent("other", data)  # no Content-MD5 here: the payload stays signed
    assert sent[-1]["X-Amz-Content-SHA256"] not in ("UNSIGNED-PAYLOAD", b"UNSIGNED-PAYLOAD")


def test_a_body_damaged_in_transit_is_not_proven(
    proxy: FaultProxy, through_proxy: BlobStore, direct: BlobStore
) -> None:
    """moto stores what arrives (S3 would refuse it by its Content-MD5); the ETag it
    answers with then differs from the MD5 sent, so the put is not proven."""
    data = payload(100_000)
    proxy.reset(FaultRule(CORRUPT_BODY, first=1))
    assert not through_proxy.put_proven("k", data)  # type: ignore[attr-defined]
    assert proxy.faulted == 1 and proxy.log[0].endswith("forwarded corrupted"), proxy.log
    assert sha256(direct.get("k")) != sha256(data)  # really damaged: proof was needed
    assert through_proxy.put_proven("k", data)  # type: ignore[attr-defined]
    assert direct.get("k") == data


# ----------------------------------------------------------------- permanent faults
@pytest.mark.parametrize("operation", ["get", "put", "stat", "list"])
def test_access_denied_surfaces_at_once(
    operation: str, proxy: FaultProxy, through_proxy: BlobStore
) -> None:
    calls = {
        "get": lambda: through_proxy.get("k"),
        "put": lambda: through_proxy.put("k", b"v"),
        "stat": lambda: through_proxy.stat("k"),
        "list": lambda: list(through_proxy.list()),
    }
    proxy.reset(FaultRule(ACCESS_DENIED, always=True))
    with pytest.raises(PermissionDeniedError):
        calls[operation]()
    assert proxy.requests == 1, proxy.log  # not retried


def test_invalid_key_never_reaches_the_backend(
    proxy: FaultProxy, through_proxy: BlobStore
) -> None:
    for operation in (lambda: through_proxy.get("a/../b"), lambda: through_proxy.put("/a", b"")):
        with pytest.raises(InvalidNameError):
            operation()
    assert proxy.requests == 0


# ------------------------------------------------------------- unreachable endpoints
def test_unreachable_s3_endpoint_fails_fast_and_names_it() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = open_store("s3://bucket/data", s3_options(endpoint))
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as caught:
        store.get("k")
    assert time.monotonic() - started < UNREACHABLE_LIMIT_S
    assert endpoint in str(caught.value)


def test_unreachable_gcs_endpoint_fails_in_bounded_time() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = open_store("gs://bucket/data", gcs_options(endpoint))
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as caught:
        store.get("k")
    assert time.monotonic() - started < UNREACHABLE_LIMIT_S  # gcsfs retries by itself
    assert "127.0.0.1" in str(caught.value)


# ------------------------------------------------------------------ a race on demand
@pytest.mark.parametrize(("operation", "nth_get"), [("get", 1), ("get_file", 2)])
def test_read_racing_an_overwrite_is_never_torn(
    operation: str, nth_get: int, proxy: FaultProxy, through_proxy: BlobStore,
    direct: BlobStore, tmp_path: Path,
) -> None:
    """An object overwritten while it is read comes back whole: old or new, never a mix.

    The proxy overwrites the object (with one of another size) just before the read's
    ``nth_get`` GET request reaches the server, after the client has learnt the old size
    from the earlier requests. Objects over 50 MiB are the ones s3fs would fetch in
    several ranged GETs, which is where a read could tear.
    """
    old, new = payload(52 * 2**20, seed=1), payload(51 * 2**20, seed=2)
    direct.put("k", old)
    gets = 0

    def overwrite_on_nth_get(number: int, request_line: str) -> None:
        nonlocal gets
        gets += request_line.startswith("GET ")
        if gets == nth_get and request_line.startswith("GET "):
            direct.put("k", new)

    proxy.before_forward = overwrite_on_nth_get
    if operation == "get":
        data = through_proxy.get("k")
    else:
        through_proxy.get_file("k", tmp_path / "k")
        data = (tmp_path / "k").read_bytes()
    assert sha256(data) in (sha256(old), sha256(new)), f"torn read of {len(data)} bytes"


# ------------------------------------------------------------------------------ GCS
@pytest.fixture
def gcs_proxy(gcs_endpoint: Endpoint) -> Iterator[FaultProxy]:
    with FaultProxy(gcs_endpoint.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def gcs_stores(gcs_endpoint: Endpoint, gcs_proxy: FaultProxy) -> tuple[BlobStore, BlobStore]:
    """A GCS store reached directly and the same store reached through ``gcs_proxy``."""
    url = f"gs://{create_gcs_bucket(gcs_endpoint.endpoint_url)}/data"
    return (open_store(url, gcs_options(gcs_endpoint.endpoint_url)),
            open_store(url, gcs_options(gcs_proxy.endpoint_url)))


def test_gcs_get_is_retried_through_a_transient_fault(
    gcs_proxy: FaultProxy, gcs_stores: tuple[BlobStore, BlobStore]
) -> None:
    direct, through_proxy = gcs_stores
    direct.put("k", b"payload")
    assert through_proxy.get("k") == b"payload"
    clean = gcs_proxy.requests
    gcs_proxy.reset(FaultRule(SLOW_DOWN, first=1))
    assert through_proxy.get("k") == b"payload"  # gcsfs itself retries, after about 1 s
    assert (gcs_proxy.requests, gcs_proxy.faulted) == (clean + 1, 1), gcs_proxy.log


@pytest.mark.parametrize("operation", ["get", "put", "stat"])
def test_gcs_access_denied_surfaces_at_once(
    operation: str, gcs_proxy: FaultProxy, gcs_stores: tuple[BlobStore, BlobStore]
) -> None:
    through_proxy = gcs_stores[1]
    calls = {
        "get": lambda: through_proxy.get("k"),
        "put": lambda: through_proxy.put("k", b"v"),
        "stat": lambda: through_proxy.stat("k"),
    }
    gcs_proxy.reset(FaultRule(ACCESS_DENIED, always=True))
    with pytest.raises(PermissionDeniedError):
        calls[operation]()
    # Not retried: no request is sent twice (gcsfs's stat asks for the object and, at the
    # same time, for a folder of that name: different requests).
    assert len(set(gcs_proxy.log)) == len(gcs_proxy.log), gcs_proxy.log
