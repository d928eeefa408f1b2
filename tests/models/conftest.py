"""Fixtures for the model tests: a fresh plane per test, on the local backend and on S3.

``site`` / ``plane`` are parametrized over ``local`` (a blob folder under ``tmp_path``)
and ``s3`` (a fresh bucket on the session's moto server, under a ``prefix/``). Both use an
SQLite catalog and a node cache under ``tmp_path``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from models_support import Site, local_site, s3_site

from dataplane.facade import DataPlane
from dataplane.testing.servers import Endpoint, create_s3_bucket, s3_options

BACKENDS = ["local", "s3"]


@pytest.fixture(scope="session")
def raw_s3(s3_endpoint: Endpoint) -> Any:
    """A plain s3fs client on the session's moto server (no dataplane code involved)."""
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False,
                             **s3_options(s3_endpoint.endpoint_url))


def make_site(backend: str, tmp: Path, request: pytest.FixtureRequest) -> Site:
    """A fresh site: a blob folder under ``tmp``, or a fresh bucket on the moto server."""
    if backend == "local":
        return local_site(tmp)
    endpoint: Endpoint = request.getfixturevalue("s3_endpoint")
    bucket = create_s3_bucket(endpoint.endpoint_url)
    return s3_site(tmp, endpoint.endpoint_url, bucket, request.getfixturevalue("raw_s3"))


@pytest.fixture
def site_factory(request: pytest.FixtureRequest) -> Callable[[str, Path], Site]:
    """``site_factory(backend, folder)``: for tests that pick their backends themselves."""
    return lambda backend, tmp: make_site(backend, tmp, request)


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Site:
    return make_site(request.param, tmp_path / "site", request)


@pytest.fixture
def local(tmp_path: Path) -> Site:
    return local_site(tmp_path / "site")


@pytest.fixture
def plane(site: Site) -> Iterator[DataPlane]:
    with site.plane() as plane:
        yield plane
