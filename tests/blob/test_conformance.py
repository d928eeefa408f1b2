"""The blob conformance suite on every built-in adapter, against real endpoints.

Each test gets a fresh, empty store: a fresh folder (local), a fresh name (memory), a
fresh bucket (S3 on moto's server, GCS on fake-gcs-server). The S3 and GCS stores sit
under a prefix of their bucket, so key <-> path mapping is exercised; the isolation
tests below check the bucket-root case and that stores on neighbouring prefixes never
see each other's keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataplane.blob import BlobStore, open_store
from dataplane.testing.blob import BlobStoreConformance
from dataplane.testing.servers import (
    Endpoint,
    create_gcs_bucket,
    create_s3_bucket,
    gcs_options,
    s3_options,
)


class TestLocal(BlobStoreConformance):
    key_can_be_prefix_of_other_keys = False  # "a" and "a/b" cannot both be files

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[BlobStore]:
        with open_store((tmp_path / "store").as_uri()) as store:
            yield store


class TestMemory(BlobStoreConformance):
    @pytest.fixture
    def store(self) -> Iterator[BlobStore]:
        with open_store(f"memory://conformance-{uuid.uuid4().hex}") as store:
            yield store
            for info in list(store.list()):  # named memory stores live as long as the process
                store.delete(info.key)


class TestS3(BlobStoreConformance):
    @pytest.fixture
    def store(self, s3_endpoint: Endpoint) -> Iterator[BlobStore]:
        bucket = create_s3_bucket(s3_endpoint.endpoint_url)
        options = s3_options(s3_endpoint.endpoint_url)
        with open_store(f"s3://{bucket}/root", options) as store:
            yield store


class TestGCS(BlobStoreConformance):
    @pytest.fixture
    def store(self, gcs_endpoint: Endpoint) -> Iterator[BlobStore]:
        bucket = create_gcs_bucket(gcs_endpoint.endpoint_url)
        options = gcs_options(gcs_endpoint.endpoint_url)
        with open_store(f"gs://{bucket}/root", options) as store:
            yield store


# ------------------------------------------------------------ prefixes of one bucket
@pytest.fixture(params=["s3", "gs"])
def bucket_url_and_options(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    if request.param == "s3":
        endpoint: Endpoint = request.getfixturevalue("s3_endpoint")
        bucket = create_s3_bucket(endpoint.endpoint_url)
        return f"s3://{bucket}", s3_options(endpoint.endpoint_url)
    endpoint = request.getfixturevalue("gcs_endpoint")
    bucket = create_gcs_bucket(endpoint.endpoint_url)
    return f"gs://{bucket}", gcs_options(endpoint.endpoint_url)


def test_stores_on_neighbouring_prefixes_are_isolated(
    bucket_url_and_options: tuple[str, dict[str, object]],
) -> None:
    bucket_url, options = bucket_url_and_options
    narrow = open_store(f"{bucket_url}/team", dict(options))
    wider = open_store(f"{bucket_url}/teamwork", dict(options))
    narrow.put("k", b"narrow")
    wider.put("k", b"wider")
    assert [i.key for i in narrow.list()] == ["k"]
    assert [i.key for i in narrow.list("k")] == ["k"]
    assert (narrow.get("k"), wider.get("k")) == (b"narrow", b"wider")
    narrow.delete("k")
    assert wider.get("k") == b"wider"


def test_store_at_bucket_root_sees_every_prefix(
    bucket_url_and_options: tuple[str, dict[str, object]],
) -> None:
    bucket_url, options = bucket_url_and_options
    open_store(f"{bucket_url}/nested/deeper", dict(options)).put("k", b"x")
    root = open_store(bucket_url, dict(options))
    root.put("top", b"y")
    assert [i.key for i in root.list()] == ["nested/deeper/k", "top"]
    assert [i.key for i in root.list_page("nested/", limit=1).items] == ["nested/deeper/k"]
    assert root.get("nested/deeper/k") == b"x"
