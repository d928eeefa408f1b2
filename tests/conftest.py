"""Session-wide test servers: one moto S3 server and one fake-gcs-server per test run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dataplane.testing.servers import Endpoint, fake_gcs_server, moto_s3_server


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[Endpoint]:
    """A real S3 endpoint over HTTP (moto's server, in a thread of this process)."""
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[Endpoint]:
    """A real GCS endpoint over HTTP (the fake-gcs-server binary, memory backend)."""
    with fake_gcs_server() as endpoint:
        yield endpoint
